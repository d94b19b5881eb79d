"""The search index: exact, prefix, substring, fuzzy and auto (autocomplete) over names.

Layout (all built once, then read-only; a rebuild swaps in a new index):

* names: one entry per (entity, display name); aliases of an entity are separate names.
  Name ids are assigned in ranking order (popularity descending, then type, then length), so
  "most popular first" is "smallest id first" everywhere below.
* key index: every normalized key (and the key without a leading article) in one sorted list;
  exact = equal range (its name ids come sorted), prefix = bisect range. Prefixes whose range
  holds more than HEAVY_KEY names keep a precomputed list of their HEAVY_TOP best name ids, so
  a one-letter prefix costs a dictionary lookup, as a long one does.
* word index: sorted vocabulary of the words of all names, CSR postings (name ids ascending).
  The words starting with a prefix are one contiguous vocabulary range, so their postings are
  one contiguous slice; heavy slices keep a precomputed sorted set of name ids.
* fuzzy: two deletion-neighbourhood indexes (fuzzy.py) over the vocabulary: full words
  (deletions of the first 7 characters) and distinct word prefixes of 3..9 characters (for a
  typo in the unfinished last word), verified with rapidfuzz's OSA distance.
* substring: a trigram index (CSR over trigram codes) over the padded keys, verified with `in`.

Match kinds rank exact > prefix > substring > fuzzy; inside a kind fewer edits first, then the
name id (popularity, type). Every hit carries its kind, edit distance and matched spans in the
display name.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz.distance import OSA

from content_service.engine.fuzzy import PREFIX_INDEX_MAX, PREFIX_LEN, DeletionIndex, deletions
from content_service.engine.normalize import (
    _fold_char,
    article_stripped,
    index_words,
    max_edits,
    normalize,
    normalize_key,
    normalize_spans,
    prefix_edits,
)

try:  # the compiled query path (_kernel.c, built by setup.py); without it, pure Python
    from content_service.engine import _kernel
except ImportError:  # pragma: no cover - the build hook was not run
    _kernel = None

MAXCH = "\U0010ffff"
KINDS = ("exact", "prefix", "substring", "fuzzy")
EXACT, PREFIX, SUBSTRING, FUZZY = range(4)
MODES = ("exact", "prefix", "substring", "fuzzy", "auto")
MODE_CODE = {m: i for i, m in enumerate(MODES)}  # the kernel's mode numbers
TYPES = ("movie", "tv", "character", "person")
TYPE_CODE = {t: i for i, t in enumerate(TYPES)}

HEAVY_KEY = 48  # above this many names a prefix range keeps its top ids (24k prefixes at 1M)
HEAVY_TOP = 128
HEAVY_WORD = 8192
SCAN_LIMIT = 200_000
WALK_GROWTH = 8  # growth of the chunks a multi-word intersection walks
FWD_WIDTH = 8  # words per name in the fixed-width forward index (all but 4 in a
# million generated names; a power of two: see _marked_distance)
_MIN2 = np.minimum(np.arange(65536) & 255, np.arange(65536) >> 8).astype(np.uint8)
SUBSTRING_LISTS = 3  # trigram posting lists intersected (the rarest drives); the rest verified
SUBSTRING_OTHER_MAX = 50_000  # longer trigram lists are not intersected (see _substring)
SUBSTRING_CHUNK = 64  # first chunk of driving ids; later chunks grow 4x


@dataclass(slots=True)
class Hit:
    entity: str
    type: str
    name: str
    kind: str
    distance: int
    spans: list[tuple[int, int]]
    popularity: float
    name_id: int

    def to_dict(self) -> dict:
        return {
            "entity": self.entity,
            "type": self.type,
            "name": self.name,
            "kind": self.kind,
            "distance": self.distance,
            "spans": [list(s) for s in self.spans],
            "popularity": round(float(self.popularity), 3),
        }


@dataclass(slots=True)
class EntityNames:
    """What the index needs of an entity: its key, type, popularity and names."""

    key: str
    type: str
    popularity: float
    names: list[str] = field(default_factory=list)


class StrTable:
    """A read-only list of strings kept as one UTF-8 blob and offsets (no object per string)."""

    __slots__ = ("blob", "off", "_o")

    def __init__(self, blob: bytes, off: np.ndarray):
        self.blob = blob
        self.off = off
        self._o = _mv(off)

    @classmethod
    def from_list(cls, items: list[str]) -> StrTable:
        enc = [x.encode("utf-8") for x in items]
        off = np.zeros(len(enc) + 1, dtype=np.int64)
        np.cumsum(np.fromiter((len(b) for b in enc), dtype=np.int64, count=len(enc)), out=off[1:])
        return cls(b"".join(enc), off)

    def __len__(self) -> int:
        return len(self.off) - 1

    def __getitem__(self, i: int) -> str:
        o = self._o
        return self.blob[o[i] : o[i + 1]].decode("utf-8")

    def many(self, idx: list[int]) -> list[str]:
        o = self._o
        b = self.blob
        return [b[o[i] : o[i + 1]].decode("utf-8") for i in idx]

    def __iter__(self):
        o = self.off.tolist()
        b = self.blob
        for i in range(len(o) - 1):
            yield b[o[i] : o[i + 1]].decode("utf-8")


def _mv(a: np.ndarray) -> memoryview:
    """A flat memoryview of an array: indexing it gives Python ints/floats at a fraction of
    the cost of numpy scalar indexing (the hit path reads a few elements per query)."""
    a = np.ascontiguousarray(a)
    return memoryview(a).cast("B").cast(a.dtype.char)


def _uniq(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: faster than numpy's hash unique on int ids)."""
    if len(a) <= 1:
        return a
    a = np.sort(a)
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _smallest_unique(arr: np.ndarray, k: int) -> tuple[np.ndarray | list[int], bool]:
    """The k smallest distinct values of arr, sorted (a list when arr is small: plain Python
    is faster than numpy on a few values); and whether that is all of them."""
    n = len(arr)
    if n <= 48:
        u = sorted(set(arr.tolist()))
        return u[:k], len(u) <= k
    if n <= 4 * k + 16:
        u = _uniq(arr)
        return u[:k], len(u) <= k
    kk = 2 * k
    part = np.partition(arr, kk)[: kk + 1]
    u = _uniq(part)
    if len(u) > k:
        return u[:k], False
    u = _uniq(arr)
    return u[:k], len(u) <= k


