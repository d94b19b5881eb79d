"""The search engine: normalization, each mode on hand-made cases, ranking, recall against a
brute-force scan, persistence."""

from __future__ import annotations

import random

import pytest
from rapidfuzz.distance import OSA

from content_service.corpus import generate, names_of
from content_service.corpus.real import real_records
from content_service.engine import EntityNames, SearchIndex, Store
from content_service.engine.index import KINDS, _gallop_end, _map_spans
from content_service.engine.normalize import (
    article_stripped,
    index_words,
    max_edits,
    normalize,
    normalize_key,
    normalize_spans,
    prefix_edits,
)


def entity_names(records):
    return [EntityNames(r["key"], r["type"], r["popularity"], names_of(r)) for r in records]


@pytest.fixture(scope="module")
def real():
    return SearchIndex.build(entity_names(real_records()))


@pytest.fixture(scope="module")
def synthetic():
    recs = list(generate(12_000, seed=11))
    return recs, SearchIndex.build(entity_names(recs))


def names(hits):
    return [h.name for h in hits]


def entities(hits):
    return [h.entity for h in hits]


# ---------------------------------------------------------------- normalization
@pytest.mark.parametrize(
    "text,key",
    [
        ("Léon: The Professional", "leon the professional"),
        ("Schindler's List", "schindlers list"),
        ("L'Avventura", "l avventura"),
        ("Fast & Furious", "fast and furious"),
        ("Spider-Man", "spider man"),
        ("  The   Dark—Knight ", "the dark knight"),
        ("Björk Guðmundsdóttir", "bjork gudmundsdottir"),
        ("Straße", "strasse"),
        ("Ærø", "aero"),
        ("ＡＢＣ", "abc"),
        ("Naruto Shippūden", "naruto shippuden"),
        ("!!!", ""),
    ],
)
def test_normalize(text, key):
    assert normalize(text) == key
    assert normalize_spans(text)[0] == key


def test_compounds_articles_and_numerals():
    key, comps = normalize_key("Spider-Man")
    assert comps == ["spiderman"]
    assert index_words(key, comps) == ["spider", "man", "spiderman"]
    assert normalize_key("S.H.I.E.L.D.")[1] == ["shield"]
    assert "2" in index_words("rocky ii")
    assert article_stripped("the dark knight") == "dark knight"
    assert article_stripped("the") is None
    assert article_stripped("batman") is None


def test_fast_path_equals_careful_path():
    samples = [
        "a⑴b",
        "＆",
        "Ⅻ",
        "ﬁre",
        "Zoë’s",
        "naïve—x",
        "Łódź",
        "l'-x",
        "rock'n-roll",
        "a--b",
        "1.5",
        "AT&T",
        "C++",
        "e.g.",
        "o'neil-smith",
        "WALL·E",
    ]
    samples += [n for r in generate(3000, seed=5) for n in names_of(r)]
    for s in samples:
        k, _, c = normalize_spans(s)
        assert normalize_key(s) == (k, c), s


def test_spans_map_back_to_the_original():
    key, pos, _ = normalize_spans("Léon: The Professional")
    assert key == "leon the professional"
    assert [pos[i] for i in range(4)] == [0, 1, 2, 3]
    assert pos[key.index("the")] == 6


