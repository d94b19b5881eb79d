"""The compiled query path (content_service/engine/_kernel.c) against the pure-Python one:
identical hits - same entities, names, order, kinds, distances, spans, popularity, name ids -
for every mode on generated query sets, and the kernel must answer most of them itself (so
the comparison is not Python against Python)."""

from __future__ import annotations

import random

import pytest

from content_service.corpus import generate, names_of
from content_service.corpus.real import real_records
from content_service.engine import EntityNames, SearchIndex
from content_service.engine import index as index_module
from content_service.engine.normalize import article_stripped, normalize_key

# names that take every span path: & and + (careful path), letters folding to two characters,
# one-to-one folds, apostrophes and joiners (key shorter than the name), articles, non-Latin
# keys, keys longer than 8 bytes sharing their first 8, a name longer than the 8-word
# forward-index width
TRICKY = [
    "Fast & Furious",
    "Romeo + Juliet",
    "Straße der Sehnsucht",
    "Ærø Æventyr",
    "Ægir",
    "Léon: The Professional",
    "Amélie",
    "Björk Guðmundsdóttir",
    "Spider-Man",
    "Spider-Man 2",
    "S.H.I.E.L.D.",
    "L'Avventura",
    "Schindler's List",
    "The Dark Knight",
    "The Dark Knight Rises",
    "Dark Knight Returns",
    "La Haine",
    "Les Misérables",
    "El Laberinto del Fauno",
    "Москва слезам не верит",
    "千と千尋の神隠し",
    "Naruto Shippūden",
    "Pokémon: The First Movie",
    "8½",
    "Ocean's Eleven",
    "Ocean's Twelve",
    "Rocky II",
    "Star Wars: Episode IV",
    "Star Wars: Episode V",
    "Star Wars: Episode VI",
    "The Lord of the Rings: The Return of the King",
    "ＡＢＣ Murder",
    "Łódź Story",
    "Çağan Irmak",
    "Øresund",
    "Þór",
    "Æon Flux",
    "Mr. & Mrs. Smith",
    "A.I. Artificial Intelligence",
    "WALL·E",
    "Face/Off",
    "M*A*S*H",
]


def _records():
    recs = list(generate(16_000, seed=21))
    recs += real_records()
    for i, name in enumerate(TRICKY):
        recs.append({"key": f"movie:9{i:05d}", "type": "movie", "popularity": 50.0 + i, "name": name})
        recs.append({"key": f"person:9{i:05d}", "type": "person", "popularity": 3.0 + i, "name": name + " Jr"})
    return recs


@pytest.fixture(scope="module")
def index():
    if index_module._kernel is None:
        pytest.fail("the compiled kernel is not built: pip install -e . (scripts/bootstrap.sh)")
    idx = SearchIndex.build([EntityNames(r["key"], r["type"], r["popularity"], names_of(r)) for r in _records()])
    assert idx._kernel is not None, "CONTENT_KERNEL=0 is set: the kernel is off"
    return idx


def _typo(rnd, w):
    if len(w) < 4:
        return w
    i = rnd.randrange(len(w))
    op = rnd.choice("sidt")
    c = rnd.choice("abcdefghiklmnoprstuwyéß")
    if op == "s":
        return w[:i] + c + w[i + 1 :]
    if op == "i":
        return w[:i] + c + w[i:]
    if op == "d":
        return w[:i] + w[i + 1 :]
    return w[:i] + w[i + 1 : i + 2] + w[i] + w[i + 2 :]


def _queries(idx, n, seed):
    """Queries as users type them: display names and keys cut at every length, exact keys,
    article-stripped keys, substrings of 1..10 characters (spaces included), typos,
    upper case and punctuation (normalized away), popular names more often."""
    rnd = random.Random(seed)
    N = len(idx.keys)
    out = []
    tricky = [normalize_key(t)[0] for t in TRICKY] + list(TRICKY)
    while len(out) < n:
        key = idx.keys[min(N - 1, int(N * rnd.random() ** 3))] if rnd.random() < 0.85 else rnd.choice(tricky)
        r = rnd.random()
        if r < 0.2:
            q = key
        elif r < 0.45:
            q = key[: rnd.randint(1, max(1, len(key)))]
        elif r < 0.55:
            q = (article_stripped(key) or key)[: rnd.randint(1, len(key))]
        elif r < 0.8:
            a = rnd.randrange(len(key))
            q = key[a : a + rnd.randint(1, 10)]
        else:
            words = key.split(" ")
            j = rnd.randrange(len(words))
            words[j] = _typo(rnd, words[j])
            q = " ".join(words)[: rnd.randint(1, len(key) + 1)]
        if rnd.random() < 0.1:
            q = q.upper()
        if rnd.random() < 0.05:
            q = q.replace(" ", " - ")
        out.append(q)
    return out