def _gallop_end(strings: list[str], lo: int, key: str, prefix: bool) -> int:
    """End of the run of sorted `strings` from lo that equal `key` (prefix=False) or start
    with it (prefix=True). Galloping from lo: the runs are short (an equal range is a few
    names; a prefix range without precomputed top ids at most HEAVY_KEY keys), so this reads
    a few strings next to lo instead of binary-searching the whole list (each string read is
    a cache miss)."""
    n = len(strings)
    if prefix:

        def inside(i):
            return strings[i].startswith(key)
    else:

        def inside(i):
            return strings[i] == key

    if lo >= n or not inside(lo):
        return lo
    a, step = lo, 1  # inside(a) holds
    b = lo + 1
    while b < n and inside(b):
        a = b
        step *= 2
        b = a + step
    b = min(b, n)  # the run ends in (a, b]
    while a + 1 < b:
        m = (a + b) // 2
        if inside(m):
            a = m
        else:
            b = m
    return b


def _prefix_walk(strings: list[str], weight, threshold: int):
    """Every non-empty prefix p of the sorted `strings` whose range weight exceeds threshold,
    as (p, lo, hi). weight(lo, hi) -> int."""
    out = []
    stack = [("", 0, len(strings))]
    while stack:
        p, lo, hi = stack.pop()
        d = len(p)
        i = bisect_right(strings, p, lo, hi) if p else lo
        while i < hi:
            s = strings[i]
            if len(s) <= d:
                i += 1
                continue
            np_ = p + s[d]
            j = bisect_left(strings, np_ + MAXCH, i, hi)
            if weight(i, j) > threshold:
                out.append((np_, i, j))
                stack.append((np_, i, j))
            i = j
    return out


def _pack_dict(d: dict[str, np.ndarray]) -> tuple[str, np.ndarray, np.ndarray]:
    keys = list(d)
    lens = np.array([len(d[k]) for k in keys], dtype=np.int64)
    off = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    vals = np.concatenate([d[k] for k in keys]) if keys else np.empty(0, np.int32)
    return "\x00".join(keys), off, vals.astype(np.int32)


def _unpack_dict(keys: str, off: np.ndarray, vals: np.ndarray) -> dict[str, np.ndarray]:
    if not keys and len(off) <= 1:
        return {}
    ks = keys.split("\x00")
    o = off.tolist()
    return {k: vals[o[i] : o[i + 1]] for i, k in enumerate(ks)}


