"""Search engine benchmark: our index vs SQLite FTS5 on the same 1M-name corpus, same queries.

    python bench/bench_search.py                 # 1M names (about 8 minutes on 2 cores)
    python bench/bench_search.py --names 100000  # quick

Prints, side by side, p50/p99 latency per query kind (in-process, one query at a time, results
including hit assembly with spans), the SQLite FTS5 figures for the same queries and the ratios
(ours and both SQLite variants take turns in blocks of 100 queries, so all of them are timed
under the same load),
then build time, store size, start-up time (a fresh process loading the index from the
embedded store) and the memory that start-up adds (RSS delta).

SQLite is tuned the way one would tune it for this job: FTS5 with unicode61 (diacritics folded,
prefix indexes '1 2 3') for exact/prefix/autocomplete, an FTS5 trigram table for substring
(LIKE '%q%' is answered from the trigram index), rowid = popularity rank so ORDER BY rowid LIMIT
stops early, the index optimized after loading, synchronous off, a large page cache and mmap.
SQLite has no edit distance; its fuzzy answer uses the FTS5 vocabulary (fts5vocab) filtered by
length and a registered OSA distance function (rapidfuzz, C), then an FTS5 MATCH of the
matched terms - the usual way to bolt typo tolerance onto FTS5 without extensions.

"ours" is the engine as the service runs it: the compiled query kernel
(content_service/engine/_kernel.c) where it answers, the Python tiers where it hands over. The
pure-Python engine (SearchIndex.search_python, the reference and the fallback when the kernel
is not built) is timed in the same rotation and printed too.

SQLite is timed twice on the same queries: "rowid" returns only the matching rowids (what it
is fastest at); "full" returns what our hits carry - rowid, display name, entity key, type and
popularity (a rowid join to a plain table) and the match highlighted by FTS5's highlight()
(on the normalized key: FTS5 cannot map it back to the display name as ours does). The ratios
are printed against both.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rapidfuzz.distance import OSA  # noqa: E402

from content_service.corpus import generate, names_of  # noqa: E402
from content_service.engine import TYPES, EntityNames, SearchIndex, Store  # noqa: E402
from content_service.engine.normalize import article_stripped, max_edits  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ------------------------------------------------------------------ queries
def typo(rnd, w):
    if len(w) < 4:
        return w
    i = rnd.randrange(len(w))
    op = rnd.choice("sidt")
    c = rnd.choice("abcdefghiklmnoprstuwy")
    if op == "s":
        return w[:i] + c + w[i + 1 :]
    if op == "i":
        return w[:i] + c + w[i:]
    if op == "d":
        return w[:i] + w[i + 1 :]
    if i + 1 < len(w):
        return w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    return w[:i] + c


def make_queries(idx: SearchIndex, n: int, seed: int = 1):
    """Query sets drawn from the corpus, popular names more often (Zipf-like)."""
    rnd = random.Random(seed)
    N = len(idx.keys)

    def pick():
        return idx.keys[min(N - 1, int(N * rnd.random() ** 3))]

    auto, fuzzy, exact, prefix, substring = [], [], [], [], []
    while len(auto) < n:
        key = pick()
        if rnd.random() < 0.15:  # a typo somewhere in what was typed
            words = key.split(" ")
            j = rnd.randrange(len(words))
            words[j] = typo(rnd, words[j])
            key = " ".join(words)
        cut = min(len(key), max(1, int(rnd.triangular(1, 16, 6))))
        q = key[:cut].strip()
        if q:
            auto.append(q)
    while len(fuzzy) < n:
        key = pick()
        words = key.split(" ")
        long_words = [i for i, w in enumerate(words) if len(w) >= 4]
        if not long_words:
            continue
        for i in rnd.sample(long_words, min(len(long_words), rnd.choice((1, 1, 2)))):
            words[i] = typo(rnd, words[i])
        fuzzy.append(" ".join(words))
    while len(exact) < n:
        exact.append(pick())
    while len(prefix) < n:
        key = pick()
        q = key[: rnd.randint(1, len(key))].strip()
        if q:
            prefix.append(q)
    while len(substring) < n:
        key = pick()
        if len(key) < 4:
            continue
        a = rnd.randrange(len(key) - 3)
        q = key[a : a + rnd.randint(3, 8)].strip()
        if len(q) >= 3:
            substring.append(q)
    return {"autocomplete": auto, "fuzzy": fuzzy, "exact": exact, "prefix": prefix, "substring": substring}


MODE_OF = {"autocomplete": "auto", "fuzzy": "fuzzy", "exact": "exact", "prefix": "prefix", "substring": "substring"}


def stats(lat, cpu, empty):
    return {
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "mean": sum(lat) / len(lat),
        "cpu_p50": pct(cpu, 50),
        "cpu_p99": pct(cpu, 99),
        "n": len(lat),
        "empty": empty,
    }


def time_hot(idx, queries, limit=10):
    """Autocomplete through the in-process LRU the service keeps (repeats hit it)."""
    from content_service.engine import CachedSearch

    cached = CachedSearch(idx, 50_000)
    lat = []
    for q in queries:
        t = time.perf_counter_ns()
        cached.search(q, "auto", limit)
        lat.append((time.perf_counter_ns() - t) / 1e6)
    st = cached.stats()
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "hit_ratio": st["hits"] / max(1, st["hits"] + st["misses"])}


# ------------------------------------------------------------------ SQLite
def fts_phrase(q):
    return '"' + q.replace('"', '""') + '"'


def build_sqlite(path, idx: SearchIndex):
    con = sqlite3.connect(path)
    con.executescript("""
        PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=MEMORY;
        PRAGMA cache_size=-1000000; PRAGMA mmap_size=4000000000;
        CREATE VIRTUAL TABLE words USING fts5(key, alt,
            tokenize="unicode61 remove_diacritics 2", prefix='1 2 3');
        CREATE VIRTUAL TABLE tri USING fts5(key, tokenize='trigram', detail='none');
    """)
    rows = ((i, k, article_stripped(k) or "") for i, k in enumerate(idx.keys))
    con.executemany("INSERT INTO words(rowid, key, alt) VALUES (?,?,?)", rows)
    # what a full answer shows besides the highlight: a plain table joined by rowid
    con.execute("CREATE TABLE names(rowid INTEGER PRIMARY KEY, name TEXT, entity TEXT, type TEXT, popularity REAL)")
    ents = idx.name_entity.tolist()
    con.executemany(
        "INSERT INTO names VALUES (?,?,?,?,?)",
        (
            (i, name, idx.ent_keys[e], TYPES[int(idx.ent_type[e])], float(idx.ent_pop[e]))
            for i, (name, e) in enumerate(zip(idx.names, ents, strict=True))
        ),
    )
    con.executemany("INSERT INTO tri(rowid, key) VALUES (?,?)", enumerate(idx.keys))
    con.execute("INSERT INTO words(words) VALUES('optimize')")
    con.execute("INSERT INTO tri(tri) VALUES('optimize')")
    con.executescript("""
        CREATE VIRTUAL TABLE vocab USING fts5vocab(words, 'row');
        CREATE TABLE terms(term TEXT PRIMARY KEY, len INTEGER) WITHOUT ROWID;
        INSERT INTO terms SELECT term, length(term) FROM vocab;
        CREATE INDEX terms_len ON terms(len, term);
        ANALYZE;
    """)
    con.commit()
    return con


class SQLiteSearch:
    """The same queries answered by SQLite. full=False: rowids only; full=True: rowid, display
    name, entity, type, popularity and FTS5's highlight() of the match."""

    def __init__(self, con, full: bool = False):
        self.con = con
        self.full = full
        con.create_function("osa", 2, lambda a, b: OSA.distance(a, b), deterministic=True)

    def _select(self, table: str) -> str:
        if not self.full:
            return f"SELECT rowid FROM {table}"
        return (
            f"SELECT {table}.rowid, n.name, n.entity, n.type, n.popularity, "
            f"highlight({table}, 0, '[', ']') FROM {table} "
            f"JOIN names n ON n.rowid = {table}.rowid"
        )

    def exact(self, q, limit=10):
        return self.con.execute(
            self._select("words") + " WHERE words MATCH ? AND (key = ? OR alt = ?) ORDER BY words.rowid LIMIT ?",
            ("{key alt}: ^" + fts_phrase(q), q, q, limit),
        ).fetchall()

    def prefix(self, q, limit=10):
        return self.con.execute(
            self._select("words") + " WHERE words MATCH ? ORDER BY words.rowid LIMIT ?",
            ("{key alt}: ^" + fts_phrase(q) + " *", limit),
        ).fetchall()

    def autocomplete(self, q, limit=10):
        rows = self.prefix(q, limit)
        if len(rows) < limit:
            toks = q.split(" ")
            expr = " AND ".join([fts_phrase(t) for t in toks[:-1]] + [fts_phrase(toks[-1]) + " *"])
            seen = {r[0] for r in rows}
            for r in self.con.execute(
                self._select("words") + " WHERE words MATCH ? ORDER BY words.rowid LIMIT ?", (expr, limit * 2)
            ):
                if r[0] not in seen:
                    rows.append(r)
                    seen.add(r[0])
        return rows[:limit]

    def substring(self, q, limit=10):
        return self.con.execute(
            self._select("tri") + " WHERE tri.key LIKE ? ORDER BY tri.rowid LIMIT ?",
            ("%" + q.replace("%", "").replace("_", "") + "%", limit),
        ).fetchall()

    def fuzzy(self, q, limit=10):
        groups = []
        for w in q.split(" "):
            k = max_edits(len(w))
            if k == 0:
                groups.append([w])
                continue
            terms = [
                r[0]
                for r in self.con.execute(
                    "SELECT term FROM terms WHERE len BETWEEN ? AND ? AND osa(term, ?) <= ?",
                    (len(w) - k, len(w) + k, w, k),
                )
            ]
            if not terms:
                return []
            groups.append(terms)
        expr = " AND ".join("(" + " OR ".join(fts_phrase(t) for t in g) + ")" for g in groups)
        return self.con.execute(
            self._select("words") + " WHERE words MATCH ? ORDER BY words.rowid LIMIT ?", ("{key}: " + expr, limit)
        ).fetchall()