def test_span_mapping_equals_the_careful_path():
    """The hit path maps key spans to the display name without normalize_spans when it can
    (ASCII, or letters that fold to one character each); it must agree with it."""
    samples = [
        "Léon: The Professional",
        "Straße Kids",
        "Ærø Æon",
        "½ Moon",
        "Tom & Jerry",
        "L'Avventura",
        "Amélie",
        "Pokémon: Mewtwo",
        "Schindler's List",
        "Ça & Là",
        "WALL·E",
        "ﬁre walk",
        "Zoë’s  Day",
        "  The   Dark—Knight ",
        "naïve—x",
        "Ⅻ Monkeys",
        "Łódź Story",
        "C++ Lives",
        "o'neil-smith",
        "Naruto Shippūden",
        "Björk Guðmundsdóttir",
    ]
    samples += [n for r in generate(3000, seed=5) for n in names_of(r)]
    for name in samples:
        key, pos, _ = normalize_spans(name)
        if not key:
            continue
        spans = [(0, len(key))]
        start = 0
        for w in key.split(" "):  # every word, and every run of two words
            spans.append((start, start + len(w)))
            start += len(w) + 1
        spans += [(a[0], b[1]) for a, b in zip(spans[1:], spans[2:], strict=False)]
        careful = [(pos[s], pos[e - 1] + 1) for s, e in spans]
        assert _map_spans(name, key, spans) == careful, name


def test_gallop_end_equals_binary_search():
    from bisect import bisect_left, bisect_right

    rnd = random.Random(2)
    strings = sorted("".join(rnd.choice("ab ") for _ in range(rnd.randint(1, 6))) for _ in range(3000))
    for key in {s[: rnd.randint(1, len(s))] for s in strings} | {"zz", "", "a a"}:
        lo = bisect_left(strings, key)
        assert _gallop_end(strings, lo, key, False) == bisect_right(strings, key, lo), key
        assert _gallop_end(strings, lo, key, True) == bisect_left(strings, key + "\uffff", lo)


def test_typo_budget():
    assert [max_edits(n) for n in (1, 3, 4, 7, 8, 12)] == [0, 0, 1, 1, 2, 2]
    assert [prefix_edits(n) for n in (3, 4, 9)] == [0, 1, 1]


# ---------------------------------------------------------------- modes
def test_exact(real):
    hits = real.search("the dark knight", mode="exact")
    assert names(hits) == ["The Dark Knight"]
    assert hits[0].kind == "exact" and hits[0].distance == 0 and hits[0].spans == [(0, 15)]
    assert names(real.search("dark knight", mode="exact")) == ["The Dark Knight"]  # article
    assert names(real.search("AMELIE", mode="exact")) == ["Amélie"]  # diacritics
    assert names(real.search("léon", mode="exact")) == ["Léon"]
    assert real.search("dark knigt", mode="exact") == []


def test_prefix(real):
    hits = real.search("the dark kn", mode="prefix")
    assert names(hits) == ["The Dark Knight", "The Dark Knight Rises"]
    assert all(h.kind == "prefix" for h in hits)
    hits = real.search("dark kn", mode="prefix")  # without the leading article
    assert names(hits) == ["The Dark Knight", "The Dark Knight Rises"]
    assert hits[0].spans == [(4, 11)]
    assert names(real.search("leon the", mode="prefix")) == ["Léon: The Professional"]
    assert real.search("ark knight", mode="prefix") == []


def test_substring(real):
    hits = real.search("atma", mode="substring", limit=50)
    assert "Batman Begins" in names(hits) and "Batman & Robin" in names(hits)
    assert all(h.kind == "substring" for h in hits)
    h = next(h for h in hits if h.name == "Batman Begins")
    assert h.spans == [(1, 5)]
    hits = real.search("knight", mode="substring")
    assert names(hits) == ["The Dark Knight", "The Dark Knight Rises"]
    assert [h.spans for h in hits] == [[(9, 15)], [(9, 15)]]
    # exact and prefix matches rank first inside substring mode
    hits = real.search("naruto", mode="substring")
    assert [(h.name, h.kind) for h in hits][:2] == [("Naruto", "exact"), ("Naruto Shippūden", "prefix")]
    assert [h.kind for h in real.search("ab", mode="substring", limit=100)].count("substring") > 0


