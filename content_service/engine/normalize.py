"""Name normalization: what the index stores and what queries are compared with.

A key is lower case, without diacritics, with punctuation turned into single spaces:

    "Léon: The Professional"  -> "leon the professional"
    "Schindler's List"        -> "schindlers list"       (apostrophes dropped inside words)
    "L'Avventura"             -> "l avventura"           (elision: l', d' split off)
    "Fast & Furious"          -> "fast and furious"
    "Spider-Man"              -> "spider man"            (+ the compound word "spiderman")
    "S.H.I.E.L.D."            -> "s h i e l d"           (+ the compound word "shield")

`normalize_spans` also returns, for each character of the key, the index of the character of
the original text it came from, so that a match on the key can be highlighted in the name.
"""

from __future__ import annotations

import re
import unicodedata

# Leading articles: a name that starts with one is also indexed without it, so "dark kn"
# finds "The Dark Knight" as a prefix match.
ARTICLES = frozenset({"the", "a", "an", "le", "la", "les", "l", "el", "los", "las"})

ROMAN = {
    "ii": "2",
    "iii": "3",
    "iv": "4",
    "v": "5",
    "vi": "6",
    "vii": "7",
    "viii": "8",
    "ix": "9",
    "x": "10",
    "xi": "11",
    "xii": "12",
}

_APOSTROPHES = frozenset("'\u2019\u2018`\u00b4\u02bc")
_JOINERS = frozenset("-.\u2010\u2011\u00b7")  # join the parts of a compound word
_SPECIAL = {
    "ß": "ss",
    "æ": "ae",
    "Æ": "ae",
    "ø": "o",
    "Ø": "o",
    "œ": "oe",
    "Œ": "oe",
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "ð": "d",
    "Ð": "d",
    "þ": "th",
    "Þ": "th",
    "ı": "i",
    "&": " and ",
    "+": " plus ",
}
_JOIN = "\x01"  # internal marker for a joiner between two word characters

_FOLD: dict[str, str] = {}


def _fold_char(c: str) -> str:
    f = _FOLD.get(c)
    if f is not None:
        return f
    if c in _SPECIAL:
        f = _SPECIAL[c]
    elif c in _APOSTROPHES:
        f = "'"
    elif c in _JOINERS:
        f = _JOIN
    elif c.isalnum():
        decomposed = unicodedata.normalize("NFKD", c)
        f = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
        if not f or not all(ch.isalnum() for ch in f):
            f = "".join(ch for ch in f if ch.isalnum()) or " "
    elif unicodedata.category(c) == "Mn":  # a combining mark in already-decomposed text
        f = ""
    else:
        f = " "
    _FOLD[c] = f
    return f


def normalize_spans(text: str) -> tuple[str, list[int], list[str]]:
    """(key, positions, compounds): positions[i] is the index in `text` of key[i]."""
    out: list[str] = []
    pos: list[int] = []
    n = len(text)
    for i, c in enumerate(text):
        f = _fold_char(c)
        if f == "'":
            # l'amour, d'artagnan: elision splits; otherwise the apostrophe disappears.
            if out and out[-1] in "ld" and (len(out) == 1 or not out[-2].isalnum()):
                out.append(" ")
                pos.append(i)
            continue
        if f == _JOIN:
            prev_ok = bool(out) and out[-1].isalnum()
            next_ok = i + 1 < n and _fold_char(text[i + 1])[:1].isalnum()
            out.append(_JOIN if prev_ok and next_ok else " ")
            pos.append(i)
            continue
        for ch in f:
            out.append(ch)
            pos.append(i)
    # collapse whitespace, keep joiners for the compound detection
    key_chars: list[str] = []
    key_pos: list[int] = []
    for ch, p in zip(out, pos, strict=True):
        if ch == " ":
            if not key_chars or key_chars[-1] in (" ", _JOIN):
                continue
        key_chars.append(ch)
        key_pos.append(p)
    while key_chars and key_chars[-1] in (" ", _JOIN):
        key_chars.pop()
        key_pos.pop()
    raw = "".join(key_chars)
    compounds: list[str] = []
    if _JOIN in raw:
        for chunk in raw.split(" "):
            if _JOIN in chunk:
                joined = chunk.replace(_JOIN, "")
                if joined and joined not in compounds:
                    compounds.append(joined)
        raw = raw.replace(_JOIN, " ")
    return raw, key_pos, compounds


_ASCII_FOLD: dict[str, str] = {}


def _ascii_fold(c: str) -> str:
    """A non-ASCII character's fold if it is plain ASCII letters/digits (or nothing, for a
    combining mark); "\x00" otherwise."""
    if unicodedata.combining(c):
        return ""
    if c.isalnum():
        f = _fold_char(c)
        if f.isascii() and f.isalnum():
            return f
    return "\x00"


_ASCII_TABLE = {c: " " for c in range(128) if not chr(c).isalnum()}
_ELISION = re.compile(r"(?<![a-z0-9])([ld])'")
_COMPOUND = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)+")


def normalize_key(text: str) -> tuple[str, list[str]]:
    """(key, compounds): normalize_spans without the positions, with a fast path for ASCII."""
    if not text.isascii():
        parts = []
        for c in text:
            if c < "\x80":
                parts.append(c)
                continue
            f = _ASCII_FOLD.get(c)
            if f is None:
                f = _ASCII_FOLD[c] = _ascii_fold(c)
            if f == "\x00":  # no plain-letter folding: take the careful path
                key, _, comps = normalize_spans(text)
                return key, comps
            parts.append(f)
        text = "".join(parts)
    s = text.lower()
    if "'" in s or "`" in s:
        s = _ELISION.sub(r"\1 ", s.replace("`", "'")).replace("'", "")
    if "&" in s:
        s = s.replace("&", " and ")
    if "+" in s:
        s = s.replace("+", " plus ")
    comps: list[str] = []
    if "-" in s or "." in s:
        for m in _COMPOUND.finditer(s):
            c = m.group().replace("-", "").replace(".", "")
            if c not in comps:
                comps.append(c)
    return " ".join(s.translate(_ASCII_TABLE).split()), comps


def normalize(text: str) -> str:
    """The search key of a name or a query."""
    return normalize_key(text)[0]


def max_edits(length: int) -> int:
    """Typo budget for a word of `length` characters (Algolia's defaults): 0 below 4
    characters, 1 from 4, 2 from 8."""
    if length < 4:
        return 0
    if length < 8:
        return 1
    return 2


def prefix_edits(length: int) -> int:
    """Typo budget for an unfinished last word (a prefix): 1 from 4 characters, else 0."""
    return 1 if length >= 4 else 0


def article_stripped(key: str) -> str | None:
    """The key without its leading article, if it has one and something follows."""
    head, sep, rest = key.partition(" ")
    if sep and head in ARTICLES and rest:
        return rest
    return None


def index_words(key: str, compounds: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The words of a name as the word index holds them: its tokens, compounds
    ("spiderman"), and arabic forms of trailing roman numerals ("rocky ii" -> "2")."""
    toks = key.split(" ") if key else []
    words = list(dict.fromkeys(toks))
    for c in compounds:
        if c not in words:
            words.append(c)
    if len(toks) > 1 and toks[-1] in ROMAN and ROMAN[toks[-1]] not in words:
        words.append(ROMAN[toks[-1]])
    return words