def time_interleaved(idx, engines: dict, queries, per_kind: dict[str, int], limit=10, block: int = 100, reference=None):
    """Ours and each SQLite variant take turns in blocks of `block` queries (the order of the
    engines rotating from block to block), so that all of them meet the same machine: on a
    shared 2-core box the load changes from one minute to the next, and timing one engine
    after the other would compare two different machines. Blocks rather than single queries:
    alternating every query would let each engine evict the other's data from the CPU caches,
    which no deployment does. A variant runs only the first per_kind[kind] queries of a kind."""
    runners = {"ours": lambda kind, q: idx.search(q, MODE_OF[kind], limit)}
    if reference is not None:
        runners["python"] = lambda kind, q: reference.search_python(q, MODE_OF[kind], limit)
    for name, s in engines.items():
        runners[name] = lambda kind, q, s=s: getattr(s, kind)(q, limit)
    names = list(runners)
    out = {name: {} for name in names}
    for kind, qs in queries.items():
        cap = {name: (len(qs) if name in ("ours", "python") else per_kind.get(kind, len(qs))) for name in names}
        lat = {name: [] for name in names}
        cpu = {name: [] for name in names}
        empty = dict.fromkeys(names, 0)
        for b, start in enumerate(range(0, len(qs), block)):
            for j in range(len(names)):
                name = names[(b + j) % len(names)]
                run = runners[name]
                chunk = qs[start : min(start + block, cap[name])]
                for q in chunk[:10]:  # warm-up: this engine's turn begins
                    run(kind, q)
                for q in chunk:
                    c = time.thread_time_ns()
                    t = time.perf_counter_ns()
                    res = run(kind, q)
                    lat[name].append((time.perf_counter_ns() - t) / 1e6)
                    cpu[name].append((time.thread_time_ns() - c) / 1e6)
                    empty[name] += not res
        for name in names:
            out[name][kind] = stats(lat[name], cpu[name], empty[name])
    return out


