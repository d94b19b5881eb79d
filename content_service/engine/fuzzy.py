"""Deletion-neighbourhood (SymSpell-style) candidate generation for bounded edit distance.

Two strings within optimal-string-alignment distance k (Levenshtein plus adjacent
transposition) share a string obtained by deleting at most k characters from each. Both
indexes below store, for every indexed string, the hashes of its deletions; a query looks up
the hashes of its own deletions and verifies the candidates with rapidfuzz's C
implementation of the distance. Hash collisions only add candidates (they are verified), so
recall is exact.

Words are truncated to their first PREFIX_LEN characters before deleting (SymSpell's prefix
trick): if OSA(q, w) <= k, then q[:T] and w[:T] still have a common string with at most k
deletions on each side (an edit that shifts the alignment pushes one character out of the
window on the other side, which costs one deletion there instead), so candidates stay a
superset while the index stays small.
"""

from __future__ import annotations

import zlib

import numpy as np

PREFIX_LEN = 7  # full-word index: deletions of w[:7]
PREFIX_INDEX_MAX = 9  # fuzzy-prefix index: distinct word prefixes of 3..9 characters


def deletions(s: str, k: int) -> set[str]:
    """s and every string made by deleting up to k characters (never down to empty)."""
    out = {s}
    frontier = {s}
    for _ in range(k):
        nxt: set[str] = set()
        for w in frontier:
            n = len(w)
            if n <= 1:
                continue
            for i in range(n):
                nxt.add(w[:i] + w[i + 1 :])
        out |= nxt
        frontier = nxt
    return out


def hash_str(s: str) -> int:
    return zlib.crc32(s.encode("utf-8"))


def hash_many(strings) -> np.ndarray:
    crc = zlib.crc32
    return np.fromiter((crc(s.encode("utf-8")) for s in strings), dtype=np.uint32)


class DeletionIndex:
    """Sorted (hash, target) pairs; lookup returns the targets whose deletions collide."""

    __slots__ = ("hashes", "targets")

    def __init__(self, hashes: np.ndarray, targets: np.ndarray):
        self.hashes = hashes
        self.targets = targets

    @classmethod
    def build(cls, items) -> DeletionIndex:
        """items: iterable of (target_id, string, k)."""
        hs: list[np.ndarray] = []
        ts: list[np.ndarray] = []
        buf_h: list[int] = []
        buf_t: list[int] = []
        crc = zlib.crc32
        for tid, s, k in items:
            for d in deletions(s, k):
                buf_h.append(crc(d.encode("utf-8")))
                buf_t.append(tid)
            if len(buf_h) > 1_000_000:
                hs.append(np.array(buf_h, dtype=np.uint32))
                ts.append(np.array(buf_t, dtype=np.int32))
                buf_h, buf_t = [], []
        hs.append(np.array(buf_h, dtype=np.uint32))
        ts.append(np.array(buf_t, dtype=np.int32))
        h = np.concatenate(hs)
        t = np.concatenate(ts)
        order = np.lexsort((t, h))
        h = h[order]
        t = t[order]
        if len(h):  # drop duplicate (hash, target) pairs from colliding deletions
            keep = np.ones(len(h), dtype=bool)
            keep[1:] = (h[1:] != h[:-1]) | (t[1:] != t[:-1])
            h, t = h[keep], t[keep]
        return cls(np.ascontiguousarray(h), np.ascontiguousarray(t))

    def lookup(self, strings) -> np.ndarray:
        """Distinct targets that share a hash with any of `strings`."""
        if not len(self.hashes):
            return np.empty(0, dtype=np.int32)
        q = hash_many(strings)
        lo = np.searchsorted(self.hashes, q, "left")
        hi = np.searchsorted(self.hashes, q, "right")
        parts = [self.targets[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        if not parts:
            return np.empty(0, dtype=np.int32)
        # sorted distinct by sort + neighbour compare: for these few hundred ids numpy's
        # np.unique costs several times more (and its first call in a process ~100 ms)
        a = np.sort(np.concatenate(parts))
        if len(a) > 1:
            keep = np.empty(len(a), dtype=bool)
            keep[0] = True
            np.not_equal(a[1:], a[:-1], out=keep[1:])
            a = a[keep]
        return a