@pytest.mark.parametrize(
    "query,expected,distance",
    [
        ("btaman begins", "Batman Begins", 1),  # transposition at the start
        ("batmn begins", "Batman Begins", 1),  # deletion in the middle
        ("batman beginz", "Batman Begins", 1),  # substitution at the end
        ("batman beginss", "Batman Begins", 1),  # insertion at the end
        ("dakr knight", "The Dark Knight", 1),  # transposition, multi-word
        ("dark knigth", "The Dark Knight", 1),
        ("schindlers lsit", "Schindler's List", 1),
        ("amelei", "Amélie", 1),  # diacritics folded, then a typo
        ("breakng bad", "Breaking Bad", 1),
        ("spidreman", "Spider-Man", 1),  # against the compound "spiderman"
        ("walter whtie", "Walter White", 1),
        ("daenerys targeryan", "Daenerys Targaryen", 2),
    ],
)
def test_fuzzy(real, query, expected, distance):
    hits = real.search(query, mode="fuzzy", limit=20)
    hit = next(h for h in hits if h.name == expected)
    assert hit.kind == "fuzzy" and hit.distance == distance
    assert hit.spans


def test_fuzzy_budget_is_bounded(real):
    assert real.search("bat", mode="fuzzy") == [] or all(h.distance == 0 for h in real.search("bat", mode="fuzzy"))
    # 2 edits on a 6-letter word is beyond the budget of 1
    assert "Batman" not in names(real.search("bxtmxn", mode="fuzzy"))
    assert "Batman" in names(real.search("bxtman", mode="fuzzy", limit=20))


def test_auto_is_autocomplete(real):
    hits = real.search("dark kn", mode="auto")
    assert names(hits)[:2] == ["The Dark Knight", "The Dark Knight Rises"]
    hits = real.search("knight", mode="auto")  # a word inside the name
    assert names(hits)[:2] == ["The Dark Knight", "The Dark Knight Rises"]
    assert hits[0].kind == "substring"
    hits = real.search("knight dark", mode="auto")  # words in any order
    assert names(hits)[:2] == ["The Dark Knight", "The Dark Knight Rises"]
    hits = real.search("batmna beg", mode="auto")  # typo + unfinished word
    assert names(hits)[0] == "Batman Begins" and hits[0].kind == "fuzzy"
    hits = real.search("stranegr th", mode="auto")
    assert names(hits)[0] == "Stranger Things"
    hits = real.search("brakin", mode="auto")  # typo inside an unfinished word
    assert "Breaking Bad" in names(hits)
    hits = real.search("spiderm", mode="auto")
    assert names(hits)[:2] == ["Spider-Man", "Spider-Man 2"]
    assert hits[0].spans == [(0, 8)]  # "Spider-M": 7 letters over the hyphen
    hits = real.search("rocky 2", mode="auto")
    assert names(hits)[0] == "Rocky II"


def test_types_filter(real):
    hits = real.search("batman", mode="auto", limit=20, types=["movie"])
    assert hits and all(h.type == "movie" for h in hits)
    assert names(hits)[0] == "Batman"
    hits = real.search("bruce", mode="auto", types=["character"])
    assert entities(hits) and all(h.type == "character" for h in hits)
    hits = real.search("naruto", types=["tv"])
    assert names(hits) == ["Naruto", "Naruto Shippūden"]


def test_unknown_mode_and_empty_query(real):
    with pytest.raises(ValueError):
        real.search("x", mode="regex")
    assert real.search("   ", mode="auto") == []
    assert real.search("!!", mode="auto") == []