# ------------------------------------------------------------------ start-up
STARTUP_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[2])
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
import numpy, rapidfuzz, lmdb, orjson
from content_service.engine import SearchIndex, Store
base = rss()
t = time.perf_counter()
store = Store(sys.argv[1], readonly=False)
blobs, version = store.load_index()
idx = SearchIndex.from_snapshot(blobs)
del blobs
load = time.perf_counter() - t
idx.search('the dark kn', 'auto', 10)
first = time.perf_counter() - t
print(json.dumps({"load_s": load, "first_answer_s": first, "rss_base_mb": base,
                  "rss_loaded_mb": rss(), "names": len(idx)}))
"""


def measure_startup(store_path):
    out = subprocess.run(
        [sys.executable, "-c", STARTUP_CHILD, store_path, ROOT], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument(
        "--sqlite-fuzzy", type=int, default=200, help="fuzzy queries run against SQLite (each costs tens of ms)"
    )
    ap.add_argument("--json", help="write the figures to this file too")
    ap.add_argument("--keep", help="keep the store in this directory")
    args = ap.parse_args(argv)

    tmp = args.keep or tempfile.mkdtemp(prefix="bench_search_")
    figures = {"names_target": args.names}
    rss0 = rss_mb()
    t = time.perf_counter()
    records = list(generate(int(args.names * 1.0021), seed=2024))
    figures["generate_s"] = time.perf_counter() - t
    ents = [EntityNames(r["key"], r["type"], r["popularity"], names_of(r)) for r in records]

    t = time.perf_counter()
    idx = SearchIndex.build(ents)
    figures["build_s"] = time.perf_counter() - t
    figures["stats"] = idx.stats()
    figures["build_rss_mb"] = rss_mb() - rss0
    del ents

    t = time.perf_counter()
    store = Store(os.path.join(tmp, "store"))
    store.put_entities(records)
    del records
    snap = idx.to_snapshot()
    store.save_index(snap)
    figures["store_write_s"] = time.perf_counter() - t
    figures["snapshot_mb"] = sum(len(v) for v in snap.values()) / 2**20
    del snap
    store.close()
    figures["store_mb"] = (
        sum(os.path.getsize(os.path.join(tmp, "store", f)) for f in os.listdir(os.path.join(tmp, "store"))) / 2**20
    )
    figures["startup"] = measure_startup(os.path.join(tmp, "store"))

    t = time.perf_counter()
    db = os.path.join(tmp, "fts.sqlite")
    con = build_sqlite(db, idx)
    figures["sqlite_build_s"] = time.perf_counter() - t
    figures["sqlite_mb"] = os.path.getsize(db) / 2**20

    gc.collect()
    gc.freeze()  # as the service does after loading: the index is never scanned by the GC
    queries = make_queries(idx, args.queries)
    per_kind = {"fuzzy": args.sqlite_fuzzy}
    # the pure-Python engine over the same arrays, with caches of its own (the per-word source
    # cache would otherwise let whichever engine runs second reuse the first one's work)
    reference = copy.copy(idx)
    reference._kernel = None
    load0 = os.getloadavg()
    timed = time_interleaved(
        idx,
        {"sqlite": SQLiteSearch(con), "sqlite_full": SQLiteSearch(con, full=True)},
        queries,
        per_kind,
        reference=reference,
    )
    figures["loadavg"] = [max(a, b) for a, b in zip(load0, os.getloadavg(), strict=True)]
    figures.update(timed)
    figures["hot"] = time_hot(idx, queries["autocomplete"])
    figures["kernel"] = idx._kernel is not None
    figures["sqlite_version"] = sqlite3.sqlite_version
    con.close()
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)

    report(figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return figures


def report(f):
    st = f["stats"]
    print(
        f"\ncorpus: {st['names']:,} names of {st['entities']:,} entities, "
        f"{st['words']:,} distinct words; SQLite {f['sqlite_version']}; "
        f"load average during the run {f['loadavg'][0]:.1f} on {os.cpu_count()} cores"
    )
    for label, a, b in (("wall clock", "p50", "p99"), ("CPU time of the querying thread", "cpu_p50", "cpu_p99")):
        for variant, title in (
            ("sqlite", "SQLite returning rowids only"),
            ("sqlite_full", "SQLite returning full answers: rowid, name, entity, type, popularity, highlight()"),
        ):
            if variant not in f:
                continue
            print(f"-- {label} (ms); {title}")
            print(
                f"{'query kind':<14}{'ours p50':>10}{'ours p99':>10}{'sqlite p50':>12}"
                f"{'sqlite p99':>12}{'x p50':>8}{'x p99':>8}{'empty ours/sqlite':>20}"
            )
            for kind in ("autocomplete", "exact", "prefix", "substring", "fuzzy"):
                o, s = f["ours"][kind], f[variant][kind]
                print(
                    f"{kind:<14}{o[a]:>10.4f}{o[b]:>10.3f}{s[a]:>12.3f}{s[b]:>12.3f}"
                    f"{s[a] / o[a]:>7.1f}x{s[b] / o[b]:>7.1f}x"
                    f"{o['empty']:>10}/{s['empty']:<4}({o['n']}/{s['n']})"
                )
    if "python" in f:
        print(
            f"-- the same run: ours {'(compiled kernel)' if f.get('kernel') else '(KERNEL NOT BUILT)'}"
            f" vs the pure-Python engine (ms; CPU time of the querying thread in brackets)"
        )
        print(
            f"{'query kind':<14}{'ours p50':>10}{'ours p99':>10}{'python p50':>12}"
            f"{'python p99':>12}{'x p50':>8}{'x p99':>8}"
        )
        for kind in ("autocomplete", "exact", "prefix", "substring", "fuzzy"):
            o, p = f["ours"][kind], f["python"][kind]
            print(
                f"{kind:<14}{o['p50']:>10.4f}{o['p99']:>10.3f}{p['p50']:>12.4f}{p['p99']:>12.3f}"
                f"{p['p50'] / o['p50']:>7.1f}x{p['p99'] / o['p99']:>7.1f}x"
                f"   ({o['cpu_p50']:.4f} / {o['cpu_p99']:.3f}; {p['cpu_p50']:.4f} / {p['cpu_p99']:.3f})"
            )
    if "hot" in f:
        h = f["hot"]
        print(
            f"autocomplete through the hot-query LRU (same stream, {h['hit_ratio']:.0%} hits): "
            f"p50 {h['p50']:.3f} ms, p99 {h['p99']:.3f} ms"
        )
    su = f["startup"]
    print(
        f"build {f['build_s']:.1f} s (generate {f['generate_s']:.1f} s), store write "
        f"{f['store_write_s']:.1f} s, snapshot {f['snapshot_mb']:.0f} MiB, store file "
        f"{f['store_mb']:.0f} MiB; SQLite build {f['sqlite_build_s']:.1f} s, "
        f"file {f['sqlite_mb']:.0f} MiB"
    )
    print(
        f"start-up (fresh process, index loaded from the store): {su['load_s']:.2f} s, "
        f"first answer at {su['first_answer_s']:.2f} s; memory added "
        f"{su['rss_loaded_mb'] - su['rss_base_mb']:.0f} MiB (RSS {su['rss_loaded_mb']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