class SearchIndex:
    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, entities: list[EntityNames]) -> SearchIndex:
        self = cls()
        ent_keys = [e.key for e in entities]
        ent_type = np.array([TYPE_CODE[e.type] for e in entities], dtype=np.uint8)
        ent_pop = np.array([e.popularity for e in entities], dtype=np.float32)
        entries = []  # (sort key..., entity, display, key, compounds)
        for ei, e in enumerate(entities):
            seen: set[str] = set()
            for disp in e.names:
                disp = (disp or "").replace("\x00", " ").replace("\n", " ").strip()
                if not disp:
                    continue
                key, comps = normalize_key(disp)
                if not key or key in seen:
                    continue
                seen.add(key)
                entries.append((-e.popularity, ent_type[ei], len(key), key, ei, disp, comps))
        entries.sort(key=lambda t: (t[0], t[1], t[2], t[3], t[4]))
        self.ent_keys = StrTable.from_list(ent_keys)
        self.ent_type = ent_type
        self.ent_pop = ent_pop
        self.name_entity = np.array([t[4] for t in entries], dtype=np.int32)
        self.names = StrTable.from_list([t[5] for t in entries])
        self.keys = [t[3] for t in entries]
        compounds = [t[6] for t in entries]
        del entries
        self._build_keys()
        self._build_words(compounds)
        self._build_fuzzy()
        self._build_trigrams()
        self._init_views()
        return self

    def _init_views(self):
        """Per-element views of the arrays the hit path reads (see _mv)."""
        self._ne = _mv(self.name_entity)
        self._et = _mv(self.ent_type)
        self._ep = _mv(self.ent_pop)
        self._skn = _mv(self.skey_name)
        self._tc = _mv(self.tri_codes)
        self._to = _mv(self.tri_off)
        self._po = _mv(self.post_off)
        self._plo = _mv(self.pref_lo)
        self._phi = _mv(self.pref_hi)
        self._plen = _mv(self.pref_len)
        self._build_fwd_fixed()
        self._kernel = self._make_kernel() if kernel_enabled() else None

    def _make_kernel(self):
        """The compiled query path over this index's structures (see _kernel.c)."""
        rows = {}
        vals = []
        off = [0]
        for p, top in self.heavy_key.items():
            rows[p] = len(rows)
            vals.append(np.asarray(top, dtype=np.int32))
            off.append(off[-1] + len(top))
        self._heavy_key_off = np.asarray(off, dtype=np.int64)
        self._heavy_key_vals = np.concatenate(vals) if vals else np.empty(0, np.int32)

        def arr(a, dt):
            return np.ascontiguousarray(a, dtype=dt)

        return _kernel.Kernel(
            self.skeys,
            self.keys,
            rows,
            Hit,
            KINDS,
            TYPES,
            match_spans,
            _one_fold,
            normalize,
            arr(self.skey_name, np.int32),
            self._heavy_key_off,
            self._heavy_key_vals,
            self.names.blob,
            arr(self.names.off, np.int64),
            self.ent_keys.blob,
            arr(self.ent_keys.off, np.int64),
            arr(self.name_entity, np.int32),
            arr(self.ent_type, np.uint8),
            arr(self.ent_pop, np.float32),
            arr(self.tri_codes, np.uint64),
            arr(self.tri_off, np.int64),
            arr(self.tri_ids, np.int32),
        )

    def _build_fwd_fixed(self):
        """The forward index at a fixed width: the first FWD_WIDTH word ids of each name, padded
        with the id len(vocab) (which every mark array leaves at 255), and a flag for the few
        names with more words. Checking candidates is then one gather and a row minimum
        instead of the CSR's eight array operations. Derived at load, not stored."""
        n = len(self.fwd_off) - 1
        pad = len(self.vocab)
        fixed = np.full((n, FWD_WIDTH), pad, dtype=np.int32)
        counts = np.diff(self.fwd_off)
        row = np.repeat(np.arange(n, dtype=np.int64), counts)
        col = np.arange(len(self.fwd_words), dtype=np.int64) - np.repeat(self.fwd_off[:-1], counts)
        keep = col < FWD_WIDTH
        fixed[row[keep], col[keep]] = self.fwd_words[keep]
        self.fwd_fixed = fixed
        self.fwd_more = counts > FWD_WIDTH
        self._over = np.flatnonzero(self.fwd_more).tolist()

    def _build_keys(self):
        pairs = [(k, i, 0) for i, k in enumerate(self.keys)]
        for i, k in enumerate(self.keys):
            alt = article_stripped(k)
            if alt:
                pairs.append((alt, i, len(k) - len(alt)))
        pairs.sort()
        self.skey_name = np.array([p[1] for p in pairs], dtype=np.int32)
        self.skey_off = np.array([p[2] for p in pairs], dtype=np.uint8)
        del pairs
        self._skeys_from_keys()
        self._build_heavy_keys()

    def _build_heavy_keys(self):
        heavy = {}
        for p, lo, hi in _prefix_walk(self.skeys, lambda a, b: b - a, HEAVY_KEY):
            heavy[p] = np.asarray(_smallest_unique(self.skey_name[lo:hi], HEAVY_TOP)[0], dtype=np.int32)
        self.heavy_key = heavy

    def _build_words(self, compounds):
        wid: dict[str, int] = {}
        pw: list[int] = []
        pn: list[int] = []
        for nid, key in enumerate(self.keys):
            for w in index_words(key, compounds[nid]):
                i = wid.get(w)
                if i is None:
                    i = wid[w] = len(wid)
                pw.append(i)
                pn.append(nid)
        ins_words = list(wid)
        order = sorted(range(len(ins_words)), key=ins_words.__getitem__)
        rank = np.empty(len(ins_words), dtype=np.int32)
        rank[np.array(order, dtype=np.int64)] = np.arange(len(ins_words), dtype=np.int32)
        self.vocab = [ins_words[i] for i in order]
        w_arr = rank[np.array(pw, dtype=np.int64)]
        n_arr = np.array(pn, dtype=np.int32)
        del pw, pn, wid
        # forward index: the words of each name (names appear in id order in the pairs)
        self.fwd_words = np.ascontiguousarray(w_arr)
        self.fwd_off = np.zeros(len(self.keys) + 1, dtype=np.int64)
        np.cumsum(np.bincount(n_arr, minlength=len(self.keys)), out=self.fwd_off[1:])
        srt = np.argsort(w_arr, kind="stable")  # names stay ascending inside a word
        w_arr = w_arr[srt]
        self.post_ids = np.ascontiguousarray(n_arr[srt])
        counts = np.bincount(w_arr, minlength=len(self.vocab))
        self.post_off = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.post_off[1:])
        off = self.post_off
        heavy = {}
        for p, lo, hi in _prefix_walk(self.vocab, lambda a, b: int(off[b] - off[a]), HEAVY_WORD):
            heavy[p] = _uniq(self.post_ids[off[lo] : off[hi]])
        self.heavy_word = heavy

    def _build_fuzzy(self):
        vocab = self.vocab
        self.word_del = DeletionIndex.build(
            (i, w[:PREFIX_LEN], 1 if len(w) <= 5 else 2) for i, w in enumerate(vocab) if len(w) >= 3
        )
        lo_l: list[int] = []
        hi_l: list[int] = []
        len_l: list[int] = []
        strs: list[str] = []
        n = len(vocab)
        for L in range(3, PREFIX_INDEX_MAX + 1):
            i = 0
            while i < n:
                w = vocab[i]
                if len(w) < L:
                    i += 1
                    continue
                p = w[:L]
                j = bisect_left(vocab, p + MAXCH, i + 1)
                lo_l.append(i)
                hi_l.append(j)
                len_l.append(L)
                strs.append(p)
                i = j
        self.pref_lo = np.array(lo_l, dtype=np.int32)
        self.pref_hi = np.array(hi_l, dtype=np.int32)
        self.pref_len = np.array(len_l, dtype=np.uint8)
        self.pref_del = DeletionIndex.build((i, p, 1) for i, p in enumerate(strs))

    def _build_trigrams(self):
        codes_parts = []
        ids_parts = []
        step = 100_000
        for start in range(0, len(self.keys), step):
            chunk = self.keys[start : start + step]
            big = "".join("\x02" + k + "\x03\x03" for k in chunk)
            a = np.frombuffer(big.encode("utf-32-le"), dtype=np.uint32)
            lens = np.fromiter((len(k) + 3 for k in chunk), dtype=np.int64, count=len(chunk))
            nid = np.repeat(np.arange(start, start + len(chunk), dtype=np.int32), lens)
            valid = a[:-2] != 3  # a window starting on a terminator crosses into the next key
            a64 = a.astype(np.uint64)
            codes = (a64[:-2] << np.uint64(42)) | (a64[1:-1] << np.uint64(21)) | a64[2:]
            codes_parts.append(codes[valid])
            ids_parts.append(nid[:-2][valid])
        codes = np.concatenate(codes_parts) if codes_parts else np.empty(0, np.uint64)
        ids = np.concatenate(ids_parts) if ids_parts else np.empty(0, np.int32)
        del codes_parts, ids_parts
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        ids = ids[order]
        del order
        keep = np.ones(len(codes), dtype=bool)
        keep[1:] = (codes[1:] != codes[:-1]) | (ids[1:] != ids[:-1])
        codes = codes[keep]
        ids = ids[keep]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.empty(0, dtype=np.int64)
        self.tri_codes = np.ascontiguousarray(codes[starts])
        self.tri_off = np.append(starts, len(codes)).astype(np.int64)
        self.tri_ids = np.ascontiguousarray(ids)

    def _skeys_from_keys(self):
        """The sorted key list, sharing the key strings (alternates are suffixes)."""
        keys = self.keys
        self.skeys = [
            keys[n][o:] if o else keys[n] for n, o in zip(self.skey_name.tolist(), self.skey_off.tolist(), strict=True)
        ]

    # ------------------------------------------------------------- snapshot
    _ARRAYS = (
        "ent_type",
        "ent_pop",
        "name_entity",
        "skey_name",
        "skey_off",
        "post_off",
        "post_ids",
        "fwd_words",
        "fwd_off",
        "pref_lo",
        "pref_hi",
        "pref_len",
        "tri_codes",
        "tri_off",
        "tri_ids",
    )
    _STRLISTS = ("keys", "vocab")
    _STRTABLES = ("ent_keys", "names")

    def to_snapshot(self) -> dict[str, bytes]:
        """The index as named byte blobs (arrays raw, string lists NUL-joined)."""
        out: dict[str, bytes] = {}
        meta = {}
        arrays = {n: getattr(self, n) for n in self._ARRAYS}
        arrays["word_del_h"], arrays["word_del_t"] = self.word_del.hashes, self.word_del.targets
        arrays["pref_del_h"], arrays["pref_del_t"] = self.pref_del.hashes, self.pref_del.targets
        for dname in ("heavy_key", "heavy_word"):
            ks, off, vals = _pack_dict(getattr(self, dname))
            out[f"{dname}.keys"] = ks.encode("utf-8")
            arrays[f"{dname}.off"] = off
            arrays[f"{dname}.vals"] = vals
        for n, a in arrays.items():
            a = np.ascontiguousarray(a)
            out[f"a.{n}"] = a.tobytes()
            meta[n] = a.dtype.str
        for n in self._STRLISTS:
            out[f"s.{n}"] = "\x00".join(getattr(self, n)).encode("utf-8")
        for n in self._STRTABLES:
            t = getattr(self, n)
            out[f"t.{n}"] = t.blob
            meta[f"{n}.off"] = t.off.dtype.str
            out[f"a.{n}.off"] = np.ascontiguousarray(t.off).tobytes()
        out["meta"] = repr(meta).encode()
        return out

    @classmethod
    def from_snapshot(cls, blobs: dict[str, bytes]) -> SearchIndex:
        import ast

        self = cls()
        meta = ast.literal_eval(blobs["meta"].decode())
        arr = {n: np.frombuffer(blobs[f"a.{n}"], dtype=np.dtype(dt)) for n, dt in meta.items()}
        for n in cls._ARRAYS:
            setattr(self, n, arr[n])
        self.word_del = DeletionIndex(arr["word_del_h"], arr["word_del_t"])
        self.pref_del = DeletionIndex(arr["pref_del_h"], arr["pref_del_t"])
        for dname in ("heavy_key", "heavy_word"):
            setattr(
                self,
                dname,
                _unpack_dict(blobs[f"{dname}.keys"].decode("utf-8"), arr[f"{dname}.off"], arr[f"{dname}.vals"]),
            )
        for n in cls._STRLISTS:
            raw = blobs[f"s.{n}"].decode("utf-8")
            setattr(self, n, raw.split("\x00") if raw else [])
        for n in cls._STRTABLES:
            setattr(self, n, StrTable(blobs[f"t.{n}"], arr[f"{n}.off"]))
        self._skeys_from_keys()
        self._init_views()
        return self

    # ---------------------------------------------------------------- stats
    def __len__(self) -> int:
        return len(self.names)

    @property
    def entity_count(self) -> int:
        return len(self.ent_keys)

    def stats(self) -> dict:
        return {
            "names": len(self.names),
            "entities": len(self.ent_keys),
            "keys": len(self.skeys),
            "words": len(self.vocab),
            "postings": int(len(self.post_ids)),
            "word_deletions": int(len(self.word_del.hashes)),
            "prefix_deletions": int(len(self.pref_del.hashes)),
            "trigram_postings": int(len(self.tri_ids)),
        }

    def popular(
        self, types: tuple[str, ...] | list[str] | None = None, limit: int = 20, offset: int = 0
    ) -> list[tuple[str, str, float]]:
        """The most popular entities (of the given types): (entity key, type, popularity)."""
        key = tuple(sorted(types)) if types else ()
        cache = self.__dict__.setdefault("_popular", {})
        top = cache.get(key)
        if top is None:
            idx = np.arange(len(self.ent_type))
            if key:
                mask = np.isin(self.ent_type, [TYPE_CODE[t] for t in key])
                idx = idx[mask]
            order = np.argsort(-self.ent_pop[idx], kind="stable")[:1000]
            top = cache[key] = idx[order]
        return [
            (self.ent_keys[int(e)], TYPES[int(self.ent_type[e])], float(self.ent_pop[e]))
            for e in top[offset : offset + limit]
        ]

    # ---------------------------------------------------------------- query
    def search(
        self, query: str, mode: str = "auto", limit: int = 10, types: tuple[str, ...] | list[str] | None = None
    ) -> list[Hit]:
        kernel = self._kernel
        if kernel is None:
            return self.search_python(query, mode, limit, types)
        code = MODE_CODE.get(mode)
        if code is None:
            raise ValueError(f"unknown mode {mode!r}")
        bits = 0
        if types:
            for t in types:
                c = TYPE_CODE.get(t)
                if c is None:  # what Python does with it (an empty query: no error)
                    return self.search_python(query, mode, limit, types)
                bits |= 1 << c
        # normalizes (in C for plain ASCII queries) and answers, or hands back the key
        found = kernel.search_text(query, code, limit, bits)
        if found.__class__ is list:
            return found
        return self._search_key(found, mode, limit, types)

    def search_python(
        self, query: str, mode: str = "auto", limit: int = 10, types: tuple[str, ...] | list[str] | None = None
    ) -> list[Hit]:
        """The pure-Python path: the reference the compiled one is tested against, and what
        answers when the kernel is not built (or CONTENT_KERNEL=0)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        key = normalize_key(query)[0]
        if not key or limit <= 0:
            return []
        return self._search_key(key, mode, limit, types, python=True)

    def _search_key(self, key: str, mode: str, limit: int, types, python: bool = False):
        words = key.split(" ")
        tmask = None
        if types:
            tmask = [False] * len(TYPES)
            for t in types:
                tmask[TYPE_CODE[t]] = True
        # the exact range and the prefix range both start here: one binary search for both
        lo = bisect_left(self.skeys, key)
        tiers = [(EXACT, lambda want: self._exact(key, want, lo))]
        if mode in ("prefix", "substring", "auto"):
            tiers.append((PREFIX, lambda want: self._prefix(key, want, lo)))
        if mode == "substring":
            tiers.append((SUBSTRING, lambda want: self._substring(key, want)))
        elif mode == "auto":
            tiers.append((SUBSTRING, lambda want: self._words(words, True, False, want)))
            tiers.append((FUZZY, lambda want: self._words(words, True, True, want)))
        elif mode == "fuzzy":
            tiers = self._fuzzy_tiers(key, words)
        found = self._collect(tiers, limit, tmask)
        if self._kernel is not None and not python:
            return self._kernel.hits(found, key, mode == "auto")
        return self._hits(found, key, words, mode == "auto")

    def _collect(self, tiers, limit, tmask):
        """Walk the tiers in rank order: (name id, kind, distance, entity) of the best name
        of each of the first `limit` entities (of the wanted types)."""
        out: list[tuple[int, int, int, int]] = []
        seen: set[int] = set()
        ne = self._ne
        et = self._et
        for kind, producer in tiers:
            want = 2 * (limit - len(out)) + 4
            while True:
                ids, dists, complete = producer(want)
                if len(ids) > want:
                    ids = ids[:want]
                    if isinstance(dists, (np.ndarray, list)):
                        dists = dists[:want]
                    complete = False
                start = len(out)
                idl = ids if isinstance(ids, list) else ids.tolist()
                if not isinstance(dists, (np.ndarray, list)):
                    d = int(dists)
                    for nid in idl:
                        e = ne[nid]
                        if e in seen or (tmask is not None and not tmask[et[e]]):
                            continue
                        seen.add(e)
                        out.append((nid, kind, d, e))
                        if len(out) >= limit:
                            return out
                else:
                    dl = dists if isinstance(dists, list) else dists.tolist()
                    for nid, d in zip(idl, dl, strict=True):
                        e = ne[nid]
                        if e in seen or (tmask is not None and not tmask[et[e]]):
                            continue
                        seen.add(e)
                        out.append((nid, kind, d, e))
                        if len(out) >= limit:
                            return out
                if complete:
                    break
                for f in out[start:]:
                    seen.discard(f[3])
                del out[start:]
                want *= 4
        return out

    # -- key tiers
    def _key_ids(self, lo, hi, want):
        """The first `want` distinct name ids of the sorted-key range [lo, hi)."""
        n = hi - lo
        if n <= 48:
            ids = self._skn[lo:hi].tolist()
            if n > 1:
                ids = sorted(set(ids))
            return ids[:want], len(ids) <= want
        return _smallest_unique(self.skey_name[lo:hi], want)

    def _exact(self, key, want=64, lo=None):
        # the pairs were sorted by (key, name id): an equal range is sorted and distinct
        skeys = self.skeys
        if lo is None:
            lo = bisect_left(skeys, key)
        hi = _gallop_end(skeys, lo, key, False)
        if hi - lo <= want:
            return self._skn[lo:hi].tolist(), 0, True
        return self._skn[lo : lo + want].tolist(), 0, False

    def _prefix_range(self, key, lo=None):
        skeys = self.skeys
        if lo is None:
            lo = bisect_left(skeys, key)
        return lo, _gallop_end(skeys, lo, key, True)

    def _prefix(self, key, want, lo=None):
        if want <= HEAVY_TOP:
            top = self.heavy_key.get(key)
            if top is not None:  # fewer than HEAVY_TOP ids: that is all of them
                return top[:want].tolist(), 0, len(top) <= want and len(top) < HEAVY_TOP
        lo, hi = self._prefix_range(key, lo)
        ids, complete = self._key_ids(lo, hi, want)
        return ids, 0, complete

    # -- substring (trigrams)
    def _tri_postings(self, code_lo, code_hi):
        a = np.searchsorted(self.tri_codes, np.uint64(code_lo), "left")
        b = np.searchsorted(self.tri_codes, np.uint64(code_hi), "left")
        return self.tri_ids[self.tri_off[a] : self.tri_off[b]]

    def _substring(self, key, want):
        m = len(key)
        if m < 3:
            cps = [ord(c) for c in key]
            if m == 2:
                base = (cps[0] << 42) | (cps[1] << 21)
                span = 1 << 21
            else:
                base = cps[0] << 42
                span = 1 << 42
            sl = self._tri_postings(base, base + span)
            if len(sl) <= SCAN_LIMIT:
                ids, complete = _smallest_unique(sl, want)
                return ids, 0, complete
            return self._scan(key, want)
        # the query's distinct trigrams, looked up in plain Python (a handful of values: numpy's
        # per-call overhead would cost more than the work)
        codes = sorted({(ord(key[i]) << 42) | (ord(key[i + 1]) << 21) | ord(key[i + 2]) for i in range(m - 2)})
        tc, to = self._tc, self._to
        n = len(tc)
        spans = []
        for c in codes:
            i = bisect_left(tc, c)
            if i >= n or tc[i] != c:
                return [], 0, True
            spans.append((to[i + 1] - to[i], to[i]))
        spans.sort()
        tri_ids = self.tri_ids
        # the rarest trigram drives; other lists filter its candidates only when they are small
        # (a binary search in a long list misses the cache at every level: verifying the
        # candidate's key costs less)
        lists = [
            tri_ids[a : a + size]
            for k, (size, a) in enumerate(spans[:SUBSTRING_LISTS])
            if k == 0 or size <= SUBSTRING_OTHER_MAX
        ]
        # the trigrams are the whole query: the postings are the answer, no verification
        verify = not (len(spans) <= 3 and m <= 3)
        keys = self.keys
        # walk the rarest trigram's names in id order, in growing chunks (small first: each
        # other list costs a binary search per candidate); stop at `want`
        drive, others = lists[0], lists[1:]
        out: list[int] = []
        pos = 0
        chunk = max(SUBSTRING_CHUNK, 2 * want)
        while pos < len(drive):
            cand = drive[pos : pos + chunk]
            pos += len(cand)
            chunk *= 4
            for other in others:
                j = np.searchsorted(other, cand)
                j[j >= len(other)] = len(other) - 1
                cand = cand[other[j] == cand]
                if not len(cand):
                    break
            for nid in cand.tolist():
                if not verify or key in keys[nid]:
                    out.append(nid)
                    if len(out) >= want:
                        return out, 0, False
        return out, 0, True

    def _scan(self, key, want):
        out = []
        for nid, k in enumerate(self.keys):
            if key in k:
                out.append(nid)
                if len(out) >= want:
                    return np.array(out, dtype=np.int32), 0, False
        return np.array(out, dtype=np.int32), 0, True

    # -- word tiers (auto substring/fuzzy, fuzzy mode)
    def _word_sources(self, w: str, last: bool, fuzzy: bool):
        """Vocabulary ranges matching query word w: list of (lo, hi, dist, prefix|None).
        Cached: while a user types, the earlier words of the query come back each keystroke."""
        cache = self.__dict__.setdefault("_src_cache", {})
        key = (w, last, fuzzy)
        found = cache.get(key)
        if found is None:
            if len(cache) > 20_000:
                cache.clear()
            found = cache[key] = self._compute_sources(w, last, fuzzy)
        return found

    def _compute_sources(self, w: str, last: bool, fuzzy: bool):
        vocab = self.vocab
        src = []
        m = len(w)
        if last:
            lo = bisect_left(vocab, w)
            hi = bisect_left(vocab, w + MAXCH, lo)
            if hi > lo:
                src.append((lo, hi, 0, w))
        else:
            i = bisect_left(vocab, w)
            if i < len(vocab) and vocab[i] == w:
                src.append((i, i + 1, 0, None))
        if not fuzzy:
            return src
        k = max_edits(m)
        if k and (not last or m >= 8):
            for wid in self.word_del.lookup(deletions(w[:PREFIX_LEN], k)).tolist():
                d = OSA.distance(w, vocab[wid], score_cutoff=k)
                if 0 < d <= k:
                    src.append((wid, wid + 1, d, None))
        if last and prefix_edits(m):
            w8 = w[: PREFIX_INDEX_MAX - 1]
            m8 = len(w8)
            plo, phi, plen = self._plo, self._phi, self._plen
            for pid in self.pref_del.lookup(deletions(w8, 1)).tolist():
                L = plen[pid]
                if abs(L - m8) > 1:
                    continue
                lo = plo[pid]
                p = vocab[lo][:L]
                d = OSA.distance(w8, p, score_cutoff=1)
                if d > 1:
                    continue
                hi = phi[pid]
                if m == m8:
                    if d:
                        src.append((lo, hi, d, p))
                    continue
                for wid in range(lo, hi):
                    d2 = _prefix_distance(w, vocab[wid], 1)
                    if 0 < d2 <= 1:
                        src.append((wid, wid + 1, d2, None))
        return src

    def _source_ids(self, lo, hi, p, want=None):
        """Sorted distinct name ids of a vocabulary range (the first `want` if given), and
        whether that is all of them."""
        off = self.post_off
        a, b = int(off[lo]), int(off[hi])
        if hi == lo + 1:
            ids = self.post_ids[a:b]
        elif b - a > HEAVY_WORD and p is not None and p in self.heavy_word:
            ids = self.heavy_word[p]
        elif want is not None:
            return _smallest_unique(self.post_ids[a:b], want)
        else:
            ids = _uniq(self.post_ids[a:b])
        if want is not None and len(ids) > want:
            return ids[:want], False
        return ids, True

    def _source_size(self, s):
        po = self._po
        return po[s[1]] - po[s[0]]

    def _words(self, words, last_prefix, fuzzy, want):
        if len(words) == 1:
            return self._single_word(words[0], last_prefix, fuzzy, want)
        per_word = []
        for i, w in enumerate(words):
            src = self._word_sources(w, last_prefix and i == len(words) - 1, fuzzy)
            if not src:
                return np.empty(0, np.int32), 0, True
            per_word.append(src)
        # fuzzy tier: distance 0 was the substring tier
        return self._words_topk(per_word, want, 1 if fuzzy else 0)

    def _words_topk(self, per_word, want, dmin):
        """The best `want` names (by total distance >= dmin, then id) matching every word,
        level by level: total distance 1 is one word with one edit and the others exact, and
        so on. Exact sources are selective, so each level's intersections stay cheap, and the
        levels stop as soon as `want` names are found."""
        levels = [sorted({x[2] for x in src}) for src in per_word]
        top = sum(lv[-1] for lv in levels)
        found: dict[int, int] = {}
        complete = True
        # one (sources, size, marks) per word and distance, shared by the combinations
        parts: dict[tuple[int, int], _Part] = {}
        for i, src in enumerate(per_word):
            for d in levels[i]:
                sub = [x for x in src if x[2] == d]
                parts[(i, d)] = _Part(sub, sum(self._source_size(x) for x in sub))
        for level in range(dmin, top + 1):
            level_ids: list[np.ndarray] = []
            for combo in _combos(levels, level):
                srcs = [parts[(i, d)] for i, d in enumerate(combo)]
                ids, done = self._intersect_ids(srcs, want + len(found))
                complete &= done
                if len(ids):
                    level_ids.append(np.asarray(ids))
            if level_ids:
                for n in _uniq(np.concatenate(level_ids)).tolist():
                    if n not in found:
                        found[n] = level
            if len(found) >= want:
                break
        else:
            level = top
        if not found:
            return np.empty(0, np.int32), 0, complete
        ids = np.fromiter(found.keys(), dtype=np.int32, count=len(found))
        dist = np.fromiter(found.values(), dtype=np.int32, count=len(found))
        order = np.lexsort((ids, dist))
        # levels above the last one looked at were not searched: more may exist there
        return ids[order], dist[order], complete and level >= top

    def _intersect_ids(self, parts: list[_Part], want: int) -> tuple[np.ndarray, bool]:
        """The first `want` name ids (ascending) matching every part - one word's sources at
        one distance each, so every match is at the same total distance - and whether that
        is all of them.

        One part drives: its ids are walked in id order (popularity), in growing chunks, and
        checked against the other parts' marks through the forward index. The walk stops
        once `want` matches are found: no later id can beat them."""
        # walking a direct word costs nothing up front; merging one costs a sort of its ids
        parts = sorted(parts, key=lambda p: p.size * (1 if len(p.src) == 1 else 3))
        drive = parts[0].src
        if len(drive) == 1:  # a sorted id array without merging
            lo, hi, _, p = drive[0]
            d_ids = self._source_ids(lo, hi, p)[0]
        else:  # one sort over the raw posting slices of every source
            po, post = self._po, self.post_ids
            d_ids = _uniq(
                np.concatenate(
                    [
                        post[po[lo] : po[hi]]
                        if hi == lo + 1 or po[hi] - po[lo] <= HEAVY_WORD
                        else self._source_ids(lo, hi, p)[0]
                        for lo, hi, _, p in drive
                    ]
                )
            )
        others = [p.marks(self) for p in parts[1:]]
        n = len(d_ids)
        pos = 0
        chunk = max(64, 4 * want)
        got: list[np.ndarray] = []
        count = 0
        while pos < n:
            ids = d_ids[pos : pos + chunk]
            pos += len(ids)
            chunk *= WALK_GROWTH
            for marks in others:
                ids = ids[self._marked_distance(ids, marks) < 255]
                if not len(ids):
                    break
            if len(ids):
                got.append(ids)
                count += len(ids)
                if count >= want:
                    break
        if not got:
            return np.empty(0, np.int32), True
        # chunks are consecutive slices of an ascending array: already in order
        return (np.concatenate(got) if len(got) > 1 else got[0]), pos >= n

    def _mark(self, sources) -> np.ndarray:
        """word id -> smallest distance of the sources covering it (255: none); one slot more
        than the vocabulary, the fixed-width forward index's padding, always 255."""
        wd = np.full(len(self.vocab) + 1, 255, dtype=np.uint8)
        # largest distance first, so a smaller one overwrites it: the minimum, one slice
        # assignment per source
        for lo, hi, d, _ in sources if len(sources) == 1 else sorted(sources, key=lambda x: -x[2]):
            wd[lo:hi] = d
        return wd

    def _marked_distance(self, ids: np.ndarray, wd: np.ndarray) -> np.ndarray:
        """For each name id: the smallest marked distance among its words (255: none), read
        through the forward index (name -> words): no posting list is touched."""
        # marks of the words of each row as (n, FWD_WIDTH) bytes; the row minimum by halving
        # the width through a table of min(low byte, high byte) over uint16 pairs: numpy's
        # min(axis=1) over a short axis costs several times as much
        g = wd.take(self.fwd_fixed.take(ids, axis=0))
        while g.shape[1] > 1:
            g = _MIN2.take(g.view(np.uint16))
        best = g.ravel()
        over = self._over
        if over:  # names with more than FWD_WIDTH words (a handful)
            i = bisect_left(over, int(ids.min()))
            if i < len(over) and over[i] <= int(ids.max()):
                sel = np.flatnonzero(self.fwd_more.take(ids))
                if len(sel):
                    best[sel] = self._marked_distance_csr(ids[sel], wd)
        return best

    def _marked_distance_csr(self, ids: np.ndarray, wd: np.ndarray) -> np.ndarray:
        starts = self.fwd_off[ids]
        lens = self.fwd_off[ids + 1] - starts
        total = int(lens.sum())
        if not total:
            return np.full(len(ids), 255, dtype=np.uint8)
        ends = np.cumsum(lens)
        firsts = ends - lens
        flat = np.arange(total, dtype=np.int64) + np.repeat(starts - firsts, lens)
        return np.minimum.reduceat(wd[self.fwd_words[flat]], firsts)

    def _single_word(self, w, last_prefix, fuzzy, want):
        src = self._word_sources(w, last_prefix, fuzzy)
        if fuzzy:
            src = [s for s in src if s[2] > 0]
        groups: dict[int, list] = {}
        for s in src:
            groups.setdefault(s[2], []).append(s)
        all_ids, all_d = [], []
        complete = True
        for d in sorted(groups):
            parts = []
            for lo, hi, _, p in groups[d]:
                ids, full = self._source_ids(lo, hi, p, want)
                complete &= full
                parts.append(ids)
            u = _uniq(np.concatenate(parts)) if len(parts) > 1 else parts[0]
            all_ids.append(u)
            all_d.append(np.full(len(u), d, dtype=np.int32))
        if not all_ids:
            return np.empty(0, np.int32), 0, True
        return np.concatenate(all_ids), np.concatenate(all_d), complete

    def _fuzzy_tiers(self, key, words):
        """Fuzzy mode: every query word matches a whole word of the name within its typo
        budget. Kinds: exact (the key), prefix (the key starts with the query at a word
        boundary), substring (all words found without edits), fuzzy (with edits)."""
        exact_srcs = []
        for w in words:
            i = bisect_left(self.vocab, w)
            exact_srcs.append([(i, i + 1, 0, None)] if i < len(self.vocab) and self.vocab[i] == w else [])

        def prefix(want):
            # the key starts with the query and a word boundary follows: a prefix range
            return self._prefix(key + " ", want)

        def substring(want):
            if not all(exact_srcs):
                return np.empty(0, np.int32), 0, True
            if len(words) == 1:
                lo, hi, d, p = exact_srcs[0][0]
                return self._source_ids(lo, hi, p)[0], 0, True
            return self._words_topk(exact_srcs, want, 0)

        def fuzzy(want):
            if len(words) == 1:
                return self._single_word(words[0], False, True, want)
            per_word = [self._word_sources(w, False, True) for w in words]
            if not all(per_word):
                return np.empty(0, np.int32), 0, True
            return self._words_topk(per_word, want, 1)

        return [(EXACT, lambda want: self._exact(key, want)), (PREFIX, prefix), (SUBSTRING, substring), (FUZZY, fuzzy)]

    # ---------------------------------------------------------------- hits
    def _hits(self, found, qkey, qwords, last_prefix) -> list[Hit]:
        et = self._et
        ep = self._ep
        nb, no = self.names.blob, self.names._o
        eb, eo = self.ent_keys.blob, self.ent_keys._o
        keys = self.keys
        qlen = len(qkey)
        out = []
        for nid, kind, d, e in found:
            name = nb[no[nid] : no[nid + 1]].decode("utf-8")
            key = keys[nid]
            # the common case of the key tiers: the query is a prefix of the key, and the
            # name maps onto its key character for character (ASCII, nothing dropped)
            if (
                kind <= PREFIX
                and key.startswith(qkey)
                and len(name) == len(key)
                and name.isascii()
                and "&" not in name
                and "+" not in name
            ):
                spans = [(0, qlen)]
            elif (
                kind == SUBSTRING
                and len(name) == len(key)
                and name.isascii()
                and "&" not in name
                and "+" not in name
                and (i := key.find(qkey)) >= 0
            ):
                spans = [(i, i + qlen)]
            else:
                spans = match_spans(name, kind, qkey, qwords, last_prefix, key)
            out.append(
                Hit(eb[eo[e] : eo[e + 1]].decode("utf-8"), TYPES[et[e]], name, KINDS[kind], d, spans, ep[e], nid)
            )
        return out