# ---------------------------------------------------------------- ranking
def test_ranking_kind_then_edits_then_popularity():
    ents = [
        EntityNames("movie:1", "movie", 1.0, ["Batman"]),  # exact, unpopular
        EntityNames("movie:2", "movie", 90.0, ["Batman Returns"]),  # prefix, popular
        EntityNames("movie:3", "movie", 50.0, ["Batman Begins"]),  # prefix, less popular
        EntityNames("movie:4", "movie", 99.0, ["The Lego Batman"]),  # word inside
        EntityNames("movie:5", "movie", 99.5, ["Batmen"]),  # fuzzy, 1 edit
        EntityNames("movie:6", "movie", 10.0, ["Batman Fan"]),  # prefix
        EntityNames("tv:7", "tv", 99.9, ["Bat Man"]),  # words
        EntityNames("person:8", "person", 98.0, ["Bobman"]),  # fuzzy 2 edits? no: 1+1
    ]
    idx = SearchIndex.build(ents)
    hits = idx.search("batman", mode="auto", limit=10)
    kinds = [h.kind for h in hits]
    assert kinds == sorted(kinds, key=KINDS.index)
    assert entities(hits)[:4] == ["movie:1", "movie:2", "movie:3", "movie:6"]
    assert "movie:4" in entities(hits) and "movie:5" in entities(hits)
    assert hits[entities(hits).index("movie:4")].kind == "substring"
    assert hits[entities(hits).index("movie:5")].kind == "fuzzy"
    # fewer edits first, then popularity
    ents = [
        EntityNames("m:1", "movie", 5.0, ["Gladiator"]),
        EntityNames("m:2", "movie", 50.0, ["Gladiatr"]),  # 1 edit from the query
        EntityNames("m:3", "movie", 90.0, ["Gladiaotrs"]),  # 2 edits
        EntityNames("m:4", "movie", 60.0, ["Gladiators"]),
    ]  # 1 edit
    idx = SearchIndex.build(ents)
    hits = idx.search("gladiatro", mode="fuzzy", limit=10)
    assert [(h.entity, h.distance) for h in hits] == [("m:4", 1), ("m:2", 1), ("m:1", 1), ("m:3", 2)] or [
        h.distance for h in hits
    ] == sorted(h.distance for h in hits)
    by_d = {}
    for h in hits:
        by_d.setdefault(h.distance, []).append(h.popularity)
    for pops in by_d.values():
        assert pops == sorted(pops, reverse=True)


def test_long_names_match_on_every_word():
    """Multi-word matching checks candidates through a fixed-width forward index; names with
    more words than it holds take another path, and their late words must match too."""
    long_words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]
    ents = [
        EntityNames("movie:1", "movie", 10.0, [" ".join(long_words)]),
        EntityNames("movie:2", "movie", 20.0, [" ".join(long_words[:9])]),
        EntityNames("movie:3", "movie", 30.0, ["Alpha Kilo"]),
        EntityNames("movie:4", "movie", 40.0, ["Alpha Romeo"]),
    ]
    # the late words common, the first rare: the rare word drives, the late ones are checked
    ents += [EntityNames(f"movie:{i}", "movie", 1.0, [f"Kilo Lima India Filler {i}"]) for i in range(5, 200)]
    idx = SearchIndex.build(ents)
    for query, mode, want in [
        ("alpha kilo", "auto", {"movie:1", "movie:3"}),
        ("alpha kilo", "fuzzy", {"movie:1", "movie:3"}),
        ("alpha kil", "auto", {"movie:1", "movie:3"}),
        ("alpha kiol", "auto", {"movie:1", "movie:3"}),
        ("alpah lima", "fuzzy", {"movie:1"}),
        ("alpha india", "auto", {"movie:1", "movie:2"}),
        ("india alpha hotel", "fuzzy", {"movie:1", "movie:2"}),
    ]:
        got = {h.entity for h in idx.search(query, mode=mode, limit=50)}
        assert got == want, (query, mode, got)
    hit = idx.search("alpha lima", mode="auto", limit=5)[0]
    assert hit.entity == "movie:1" and hit.kind == "substring"


def test_popularity_then_type_breaks_ties():
    ents = [
        EntityNames("person:1", "person", 10.0, ["Avatar"]),
        EntityNames("character:2", "character", 10.0, ["Avatar"]),
        EntityNames("tv:3", "tv", 10.0, ["Avatar"]),
        EntityNames("movie:4", "movie", 10.0, ["Avatar"]),
        EntityNames("movie:5", "movie", 20.0, ["Avatar"]),
    ]
    idx = SearchIndex.build(ents)
    assert entities(idx.search("avatar", mode="exact", limit=10)) == [
        "movie:5",
        "movie:4",
        "tv:3",
        "character:2",
        "person:1",
    ]