MODE_SEEDS = {"exact": 1, "prefix": 2, "substring": 3, "auto": 4, "fuzzy": 5}
CASES = [(10, None), (1, None), (50, None), (5, ("person",)), (20, ("movie", "tv")), (7, ("character",)), (300, None)]


@pytest.mark.parametrize("mode", ["exact", "prefix", "substring", "auto", "fuzzy"])
def test_compiled_equals_pure_python(index, mode):
    queries = _queries(index, 700, seed=MODE_SEEDS[mode])
    answered = 0
    asked = 0
    for i, q in enumerate(queries):
        limit, types = CASES[i % len(CASES)]
        got = index.search(q, mode, limit, types)
        want = index.search_python(q, mode, limit, types)
        assert got == want, (
            q,
            mode,
            limit,
            types,
            [(h.name, h.kind, h.distance, h.spans) for h in got][:5],
            [(h.name, h.kind, h.distance, h.spans) for h in want][:5],
        )
        assert [h.to_dict() for h in got] == [h.to_dict() for h in want]
        key = normalize_key(q)[0]
        if key:
            bits = sum(1 << index_module.TYPE_CODE[t] for t in types or ())
            asked += 1
            answered += index._kernel.search(key, index_module.MODE_CODE[mode], limit, bits) is not None
    # the kernel answers these modes in full unless a query needs the Python tiers
    if mode in ("exact", "prefix"):
        assert answered >= 0.95 * asked, (answered, asked)
    elif mode == "substring":
        assert answered >= 0.85 * asked, (answered, asked)
    elif mode == "auto":
        assert answered >= 0.2 * asked, (answered, asked)
    else:  # fuzzy: Python collects, the kernel assembles the hits (compared above)
        assert answered == 0


def test_hit_assembly_equals_pure_python(index):
    """kernel.hits (used after the Python tiers) against _hits, on every kind, including the
    word spans of fuzzy and multi-word matches."""
    rnd = random.Random(5)
    queries = _queries(index, 400, seed=9)
    for q in queries:
        key = normalize_key(q)[0]
        if not key:
            continue
        words = key.split(" ")
        for mode in ("auto", "fuzzy", "substring"):
            found = index._collect(_tiers(index, key, words, mode), rnd.choice((5, 10, 40)), None)
            assert index._kernel.hits(found, key, mode == "auto") == index._hits(found, key, words, mode == "auto"), (
                q,
                mode,
            )


def _tiers(index, key, words, mode):
    from bisect import bisect_left

    lo = bisect_left(index.skeys, key)
    tiers = [(0, lambda want: index._exact(key, want, lo)), (1, lambda want: index._prefix(key, want, lo))]
    if mode == "substring":
        tiers.append((2, lambda want: index._substring(key, want)))
    elif mode == "auto":
        tiers.append((2, lambda want: index._words(words, True, False, want)))
        tiers.append((3, lambda want: index._words(words, True, True, want)))
    else:
        tiers = index._fuzzy_tiers(key, words)
    return tiers


def test_query_normalization_equals_normalize(index):
    """search_text normalizes plain ASCII queries in C: the same key as normalize(), for
    random ASCII text (and the rest goes through normalize() itself)."""
    from content_service.engine.normalize import normalize

    rnd = random.Random(12)
    alphabet = "abcXYZ019 -.,:;!?'`&+/\t\n()[]_*#\"~é"
    fuzzy = index_module.MODE_CODE["fuzzy"]  # answered by Python: hands back the key
    for _ in range(5000):
        q = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14)))
        want = normalize(q)
        assert index._kernel.search_text(q, fuzzy, 10, 0) == (want if want else []), repr(q)


def test_heavy_prefix_beyond_its_top_ids_falls_back(index):
    """A one-letter prefix keeps only its best 128 ids: asking for more entities of a rare
    type than those hold must come back to Python, and still equal it."""
    key = "s"
    assert key in index.heavy_key
    assert (
        index._kernel.search(key, index_module.MODE_CODE["prefix"], 200, 1 << index_module.TYPE_CODE["person"]) is None
    )
    got = index.search(key, "prefix", 200, ("person",))
    assert len(got) == 200
    assert got == index.search_python(key, "prefix", 200, ("person",))


def test_snapshot_index_gets_the_kernel(index):
    idx2 = SearchIndex.from_snapshot(index.to_snapshot())
    assert idx2._kernel is not None
    for q in ("the dark", "spider m", "ß", "amelie", "star wars e", "ark kn"):
        for mode in ("exact", "prefix", "substring", "auto"):
            assert idx2.search(q, mode, 10) == index.search_python(q, mode, 10)


def test_kernel_off_is_pure_python(index, monkeypatch):
    monkeypatch.setenv("CONTENT_KERNEL", "0")
    idx = SearchIndex.build([EntityNames("movie:1", "movie", 1.0, ["The Dark Knight"])])
    assert idx._kernel is None
    assert [h.name for h in idx.search("dark kn", "auto")] == ["The Dark Knight"]