def kernel_enabled() -> bool:
    """Whether indexes get the compiled query path: the module is built and CONTENT_KERNEL is
    not 0."""
    return _kernel is not None and os.environ.get("CONTENT_KERNEL", "1") != "0"


class _Part:
    """One query word's sources at one distance, with their total size and (lazily) the
    word -> distance marks used to check candidates through the forward index."""

    __slots__ = ("src", "size", "_marks")

    def __init__(self, src, size: int):
        self.src = src
        self.size = size
        self._marks = None

    def marks(self, index: SearchIndex) -> np.ndarray:
        if self._marks is None:
            self._marks = index._mark(self.src)
        return self._marks


def _combos(levels: list[list[int]], total: int):
    """Every choice of one distance per word (from that word's levels) summing to total."""
    if not levels:
        if total == 0:
            yield ()
        return
    for d in levels[0]:
        if d <= total:
            for rest in _combos(levels[1:], total - d):
                yield (d, *rest)


def _prefix_distance(q: str, w: str, k: int) -> int:
    """min over the prefixes p of w of OSA(q, p), capped at k + 1 (only prefixes whose length
    is within k of len(q) can be that close)."""
    m = len(q)
    best = k + 1
    for j in range(max(1, m - k), m + k + 1):
        if j > len(w):
            break
        d = OSA.distance(q, w[:j], score_cutoff=k)
        if d < best:
            best = d
    return best