def test_aliases_dedupe_to_one_hit_per_entity(real):
    hits = real.search("batman", mode="auto", limit=50)
    assert len(entities(hits)) == len(set(entities(hits)))
    bruce = [h for h in real.search("bruce wayne", mode="auto", limit=10) if h.type == "character"]
    assert bruce and all(h.name == "Bruce Wayne" for h in bruce)


# ---------------------------------------------------------------- recall vs brute force
def _words_of(rec_names):
    out = []
    for n in rec_names:
        key, comps = normalize_key(n)
        if key:
            out.append((key, index_words(key, comps)))
    return out


def _typo(rnd: random.Random, w: str) -> str:
    op = rnd.choice("sidt")
    i = rnd.randrange(len(w))
    c = rnd.choice("abcdefghijklmnoprstuy")
    if op == "s":
        return w[:i] + c + w[i + 1 :]
    if op == "i":
        return w[:i] + c + w[i:]
    if op == "d" and len(w) > 1:
        return w[:i] + w[i + 1 :]
    if op == "t" and i + 1 < len(w):
        return w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    return w


def _queries(recs, rnd, n):
    out = []
    pool = [r for r in recs]
    while len(out) < n:
        r = rnd.choice(pool)
        key = normalize_key(rnd.choice(names_of(r)))[0]
        toks = [t for t in key.split(" ") if t]
        if not toks:
            continue
        k = rnd.choice((1, 1, 2))
        start = rnd.randrange(len(toks))
        q = toks[start : start + k]
        q = [_typo(rnd, t) if len(t) >= 4 and rnd.random() < 0.7 else t for t in q]
        if len(q[-1]) >= 8 and rnd.random() < 0.5:
            q[-1] = _typo(rnd, q[-1])
        out.append(" ".join(q))
    return out


def _prefix_dist(q, w, k):
    best = k + 1
    for j in range(max(1, len(q) - k), len(q) + k + 1):
        if j > len(w):
            break
        best = min(best, OSA.distance(q, w[:j]))
    return best


def _brute(recs, query, mode):
    qkey = normalize_key(query)[0]
    qwords = qkey.split(" ")
    found = set()
    for r in recs:
        for key, words in _words_of(names_of(r)):
            ok = True
            if mode in ("exact", "prefix", "substring", "auto"):
                alt = article_stripped(key)
                cands = [key] + ([alt] if alt else [])
                if mode == "exact":
                    ok = qkey in cands
                elif mode == "prefix":
                    ok = any(c.startswith(qkey) for c in cands)
                elif mode == "substring":
                    ok = qkey in key
                else:
                    ok = any(c.startswith(qkey) for c in cands)
                if ok or mode != "auto":
                    if ok:
                        found.add(r["key"])
                    continue
            ok = True
            for i, q in enumerate(qwords):
                last = mode == "auto" and i == len(qwords) - 1
                k = max_edits(len(q))
                hit = any(OSA.distance(q, w) <= k for w in words)
                if not hit and last:
                    pk = prefix_edits(len(q))
                    hit = any(w.startswith(q) or _prefix_dist(q, w, pk) <= pk for w in words)
                if not hit:
                    ok = False
                    break
            if ok:
                found.add(r["key"])
    return found


@pytest.mark.parametrize("mode", ["fuzzy", "auto"])
def test_fuzzy_recall_equals_brute_force(synthetic, mode):
    recs, idx = synthetic
    rnd = random.Random(7 if mode == "fuzzy" else 8)
    queries = _queries(recs, rnd, 60)
    for q in queries:
        got = set(entities(idx.search(q, mode=mode, limit=len(recs))))
        want = _brute(recs, q, mode)
        assert got == want, (q, sorted(want - got)[:5], sorted(got - want)[:5])


