"""A deterministic generator of a realistic catalogue: movies, TV series (anime and cartoons
marked), people and characters from cast credits, linked to each other.

Properties that matter for search (and that a uniform random generator would miss):
* Zipfian popularity (a few titles take most of the attention; long tail);
* multi-word titles from common title words, with leading articles, subtitles after a colon,
  possessives and numbers;
* diacritics (French, Spanish, German, Nordic, Polish, Czech, Turkish names and titles) and
  romanized Japanese anime titles;
* franchises: sequels ("2", "II", "Part Three", "Returns", subtitles), remakes with the same
  title in another year, and near-duplicates ("Spider-Man" / "Spiderman");
* a long tail of invented words and surnames, so that the vocabulary grows with the corpus
  the way real catalogues do;
* characters named the way TMDB credits are ("Bruce Wayne / Batman", "Captain Jack",
  "(voice)").

`generate(n_names)` yields entity records (dicts, the shape the store keeps) whose names add
up to about n_names; the same seed gives the same corpus.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from content_service.corpus import words as W

MAX_CAST = 80
ROMAN = ["", "", "II", "III", "IV", "V", "VI", "VII"]
ORDINAL_WORDS = ["", "", "Two", "Three", "Four", "Five"]
GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "History",
    "Horror",
    "Music",
    "Mystery",
    "Romance",
    "Science Fiction",
    "Thriller",
    "War",
    "Western",
]


class _Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.pseudo: list[str] = []
        self.pseudo_sur: list[str] = []

    # -- words
    def zipf_pick(self, seq, s: float = 1.1):
        """An element of seq, earlier elements more likely (Zipf-like)."""
        n = len(seq)
        u = self.r.random()
        i = int(n**u**s) - 1 if n > 1 else 0
        return seq[min(max(i, 0), n - 1)]

    def invented(self) -> str:
        r = self.r
        syl = r.choice((2, 2, 2, 2, 3, 3))
        parts = []
        for _ in range(syl):
            parts.append(r.choice(W.ONSETS) + r.choice(W.VOWELS) + r.choice(W.CODAS))
        w = "".join(parts)
        if r.random() < 0.15:
            i = r.randrange(len(w))
            acc = W.ACCENTED.get(w[i])
            if acc:
                w = w[:i] + r.choice(acc) + w[i + 1 :]
        return w.capitalize()

    def new_word(self, pool: list[str], p_new: float) -> str:
        """A long-tail word: a fresh invented word with probability p_new, else one seen."""
        if not pool or self.r.random() < p_new:
            w = self.invented()
            pool.append(w)
            return w
        return self.zipf_pick(pool, 0.8)

    def noun(self) -> str:
        r = self.r
        if r.random() < 0.2:
            return self.new_word(self.pseudo, 0.6)
        return self.zipf_pick(W.NOUNS).capitalize()

    def adj(self) -> str:
        return self.zipf_pick(W.ADJECTIVES).capitalize()

    def place(self) -> str:
        if self.r.random() < 0.3:
            return self.new_word(self.pseudo, 0.5)
        return self.zipf_pick(W.PLACES).capitalize()

    def first(self) -> str:
        return self.zipf_pick(W.FIRST_NAMES, 0.9)

    def surname(self) -> str:
        if self.r.random() < 0.5:
            return self.new_word(self.pseudo_sur, 0.5)
        return self.zipf_pick(W.SURNAMES, 0.9)

    def person_name(self) -> str:
        r = self.r
        x = r.random()
        if x < 0.06:
            return f"{self.first()} {self.first()} {self.surname()}"
        if x < 0.09:
            return f"{self.first()} {self.surname()}-{self.surname()}"
        if x < 0.11:
            return f"{self.first()} {r.choice('ABCDEFGHJKLMNPRSTW')}. {self.surname()}"
        return f"{self.first()} {self.surname()}"

    # -- titles
    def title(self) -> tuple[str, str | None]:
        """(title, original title if foreign)."""
        r = self.r
        x = r.random()
        if x < 0.07:
            return self.foreign_title()
        t = r.random()
        if t < 0.14:
            s = f"The {self.adj()} {self.noun()}"
        elif t < 0.24:
            s = f"{self.adj()} {self.noun()}"
        elif t < 0.34:
            s = f"The {self.noun()}"
        elif t < 0.42:
            s = self.noun()
        elif t < 0.50:
            s = f"The {self.noun()} of {self.place()}"
        elif t < 0.56:
            s = f"{self.noun()} of the {self.noun()}s" if r.random() < 0.5 else f"{self.noun()} of {self.noun()}"
        elif t < 0.62:
            s = f"{self.first()}'s {self.noun()}"
        elif t < 0.67:
            s = f"{self.zipf_pick(W.VERBS).capitalize()} {self.noun()}"
        elif t < 0.72:
            s = f"{self.noun()} and {self.noun()}"
        elif t < 0.76:
            s = f"{self.place()} {self.noun()}"
        elif t < 0.80:
            s = f"{r.choice(('Two', 'Three', 'Seven', '12', '21', '100', '1001'))} {self.noun()}s"
        elif t < 0.86:
            s = f"{self.noun()}: {r.choice(W.SUBTITLES)}"
        elif t < 0.89:
            s = f"{self.noun()}-{r.choice(('Man', 'Woman', 'Girl', 'Boy', 'Men'))}"
        elif t < 0.92:
            s = f"A {self.adj()} {self.noun()} in {self.place()}"
        elif t < 0.95:
            s = f"{self.first()} {self.surname()}"
        else:
            s = f"The {self.noun()} {self.noun()}"
        return s, None

    def foreign_title(self) -> tuple[str, str | None]:
        r = self.r
        lang = r.random()
        if lang < 0.3:
            art = r.choice(("Le ", "La ", "Les ", "L'"))
            o = f"{art}{r.choice(W.FRENCH).capitalize()} {r.choice(W.FRENCH_ADJ)}"
        elif lang < 0.55:
            o = (
                f"{r.choice(('El', 'La', 'Los', 'Las'))} {r.choice(W.SPANISH)} "
                f"{r.choice(('de', 'del'))} {r.choice(W.SPANISH)}"
            )
        elif lang < 0.75:
            o = f"{r.choice(('Der', 'Die', 'Das'))} {r.choice(W.GERMAN).capitalize()}"
        else:
            o = " ".join(r.choice(W.JAPANESE) for _ in range(r.choice((2, 3, 3, 4)))).title()
        o = o[0].upper() + o[1:]
        if r.random() < 0.4:
            return self.title_en(), o
        return o, o

    def title_en(self) -> str:
        return f"The {self.adj()} {self.noun()}"

    def sequel(self, base: str, n: int) -> str:
        r = self.r
        x = r.random()
        if x < 0.35:
            return f"{base} {n}"
        if x < 0.5:
            return f"{base} {ROMAN[min(n, 7)] or n}"
        if x < 0.6 and n < len(ORDINAL_WORDS):
            return f"{base}: Part {ORDINAL_WORDS[n]}"
        if x < 0.7:
            return f"{base} Returns" if n == 2 else f"{base} {n}"
        if x < 0.8:
            return f"Return of the {base.removeprefix('The ')}"
        return f"{base}: {r.choice(W.SUBTITLES)}"

    def character(self, animated: bool) -> str:
        r = self.r
        x = r.random()
        if x < 0.55:
            s = f"{self.first()} {self.surname()}"
        elif x < 0.72:
            s = f"{self.first()} {self.surname()} / {self.alias()}"
        elif x < 0.84:
            s = self.alias()
        elif x < 0.94:
            s = f"{r.choice(W.CHARACTER_TITLES)} {self.first() if r.random() < 0.5 else self.surname()}"
        else:
            s = self.first()
        if animated and r.random() < 0.5:
            s += " (voice)"
        return s

    def alias(self) -> str:
        r = self.r
        pat = r.choice(W.ALIAS_PATTERNS)
        return pat.format(Adj=self.adj(), Noun=self.noun(), Sur=self.surname())


def split_character(credit: str) -> tuple[str, list[str]]:
    """A TMDB character credit -> (display name, names to index).

    "Bruce Wayne / Batman" -> ("Bruce Wayne / Batman", ["Bruce Wayne", "Batman"]);
    parentheticals such as "(voice)" or "(uncredited)" are dropped.
    """
    import re

    clean = re.sub(
        r"\s*\((?:voice|uncredited|archive footage|singing voice|"
        r"as [^)]*|[^)]*version)\)",
        "",
        credit or "",
        flags=re.I,
    ).strip()
    clean = re.sub(r"\s+", " ", clean)
    parts = [p.strip() for p in re.split(r"\s*/\s*", clean) if p.strip()]
    if not parts:
        return clean, []
    return clean, parts


def generate(n_names: int, seed: int = 2024) -> Iterator[dict]:
    """Entity records whose names add up to about n_names."""
    g = _Gen(seed)
    r = g.r
    # names per entity: titles ~1.05, people ~1.02, characters ~1.2
    n_titles = int(n_names * 0.46)
    n_people = int(n_names * 0.24)
    n_chars = int((n_names - n_titles * 1.03 - n_people * 1.02) / 1.17)
    n_tv = int(n_titles * 0.22)

    # popularity ranks: a random permutation per kind, popularity ~ C / rank^0.9
    def zipf_pops(n, scale):
        ranks = list(range(1, n + 1))
        r.shuffle(ranks)
        return [round(scale / rk**0.9 + r.random() * 0.05, 4) for rk in ranks]

    title_pop = zipf_pops(n_titles, 900.0)
    people_pop = zipf_pops(n_people, 300.0)
    # titles in decreasing popularity let sequels follow their originals
    order = sorted(range(n_titles), key=lambda i: -title_pop[i])
    titles = [None] * n_titles  # (key, type, name, original, year, pop, flags, genres)
    bases: list[tuple[str, str, int, float]] = []  # franchise bases: (name, type, count, pop)
    movie_id = tv_id = 0
    for rank, i in enumerate(order):
        is_tv = r.random() < n_tv / n_titles
        pop = title_pop[i]
        original = None
        if bases and r.random() < 0.10:
            bi = int(len(bases) * r.random() ** 3)
            bname, btype, cnt, bpop = bases[bi]
            if r.random() < 0.25 or cnt >= 7:
                name = bname  # a remake: same title, another year
            else:
                cnt += 1
                bases[bi] = (bname, btype, cnt, bpop)
                name = g.sequel(bname, cnt)
            is_tv = btype == "tv" and r.random() < 0.7
            pop = round(min(pop, bpop * 0.8) + r.random(), 4)
        else:
            name, original = g.title()
            if rank < n_titles * 0.05 and r.random() < 0.4:
                bases.append((name, "tv" if is_tv else "movie", 1, pop))
        if is_tv:
            tv_id += 1
            key = f"tv:{tv_id}"
        else:
            movie_id += 1
            key = f"movie:{movie_id}"
        anime = is_tv and (
            r.random() < 0.12 or (original is not None and any(w.lower() in W.JAPANESE for w in original.split()[:1]))
        )
        cartoon = (not anime) and r.random() < (0.10 if is_tv else 0.05)
        genres = r.sample(GENRES, r.choice((1, 2, 2, 3)))
        if anime or cartoon:
            genres = ["Animation"] + [x for x in genres if x != "Animation"][:2]
        year = 1930 + int(95 * r.random() ** 0.6)
        titles[i] = [key, "tv" if is_tv else "movie", name, original, year, pop, anime, cartoon, genres, []]

    people = []
    for i in range(n_people):
        name = g.person_name()
        aka = [g.person_name()] if r.random() < 0.02 else []
        people.append([f"person:{i + 1}", name, aka, people_pop[i], []])
    people_by_pop = sorted(range(n_people), key=lambda i: -people_pop[i])
    titles_by_pop = order

    chars = []
    for c in range(n_chars):
        ti = titles_by_pop[int(n_titles * r.random() ** 2.2)]
        while len(titles[ti][9]) >= MAX_CAST:  # casts as long as TMDB's, no longer
            ti = titles_by_pop[int(n_titles * r.random())]
        pi = people_by_pop[int(n_people * r.random() ** 1.8)]
        t = titles[ti]
        p = people[pi]
        animated = t[6] or t[7]
        credit = g.character(animated)
        display, names = split_character(credit)
        ckey = f"character:{c + 1}"
        cast_order = len(t[9])
        pop = round(t[5] * 0.6 / (1 + cast_order) + p[3] * 0.1, 4)
        t[9].append((p[0], ckey, credit, cast_order))
        p[4].append((t[0], ckey, credit))
        chars.append((ckey, display, names, credit, t[0], t[2], t[1], p[0], p[1], pop))

    for t in titles:
        key, typ, name, original, year, pop, anime, cartoon, genres, cast = t
        rec = {
            "key": key,
            "type": typ,
            "id": int(key.split(":")[1]),
            "name": name,
            "original_name": original or name,
            "year": year,
            "popularity": pop,
            "genres": genres,
            "overview": "",
            "cast": [{"person": pk, "character": ck, "credit": cr, "order": o} for pk, ck, cr, o in cast],
        }
        if typ == "tv":
            rec["is_anime"] = bool(anime)
            rec["is_cartoon"] = bool(cartoon)
        yield rec
    for ckey, display, names, credit, tkey, tname, ttype, pkey, pname, pop in chars:
        yield {
            "key": ckey,
            "type": "character",
            "id": int(ckey.split(":")[1]),
            "name": display,
            "aliases": names,
            "credit": credit,
            "title": tkey,
            "title_name": tname,
            "title_type": ttype,
            "person": pkey,
            "actor": pname,
            "popularity": pop,
        }
    for key, name, aka, pop, credits in people:
        yield {
            "key": key,
            "type": "person",
            "id": int(key.split(":")[1]),
            "name": name,
            "also_known_as": aka,
            "popularity": pop,
            "known_for_department": "Acting",
            "credits": [{"title": tk, "character": ck, "credit": cr} for tk, ck, cr in credits],
        }


def names_of(rec: dict) -> list[str]:
    """The names under which an entity record is indexed."""
    t = rec["type"]
    if t in ("movie", "tv"):
        out = [rec["name"]]
        if rec.get("original_name") and rec["original_name"] != rec["name"]:
            out.append(rec["original_name"])
        out.extend(a for a in rec.get("aliases") or [] if a not in out)
        return out
    if t == "person":
        return [rec["name"], *rec.get("also_known_as", [])]
    return list(rec.get("aliases") or [rec["name"]])