def _compounds(toks, word: str | None = None) -> list[tuple[int, str, int]]:
    """Compounds ("spider man" -> "spiderman") of 2..6 consecutive tokens as (start, joined
    string, length in the key); with `word`, only those whose first token is a proper prefix
    of it."""
    out = []
    for a in range(len(toks)):
        s0, first = toks[a]
        if word is not None and not (len(first) < len(word) and word.startswith(first)):
            continue
        for b in range(a + 1, min(a + 6, len(toks))):
            out.append((s0, "".join(t for _, t in toks[a : b + 1]), toks[b][0] + len(toks[b][1]) - s0))
    return out


def _joined_end(key: str, start: int, n: int) -> int:
    """End in key of the first n non-space characters from start."""
    i = start
    while n and i < len(key):
        if key[i] != " ":
            n -= 1
        i += 1
    return i


_ONE_FOLD: dict[str, bool] = {}


def _one_fold(c: str) -> bool:
    """Whether the letter or digit c folds to exactly one key character."""
    one = _ONE_FOLD.get(c)
    if one is None:
        f = _fold_char(c)
        one = _ONE_FOLD[c] = len(f) == 1 and f.isalnum()
    return one


def _alnum_positions(name: str) -> list[int] | None:
    """Positions of the letters and digits of `name`, when each of them folds to exactly one
    key character (then the key's non-space characters are those, in order); else None."""
    out = []
    for i, c in enumerate(name):
        if c.isalnum():
            if c > "\x7f" and not _one_fold(c):  # ß -> ss, æ -> ae, ½ -> 12: the careful path
                return None
            out.append(i)
    return out