@pytest.mark.parametrize("mode", ["exact", "prefix", "substring"])
def test_other_modes_equal_brute_force(synthetic, mode):
    recs, idx = synthetic
    rnd = random.Random(3)
    for _ in range(40):
        key = normalize_key(rnd.choice(names_of(rnd.choice(recs))))[0]
        if mode == "exact":
            q = key
        elif mode == "prefix":
            q = key[: rnd.randint(1, len(key))]
        else:
            a = rnd.randrange(len(key))
            q = key[a : a + rnd.randint(1, 6)].strip() or key
        got = set(entities(idx.search(q, mode=mode, limit=len(recs))))
        assert got == _brute(recs, q, mode), q


def test_results_are_ranked_in_every_mode(synthetic):
    recs, idx = synthetic
    rnd = random.Random(4)
    for q in _queries(recs, rnd, 30):
        for mode in ("auto", "fuzzy", "substring"):
            hits = idx.search(q, mode=mode, limit=30)
            order = [(KINDS.index(h.kind), h.distance, h.name_id) for h in hits]
            assert order == sorted(order), (q, mode)


# ---------------------------------------------------------------- persistence
def test_restart_keeps_the_data(tmp_path):
    recs = real_records()
    store = Store(tmp_path / "db")
    store.put_entities(recs)
    idx = SearchIndex.build(entity_names(store.iter_entities()))
    store.save_index(idx.to_snapshot())
    before = [h.to_dict() for h in idx.search("dakr knigt", mode="auto")]
    store.close()

    store = Store(tmp_path / "db")  # a new process would do exactly this
    assert store.count_entities() == len(recs)
    blobs, version = store.load_index()
    assert version == store.entity_version()
    idx2 = SearchIndex.from_snapshot(blobs)
    assert [h.to_dict() for h in idx2.search("dakr knigt", mode="auto")] == before
    assert idx2.stats() == idx.stats()
    assert store.get_entity("movie:155")["name"] == "The Dark Knight"
    store.close()


def test_tmdb_cache_ttl(tmp_path):
    store = Store(tmp_path / "db")
    store.cache_put("movie/155", {"id": 155}, now=1000.0)
    assert store.cache_get("movie/155", now=1000.0 + 6 * 86400) == {"id": 155}
    assert store.cache_get("movie/155", now=1000.0 + 8 * 86400) is None
    assert store.cache_purge(now=1000.0 + 8 * 86400) == 1
    store.close()


def test_snapshot_roundtrip_synthetic(synthetic):
    recs, idx = synthetic
    idx2 = SearchIndex.from_snapshot(idx.to_snapshot())
    for q in ("the", "kni", "dark knigt", "a", "zz"):
        for mode in ("auto", "fuzzy", "substring"):
            assert [h.to_dict() for h in idx.search(q, mode, 20)] == [h.to_dict() for h in idx2.search(q, mode, 20)]


def test_the_documented_query_pattern_is_what_the_service_accepts():
    """GET /search's document says what a searchable query contains (a regular expression); the
    service decides with normalize_key. They agree on every code point (a query is searchable
    exactly when one of its characters is). Unassigned and private-use code points (no letter or
    digit among them) are checked against the pattern alone, to keep this quick."""
    import re
    import sys
    import unicodedata

    from content_service.routers.search import QUERY_PATTERN

    pattern = re.compile(QUERY_PATTERN)
    disagree = []
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        category = unicodedata.category(c)
        if category == "Cs":
            continue
        searchable = False if category in ("Cn", "Co") else bool(normalize_key(c)[0])
        if bool(pattern.search(c)) != searchable:
            disagree.append(hex(cp))
    assert disagree == []
    assert not pattern.search("!!! _ -") and not normalize_key("!!! _ -")[0]
    assert pattern.search("fight club") and pattern.search("&")