def _map_spans(name: str, key: str, key_spans) -> list[tuple[int, int]]:
    """Key spans -> spans of the display name."""
    if "&" not in name and "+" not in name:
        if name.isascii():
            if len(name) == len(key):
                # ASCII keys only drop or collapse characters: nothing was, so key position
                # i is name position i
                return list(key_spans)
            alnum = [i for i, c in enumerate(name) if c.isalnum()]
        else:
            alnum = _alnum_positions(name)
        if alnum is not None and len(alnum) == len(key) - key.count(" "):
            out = []
            for s, e in key_spans:
                a = s - key.count(" ", 0, s)
                b = (e - 1) - key.count(" ", 0, e - 1)
                if e > s and b < len(alnum):
                    out.append((alnum[a], alnum[b] + 1))
            return out
    _, pos, _ = normalize_spans(name)
    return [(pos[s], pos[e - 1] + 1) for s, e in key_spans if s < e <= len(pos)]


def match_spans(name: str, kind: int, qkey: str, qwords: list[str], last_prefix: bool, key: str | None = None):
    """Character spans [start, end) of `name` that the query matched, for highlighting."""
    if key is None:
        key = normalize_key(name)[0]
    if not key:
        return []
    key_spans: list[tuple[int, int]] = []
    if kind in (EXACT, PREFIX):
        if key.startswith(qkey):
            key_spans = [(0, len(qkey))]
        else:
            alt = article_stripped(key)
            if alt is not None and alt.startswith(qkey):
                s = len(key) - len(alt)
                key_spans = [(s, s + len(qkey))]
    if not key_spans and kind == SUBSTRING:
        i = key.find(qkey)
        if i >= 0:
            key_spans = [(i, i + len(qkey))]
    if not key_spans:
        toks = []
        start = 0
        for t in key.split(" "):
            toks.append((start, t))
            start += len(t) + 1
        joined = None
        for qi, w in enumerate(qwords):
            is_last = last_prefix and qi == len(qwords) - 1
            m = len(w)
            k = max(max_edits(m), prefix_edits(m) if is_last else 0)
            best = None
            for s, t in toks:
                if t == w:
                    best = (0, s, s + len(t))
                    break  # the first token at distance 0: nothing beats it
                if is_last and t.startswith(w):
                    best = (0, s, s + m)
                    break
                if not k:
                    continue
                # the distance is at least the length difference: skip rapidfuzz when that
                # alone is over the budget (score_cutoff would answer k + 1)
                d = OSA.distance(w, t, score_cutoff=k) if abs(len(t) - m) <= k else k + 1
                cand = (d, s, s + len(t))
                if is_last:
                    for j in range(max(1, m - 1), min(len(t), m + 1) + 1):
                        dj = OSA.distance(w, t[:j], score_cutoff=1)
                        if dj < cand[0]:
                            cand = (dj, s, s + j)
                if cand[0] > k:
                    continue
                if best is None or cand[0] < best[0]:
                    best = cand
            if best is None or best[0] > 0:
                kj = max_edits(m)
                if best is not None and min(kj, best[0] - 1) <= 0:
                    # only an exact compound could still win, and one starts with a token
                    # that is a proper prefix of the word: build just those
                    cands = _compounds(toks, w)
                else:
                    if joined is None:  # built once per name, when a word needs them
                        joined = _compounds(toks)
                    cands = joined
                for s0, t, length in cands:
                    if t == w or (is_last and t.startswith(w)):
                        d = 0
                    else:
                        # only a distance below the best so far (and within the budget)
                        # counts: the length difference alone may rule it out
                        lim = kj if best is None else min(kj, best[0] - 1)
                        if lim <= 0 or abs(len(t) - m) > lim:
                            continue
                        d = OSA.distance(w, t, score_cutoff=lim)
                        if d > lim:
                            continue
                    if best is None or d < best[0]:
                        end = s0 + length
                        if is_last and t.startswith(w) and t != w:  # spread over the parts
                            end = _joined_end(key, s0, len(w))
                        best = (d, s0, end)
            if best is not None:
                key_spans.append((best[1], best[2]))
        key_spans = sorted(set(key_spans))
    return _map_spans(name, key, key_spans)
