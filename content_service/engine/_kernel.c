/* The compiled query path of SearchIndex (index.py): query normalization (plain ASCII), the
 * key tiers (exact, prefix), the trigram substring tier, the collection and hit assembly,
 * over the index's own arrays and string lists plus three structures derived at load (per-name
 * records, 8-byte key prefixes, the heavy-prefix table).
 *
 * It answers what it can in full and hands the rest back to index.py (fuzzy mode, the word and
 * typo tiers of autocomplete, substring queries under 3 characters, a heavy prefix whose
 * precomputed top ids run out): search() returns None, search_text() the normalized key, and
 * the pure-Python path answers; it stays the reference. Every rule here mirrors index.py, and
 * tests/content/test_kernel.py compares the two on generated query sets: the same hits, in
 * the same order, with the same kinds, distances and spans.
 *
 * Why C: a median query touches a few ids, so the Python path's time was interpreter work per
 * id and per hit plus memory latency; here a query is one binary search over an array of
 * integers, a walk over a few ids whose records are loaded together, and one object per hit
 * field.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { EXACT = 0, PREFIX = 1, SUBSTRING = 2, FUZZY = 3 };
enum { M_EXACT = 0, M_PREFIX = 1, M_SUBSTRING = 2, M_FUZZY = 3, M_AUTO = 4 };

#define HEAVY_TOP 128               /* index.py HEAVY_TOP */
#define SUBSTRING_FILTERS 3         /* trigram lists a candidate must be in before verifying */
#define SUBSTRING_BATCH 16          /* candidates whose records are loaded together (at most) */
#define LINEAR_DENSITY 32           /* see tier_substring */
#define SUBSTRING_OTHER_MAX 50000   /* index.py SUBSTRING_OTHER_MAX */
#define SMALL_RANGE_MAX 4096        /* a non-heavy prefix range holds at most HEAVY_KEY keys */

/* The arrays, in the order Kernel() takes them after its nine objects. */
enum { B_SKN, B_HOFF, B_HVALS, B_NBLOB, B_NOFF, B_EBLOB, B_EOFF, B_NE, B_ET, B_EP,
       B_TC, B_TO, B_TI, B_COUNT };
static const Py_ssize_t B_ITEMSIZE[B_COUNT] = {4, 8, 4, 1, 8, 1, 8, 4, 1, 4, 8, 8, 4};

static const char *HIT_FIELDS[8] = {"entity", "type", "name", "kind", "distance", "spans",
                                    "popularity", "name_id"};

typedef struct {
    PyObject_HEAD
    PyObject *skeys;       /* list[str]: sorted keys and article-stripped alternates */
    PyObject *keys;        /* list[str]: key of each name id */
    PyObject *heavy_key;   /* dict[str, int]: heavy prefix -> row of heavy_off */
    PyObject *span_fn;     /* index.match_spans: the careful span mapping */
    PyObject *one_fold;    /* index._one_fold(ch) -> bool, asked once per character */
    PyObject *normalize;   /* normalize.normalize: queries the C fast path does not take */
    uint8_t *fold_known, *fold_one;   /* bitmaps over code points: asked, and its answer */
    PyTypeObject *hit_type;
    PyObject *kind_str[4];
    PyObject *type_str[4];
    PyObject *space;
    Py_ssize_t hit_off[8]; /* byte offsets of Hit's slots */
    Py_buffer buf[B_COUNT];
    int nbuf;
    const int32_t *skn, *hvals, *ne, *ti;
    const int64_t *hoff, *noff, *eoff, *to;
    const char *nblob, *eblob;
    const uint8_t *et;
    const float *ep;
    const uint64_t *tc;
    Py_ssize_t ntc;
    /* One 64-byte slot per name id (one cache line, at nid * 64) with everything a hit
     * reads, so a hit costs one cache miss instead of one per array (name_entity, ent_type,
     * ent_pop, the two blobs and their offsets, the key); names too long for the slot keep
     * their strings in spill. See build_records. */
    char *slots;
    char *spill;
    /* The first 8 UTF-8 bytes of each sorted key as a big-endian integer (zero-padded):
     * integer order is the keys' order on those bytes, and UTF-8 byte order is code point
     * order, so the binary search and the range walks read this one array and touch the
     * key strings only for queries longer than 8 bytes. */
    uint64_t *kpre;
    /* The heavy prefixes by (bisect_left position, UTF-8 length): the search already knows
     * the position, so this is one probe of a small C table instead of a dict lookup whose
     * table, key object and value each miss the cache. */
    uint64_t *hkey;     /* (lo << 16 | length), 0 = empty */
    int32_t *hrow;
    uint32_t hmask;
} Kernel;

/* A name's slot: this header, then the UTF-8 of the name, of its key and of the entity key
 * when they fit in the slot's 48 other bytes; else (RF_SPILLED) a uint32 offset into spill,
 * where three uint32 lengths and the three strings are. */
#define SLOT_SHIFT 6
#define SLOT_SIZE (1 << SLOT_SHIFT)
typedef struct {
    int32_t entity;
    float popularity;
    uint8_t type;
    uint8_t flags;
    uint8_t name_len, key_len, ent_len;    /* inline lengths */
} RecHead;
#define SLOT_INLINE (SLOT_SIZE - (Py_ssize_t)sizeof(RecHead))
_Static_assert(sizeof(RecHead) == 16, "a slot header is 16 bytes");

/* The three strings of a slot, inline or spilled. */
typedef struct {
    const char *name, *key, *ent;
    Py_ssize_t nlen, klen, elen;
} RecView;

enum {
    RF_NAME_ASCII = 1,
    RF_SIMPLE = 2,      /* ASCII name without & or +, as long as its key: spans map 1:1 */
    RF_ENT_ASCII = 4,
    RF_KEY_ASCII = 8,
    RF_SPILLED = 16,
};

static inline const RecHead *rec_head(const char *slots, int32_t nid)
{
    return (const RecHead *)(slots + ((size_t)nid << SLOT_SHIFT));
}

static inline void rec_view(const char *spill, const RecHead *h, RecView *v)
{
    const char *d = (const char *)(h + 1);
    if (!(h->flags & RF_SPILLED)) {
        v->nlen = h->name_len;
        v->klen = h->key_len;
        v->elen = h->ent_len;
    }
    else {
        uint32_t off, lens[3];
        memcpy(&off, d, sizeof off);
        d = spill + off;
        memcpy(lens, d, sizeof lens);
        d += sizeof lens;
        v->nlen = lens[0];
        v->klen = lens[1];
        v->elen = lens[2];
    }
    v->name = d;
    v->key = d + v->nlen;
    v->ent = v->key + v->klen;
}

/* ------------------------------------------------------------------ str helpers */

/* Compare two str objects by code points, as Python's < does. */
static inline int ustr_cmp(PyObject *a, PyObject *b)
{
    Py_ssize_t la = PyUnicode_GET_LENGTH(a), lb = PyUnicode_GET_LENGTH(b);
    Py_ssize_t n = la < lb ? la : lb;
    int ka = PyUnicode_KIND(a), kb = PyUnicode_KIND(b);
    const void *da = PyUnicode_DATA(a), *db = PyUnicode_DATA(b);
    if (ka == PyUnicode_1BYTE_KIND && kb == PyUnicode_1BYTE_KIND) {
        int c = memcmp(da, db, (size_t)n);
        if (c)
            return c;
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 x = PyUnicode_READ(ka, da, i), y = PyUnicode_READ(kb, db, i);
            if (x != y)
                return x < y ? -1 : 1;
        }
    }
    return (la > lb) - (la < lb);
}

/* s.startswith(p) */
static inline int ustr_startswith(PyObject *s, PyObject *p)
{
    Py_ssize_t lp = PyUnicode_GET_LENGTH(p);
    if (PyUnicode_GET_LENGTH(s) < lp)
        return 0;
    int ks = PyUnicode_KIND(s), kp = PyUnicode_KIND(p);
    const void *ds = PyUnicode_DATA(s), *dp = PyUnicode_DATA(p);
    if (ks == kp)
        return memcmp(ds, dp, (size_t)lp * ks) == 0;
    for (Py_ssize_t i = 0; i < lp; i++)
        if (PyUnicode_READ(ks, ds, i) != PyUnicode_READ(kp, dp, i))
            return 0;
    return 1;
}

/* s == p (equal strings share their kind: CPython stores a str in its narrowest kind) */
static inline int ustr_eq(PyObject *s, PyObject *p)
{
    Py_ssize_t l = PyUnicode_GET_LENGTH(p);
    return PyUnicode_GET_LENGTH(s) == l && PyUnicode_KIND(s) == PyUnicode_KIND(p) &&
           memcmp(PyUnicode_DATA(s), PyUnicode_DATA(p), (size_t)l * PyUnicode_KIND(p)) == 0;
}

/* A query key as the sorted-key searches need it. */
typedef struct {
    PyObject *key;
    const char *u8;
    Py_ssize_t u8len;
    uint64_t pre;       /* its first 8 bytes, as kpre */
    uint64_t mask;      /* the bytes of pre the query fills (all 8 when it is longer) */
} QKey;

static inline uint64_t pack8(const char *p, Py_ssize_t n)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (i < n ? (uint8_t)p[i] : 0);
    return v;
}

static int qkey_init(QKey *q, PyObject *key)
{
    q->key = key;
    q->u8 = PyUnicode_AsUTF8AndSize(key, &q->u8len);
    if (!q->u8)
        return -1;
    q->pre = pack8(q->u8, q->u8len);
    q->mask = q->u8len >= 8 ? ~(uint64_t)0 : ~(~(uint64_t)0 >> (8 * q->u8len));
    return 0;
}

/* sorted key i == the query (keys hold no NUL: under 8 bytes the prefix decides) */
static inline int skey_eq(const Kernel *k, Py_ssize_t i, const QKey *q)
{
    if (k->kpre[i] != q->pre)
        return 0;
    return q->u8len < 8 || ustr_eq(PyList_GET_ITEM(k->skeys, i), q->key);
}

/* sorted key i starts with the query */
static inline int skey_startswith(const Kernel *k, Py_ssize_t i, const QKey *q)
{
    if ((k->kpre[i] & q->mask) != q->pre)
        return 0;
    return q->u8len <= 8 || ustr_startswith(PyList_GET_ITEM(k->skeys, i), q->key);
}

/* bisect_left(skeys, key): on the 8-byte prefixes, then on the strings among the keys that
 * share the query's first 8 bytes (only when it is longer than that) */
static Py_ssize_t skeys_bisect_left(const Kernel *k, const QKey *q)
{
    const uint64_t *a = k->kpre;
    Py_ssize_t n = PyList_GET_SIZE(k->skeys), lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (a[mid] < q->pre)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (q->u8len <= 8 || lo >= n || a[lo] != q->pre)
        return lo;                     /* every key from lo on is >= the query */
    /* the run of keys with the same 8 bytes ends in (lo, n]: gallop, then bisect */
    Py_ssize_t a0 = lo, step = 1, b = lo + 1;
    while (b < n && a[b] == q->pre) {
        a0 = b;
        step *= 2;
        b = a0 + step;
    }
    if (b > n)
        b = n;
    while (a0 + 1 < b) {
        Py_ssize_t mid = (a0 + b) >> 1;
        if (a[mid] == q->pre)
            a0 = mid;
        else
            b = mid;
    }
    hi = b;
    PyObject **items = ((PyListObject *)k->skeys)->ob_item;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (ustr_cmp(items[mid], q->key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A str from UTF-8 bytes; ASCII (told by the caller) is copied without decoding. */
static inline PyObject *str_from_utf8(const char *p, Py_ssize_t n, int ascii)
{
    if (!ascii)
        return PyUnicode_DecodeUTF8(p, n, "strict");
    PyObject *s = PyUnicode_New(n, 127);
    if (s)
        memcpy(PyUnicode_DATA(s), p, (size_t)n);
    return s;
}

static inline int bytes_ascii(const char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ collection */

/* The first `limit` distinct entities in rank order (index.py _collect): found names and a
 * hash set of their entities. */
typedef struct {
    int32_t nid, e, d;
    int kind;
} Found;

typedef struct {
    Found *f;
    Py_ssize_t n, cap, limit;
    int32_t *set;               /* open addressing; -1 = empty */
    uint32_t mask;
    Py_ssize_t used;
    unsigned tbits;             /* allowed type codes; 0 = all */
    const char *slots;
    Found fbuf[64];
    int32_t sbuf[256];
} Coll;

static void coll_init(Coll *c, Py_ssize_t limit, unsigned tbits, const Kernel *k)
{
    c->f = c->fbuf;
    c->cap = 64;
    c->n = 0;
    c->limit = limit;
    c->set = c->sbuf;
    c->mask = 255;
    c->used = 0;
    memset(c->sbuf, 0xff, sizeof c->sbuf);
    c->tbits = tbits;
    c->slots = k->slots;
}

static void coll_free(Coll *c)
{
    if (c->f != c->fbuf)
        PyMem_Free(c->f);
    if (c->set != c->sbuf)
        PyMem_Free(c->set);
}

static inline uint32_t hash_id(int32_t e) { return (uint32_t)e * 0x9E3779B1u; }

/* Insert e; 1 if new, 0 if present, -1 on memory error. */
static int set_add(Coll *c, int32_t e)
{
    uint32_t i = hash_id(e) & c->mask;
    while (c->set[i] != -1) {
        if (c->set[i] == e)
            return 0;
        i = (i + 1) & c->mask;
    }
    c->set[i] = e;
    c->used++;
    if ((size_t)c->used * 2 > (size_t)c->mask) {
        uint32_t nmask = c->mask * 2 + 1;
        int32_t *ns = PyMem_Malloc(((size_t)nmask + 1) * sizeof(int32_t));
        if (!ns)
            return -1;
        memset(ns, 0xff, ((size_t)nmask + 1) * sizeof(int32_t));
        for (uint32_t j = 0; j <= c->mask; j++) {
            int32_t v = c->set[j];
            if (v == -1)
                continue;
            uint32_t h = hash_id(v) & nmask;
            while (ns[h] != -1)
                h = (h + 1) & nmask;
            ns[h] = v;
        }
        if (c->set != c->sbuf)
            PyMem_Free(c->set);
        c->set = ns;
        c->mask = nmask;
    }
    return 1;
}

/* Offer a name of the current tier: 1 when `limit` entities are found, 0 to go on, -1 on
 * memory error. */
static inline int coll_add(Coll *c, int32_t nid, int kind, int32_t d)
{
    const RecHead *h = rec_head(c->slots, nid);
    int32_t e = h->entity;
    if (c->tbits && !((c->tbits >> h->type) & 1u))
        return 0;
    int r = set_add(c, e);
    if (r <= 0)
        return r;
    if (c->n == c->cap) {
        Py_ssize_t ncap = c->cap * 2;
        Found *nf = PyMem_Malloc((size_t)ncap * sizeof(Found));
        if (!nf)
            return -1;
        memcpy(nf, c->f, (size_t)c->n * sizeof(Found));
        if (c->f != c->fbuf)
            PyMem_Free(c->f);
        c->f = nf;
        c->cap = ncap;
    }
    c->f[c->n].nid = nid;
    c->f[c->n].e = e;
    c->f[c->n].d = d;
    c->f[c->n].kind = kind;
    c->n++;
    return c->n >= c->limit;
}

/* Tier results: DONE = limit reached, MORE = the tier is exhausted (go on to the next),
 * PYTHON = the Python path must answer this query, ERROR = an exception is set. */
enum { T_DONE = 1, T_MORE = 0, T_PYTHON = 2, T_ERROR = -1 };

static inline int add_result(int r) { return r < 0 ? T_ERROR : (r ? T_DONE : T_MORE); }

/* ------------------------------------------------------------------ tiers */

/* Start loading the records of the next names while the walk goes on: their misses
 * overlap instead of coming one after the other. */
static inline void prefetch_records(const Kernel *k, const int32_t *ids, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        __builtin_prefetch(rec_head(k->slots, ids[i]));
}

/* exact: the equal range of the sorted keys (sorted by name id, distinct) */
static int tier_exact(Kernel *k, Coll *c, const QKey *q, Py_ssize_t lo)
{
    Py_ssize_t n = PyList_GET_SIZE(k->skeys), end = lo;
    while (end < n && end - lo < c->limit + 4 && skey_eq(k, end, q))
        end++;
    prefetch_records(k, k->skn + lo, end - lo);
    for (Py_ssize_t i = lo; i < n && skey_eq(k, i, q); i++) {
        int r = coll_add(c, k->skn[i], EXACT, 0);
        if (r)
            return add_result(r);
    }
    return T_MORE;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* prefix: the precomputed top ids of a heavy prefix, else the distinct ids of the (short)
 * range of keys starting with the query, ascending */
static inline uint32_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* The row of heavy_key_off for the query, or -1. Two prefixes of one length that share
 * their bisect position are equal (a heavy prefix's keys start there), so a query that
 * matches an entry is that prefix once it starts the key at lo. */
static Py_ssize_t heavy_row(const Kernel *k, const QKey *q, Py_ssize_t lo)
{
    if (q->u8len >= 65536 || lo >= PyList_GET_SIZE(k->skeys))
        return -1;
    uint64_t want = ((uint64_t)lo << 16) | (uint64_t)q->u8len;
    uint32_t i = hash_u64(want) & k->hmask;
    while (k->hkey[i]) {
        if (k->hkey[i] == want)
            return skey_startswith(k, lo, q) ? k->hrow[i] : -1;
        i = (i + 1) & k->hmask;
    }
    return -1;
}

static int tier_prefix(Kernel *k, Coll *c, const QKey *q, Py_ssize_t lo)
{
    Py_ssize_t r = heavy_row(k, q, lo);
    if (r >= 0) {
        int64_t a = k->hoff[r], b = k->hoff[r + 1];
        Py_ssize_t ahead = c->limit - c->n + 4;
        prefetch_records(k, k->hvals + a, (b - a) < ahead ? (Py_ssize_t)(b - a) : ahead);
        for (int64_t j = a; j < b; j++) {
            int rr = coll_add(c, k->hvals[j], PREFIX, 0);
            if (rr)
                return add_result(rr);
        }
        /* a full top list may not be all of the range: the rest needs the whole range */
        return (b - a) >= HEAVY_TOP ? T_PYTHON : T_MORE;
    }
    Py_ssize_t n = PyList_GET_SIZE(k->skeys);
    int32_t ids[SMALL_RANGE_MAX];
    Py_ssize_t m = 0;
    for (Py_ssize_t i = lo; i < n && skey_startswith(k, i, q); i++) {
        if (m == SMALL_RANGE_MAX)
            return T_PYTHON;
        ids[m++] = k->skn[i];
    }
    if (m > 1) {
        if (m <= 48) {                       /* insertion sort: a few ids */
            for (Py_ssize_t i = 1; i < m; i++) {
                int32_t v = ids[i];
                Py_ssize_t j = i;
                while (j > 0 && ids[j - 1] > v) {
                    ids[j] = ids[j - 1];
                    j--;
                }
                ids[j] = v;
            }
        }
        else
            qsort(ids, (size_t)m, sizeof(int32_t), cmp_i32);
    }
    prefetch_records(k, ids, m);
    for (Py_ssize_t i = 0; i < m; i++) {
        if (i && ids[i] == ids[i - 1])
            continue;
        int r = coll_add(c, ids[i], PREFIX, 0);
        if (r)
            return add_result(r);
    }
    return T_MORE;
}

/* first index >= from in the ascending list a[0:n) whose value is >= v (galloping) */
static inline Py_ssize_t gallop_ge(const int32_t *a, Py_ssize_t n, Py_ssize_t from, int32_t v)
{
    if (from >= n || a[from] >= v)
        return from;
    Py_ssize_t lo = from, step = 1, hi = from + 1;   /* a[lo] < v */
    while (hi < n && a[hi] < v) {
        lo = hi;
        step *= 2;
        hi = lo + step;
    }
    if (hi > n)
        hi = n;
    while (lo + 1 < hi) {                              /* a[lo] < v, answer in (lo, hi] */
        Py_ssize_t mid = (lo + hi) >> 1;
        if (a[mid] < v)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

typedef struct {
    int64_t size, start;
} Span;

static int cmp_span(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return (x->start > y->start) - (x->start < y->start);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* substring (index.py _substring, queries of 3+ characters): the rarest trigram's names in
 * id order, filtered by the next rarest short lists, verified against the key */
static int tier_substring(Kernel *k, Coll *c, PyObject *key)
{
    Py_ssize_t m = PyUnicode_GET_LENGTH(key);
    if (m < 3)
        return T_PYTHON;
    int kind = PyUnicode_KIND(key);
    const void *data = PyUnicode_DATA(key);
    Py_ssize_t nc = m - 2;
    uint64_t cbuf[64];
    Span sbuf[64];
    uint64_t *codes = nc <= 64 ? cbuf : PyMem_Malloc((size_t)nc * sizeof(uint64_t));
    Span *spans = nc <= 64 ? sbuf : PyMem_Malloc((size_t)nc * sizeof(Span));
    int result = T_MORE;
    if (!codes || !spans) {
        PyErr_NoMemory();
        result = T_ERROR;
        goto out;
    }
    for (Py_ssize_t i = 0; i < nc; i++)
        codes[i] = ((uint64_t)PyUnicode_READ(kind, data, i) << 42) |
                   ((uint64_t)PyUnicode_READ(kind, data, i + 1) << 21) |
                   (uint64_t)PyUnicode_READ(kind, data, i + 2);
    qsort(codes, (size_t)nc, sizeof(uint64_t), cmp_u64);
    Py_ssize_t nd = 0;
    for (Py_ssize_t i = 0; i < nc; i++)
        if (!nd || codes[i] != codes[nd - 1])
            codes[nd++] = codes[i];
    for (Py_ssize_t i = 0; i < nd; i++) {
        Py_ssize_t lo = 0, hi = k->ntc;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) >> 1;
            if (k->tc[mid] < codes[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo >= k->ntc || k->tc[lo] != codes[i])
            goto out;                                  /* a trigram no key has */
        spans[i].size = k->to[lo + 1] - k->to[lo];
        spans[i].start = k->to[lo];
    }
    qsort(spans, (size_t)nd, sizeof(Span), cmp_span);
    /* the rarest trigram drives; the next two rarest lists (under 50k ids) filter its ids
     * before any key is read, as in index.py. Measured at 1M names: with 3 lists a median
     * query verifies 10 candidates (p90 20); 8 lists verify 10 (p90 11) but touch five more
     * lists' memory, and cost more (p50 9.0 vs 8.5 us, p90 34 vs 27 us, caches evicted
     * between blocks of queries as in the benchmark). */
    const int32_t *lists[SUBSTRING_FILTERS];
    Py_ssize_t lens[SUBSTRING_FILTERS], cur[SUBSTRING_FILTERS];
    int nl = 0;
    for (Py_ssize_t i = 0; i < nd && nl < SUBSTRING_FILTERS; i++) {
        if (i == 0 || spans[i].size <= SUBSTRING_OTHER_MAX) {
            lists[nl] = k->ti + spans[i].start;
            lens[nl] = (Py_ssize_t)spans[i].size;
            cur[nl] = 0;
            nl++;
        }
    }
    /* one trigram that is the whole query: its postings are the answer */
    int verify = !(nd <= 3 && m <= 3);
    Py_ssize_t q8len;
    const char *q8 = PyUnicode_AsUTF8AndSize(key, &q8len);
    if (!q8) {
        result = T_ERROR;
        goto out;
    }
    const int32_t *drive = lists[0];
    Py_ssize_t p = 0;
    int32_t batch[SUBSTRING_BATCH];
    while (p < lens[0]) {
        /* a batch of candidates that pass the filters, their records loaded together; no
         * more than the entities still wanted (and a little slack for failed verifications) */
        Py_ssize_t nb = 0, want = c->limit - c->n + 2;
        if (want > SUBSTRING_BATCH)
            want = SUBSTRING_BATCH;
        while (p < lens[0] && nb < want) {
            int32_t nid = drive[p++];
            int ok = 1;
            for (int j = 1; j < nl; j++) {
                if (lens[j] <= LINEAR_DENSITY * lens[0]) {
                    /* a list at most LINEAR_DENSITY times denser than the drive: stepping
                     * forward reads consecutive memory in one predictable loop; galloping
                     * jumps and mispredicts */
                    const int32_t *lj = lists[j];
                    Py_ssize_t cj = cur[j], nj = lens[j];
                    while (cj < nj && lj[cj] < nid)
                        cj++;
                    cur[j] = cj;
                }
                else
                    cur[j] = gallop_ge(lists[j], lens[j], cur[j], nid);
                if (cur[j] >= lens[j] || lists[j][cur[j]] != nid) {
                    ok = 0;
                    break;
                }
            }
            if (ok)
                batch[nb++] = nid;
        }
        if (verify)
            prefetch_records(k, batch, nb);
        for (Py_ssize_t b = 0; b < nb; b++) {
            int32_t nid = batch[b];
            if (verify) {   /* key in keys[nid], on UTF-8 (a substring of code points is one of bytes) */
                RecView rv;
                rec_view(k->spill, rec_head(k->slots, nid), &rv);
                if (!memmem(rv.key, (size_t)rv.klen, q8, (size_t)q8len))
                    continue;
            }
            int r = coll_add(c, nid, SUBSTRING, 0);
            if (r) {
                result = add_result(r);
                goto out;
            }
        }
    }
out:
    if (codes && codes != cbuf)
        PyMem_Free(codes);
    if (spans && spans != sbuf)
        PyMem_Free(spans);
    return result;
}

/* ------------------------------------------------------------------ hits */

static PyObject *one_span(Py_ssize_t a, Py_ssize_t b)
{
    PyObject *t = PyTuple_New(2);
    if (!t)
        return NULL;
    PyObject *x = PyLong_FromSsize_t(a), *y = PyLong_FromSsize_t(b);
    if (!x || !y) {
        Py_XDECREF(x);
        Py_XDECREF(y);
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, x);
    PyTuple_SET_ITEM(t, 1, y);
    PyObject *l = PyList_New(1);
    if (!l) {
        Py_DECREF(t);
        return NULL;
    }
    PyList_SET_ITEM(l, 0, t);
    return l;
}


/* Whether a non-ASCII letter or digit folds to exactly one key character (index.py
 * _alnum_positions); 1, 0, or -1 on error. */
static int folds_to_one(Kernel *k, Py_UCS4 ch)
{
    uint8_t bit = (uint8_t)(1u << (ch & 7));
    if (k->fold_known[ch >> 3] & bit)
        return (k->fold_one[ch >> 3] & bit) != 0;
    PyObject *c = PyUnicode_FromOrdinal((int)ch);
    if (!c)
        return -1;
    PyObject *r = PyObject_CallOneArg(k->one_fold, c);
    Py_DECREF(c);
    if (!r)
        return -1;
    int one = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (one < 0)
        return -1;
    k->fold_known[ch >> 3] |= bit;
    if (one)
        k->fold_one[ch >> 3] |= bit;
    return one;
}

static inline Py_UCS4 utf8_next(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    Py_UCS4 c = p[0];
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n == 2)
        c = ((c & 0x1F) << 6) | (p[1] & 0x3F);
    else if (n == 3)
        c = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    else if (n == 4)
        c = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    *pp = p + n;
    return c;
}

static const char *const ARTICLES[] = {"the", "a", "an", "le", "la", "les", "l", "el", "los",
                                       "las"};   /* normalize.py ARTICLES */

/* index.py match_spans for a name whose key span is where the query sits in its (ASCII) key
 * - the key, the key without its leading article, or anywhere (substring) - mapped to the
 * name through the positions of its letters and digits (_map_spans) when each of them
 * folds to one key character. Anything else (query words matched one by one, names with
 * & or +, letters that fold to several characters) returns NULL without an exception, and
 * match_spans answers. */
static PyObject *spans_mapped(Kernel *k, const RecHead *h, int kind, const char *q8,
                              Py_ssize_t q8len)
{
    if (!(h->flags & RF_KEY_ASCII) || kind > SUBSTRING)
        return NULL;
    RecView rv;
    rec_view(k->spill, h, &rv);
    const char *np = rv.name;
    const char *kp = rv.key;
    Py_ssize_t klen = rv.klen, nlen = rv.nlen, s = -1;
    if (kind <= PREFIX) {
        if (klen >= q8len && memcmp(kp, q8, (size_t)q8len) == 0)
            s = 0;
        else {
            const char *sp = memchr(kp, ' ', (size_t)klen);
            Py_ssize_t hl = sp ? sp - kp : 0;
            int article = 0;
            for (size_t j = 0; sp && j < sizeof ARTICLES / sizeof *ARTICLES; j++)
                if ((Py_ssize_t)strlen(ARTICLES[j]) == hl && memcmp(kp, ARTICLES[j], (size_t)hl) == 0)
                    article = 1;
            Py_ssize_t rest = klen - hl - 1;
            if (article && rest > 0 && rest >= q8len && memcmp(sp + 1, q8, (size_t)q8len) == 0)
                s = hl + 1;
        }
    }
    if (s < 0 && kind == SUBSTRING) {
        const char *at = memmem(kp, (size_t)klen, q8, (size_t)q8len);
        if (at)
            s = at - kp;
    }
    if (s < 0)
        return NULL;
    Py_ssize_t e = s + q8len;         /* the query matched ASCII: its length in characters */
    for (Py_ssize_t j = 0; j < nlen; j++)
        if (np[j] == '&' || np[j] == '+')
            return NULL;
    if ((h->flags & RF_NAME_ASCII) && nlen == klen)
        return one_span(s, e);
    /* key position i holds the (i - spaces before i)-th letter or digit of the name */
    Py_ssize_t spaces = 0, sp_s = 0, sp_e = 0;
    for (Py_ssize_t j = 0; j < klen; j++) {
        if (j == s)
            sp_s = spaces;
        if (j == e - 1)
            sp_e = spaces;
        spaces += kp[j] == ' ';
    }
    Py_ssize_t a = s - sp_s, b = (e - 1) - sp_e;
    Py_ssize_t idx = 0, nalnum = 0, pos_a = -1, pos_b = -1;
    const unsigned char *p = (const unsigned char *)np, *end = p + nlen;
    while (p < end) {
        Py_UCS4 ch = utf8_next(&p);
        int alnum;
        if (ch < 0x80)
            alnum = (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z');
        else if ((alnum = Py_UNICODE_ISALNUM(ch))) {
            int one = folds_to_one(k, ch);
            if (one < 0)
                return NULL;              /* the exception propagates */
            if (!one)
                return NULL;
        }
        if (alnum) {
            if (nalnum == a)
                pos_a = idx;
            if (nalnum == b)
                pos_b = idx;
            nalnum++;
        }
        idx++;
    }
    if (nalnum != klen - spaces)
        return NULL;                      /* not one to one: normalize_spans */
    if (e > s && b < nalnum)
        return one_span(pos_a, pos_b + 1);
    return PyList_New(0);
}

/* A Hit with its slots filled directly (what the dataclass __init__ does, without running
 * it: it is a third of a query's time otherwise). Steals the references in v. */
static PyObject *new_hit(Kernel *k, PyObject *v[8])
{
    PyObject *h = k->hit_type->tp_alloc(k->hit_type, 0);
    if (!h) {
        for (int i = 0; i < 8; i++)
            Py_XDECREF(v[i]);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        *(PyObject **)((char *)h + k->hit_off[i]) = v[i];
    return h;
}

/* index.py _hits over found (nid, kind, distance, entity) */
static PyObject *make_hits(Kernel *k, const Found *f, Py_ssize_t n, PyObject *qkey,
                           int last_prefix)
{
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    PyObject *qwords = NULL;
    PyObject **keys = ((PyListObject *)k->keys)->ob_item;
    Py_ssize_t qlen = PyUnicode_GET_LENGTH(qkey), q8len;
    const char *q8 = PyUnicode_AsUTF8AndSize(qkey, &q8len);
    if (!q8)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t nid = f[i].nid;
        int kind = f[i].kind;
        const RecHead *h = rec_head(k->slots, nid);
        RecView rv;
        rec_view(k->spill, h, &rv);
        PyObject *v[8] = {NULL};
        v[2] = str_from_utf8(rv.name, rv.nlen, h->flags & RF_NAME_ASCII);
        if (!v[2])
            goto fail;
        /* the common cases: the name maps onto its (ASCII) key character for character, so a
         * key span is a name span; a non-ASCII query cannot match inside an ASCII key */
        if (h->flags & RF_SIMPLE) {
            if (kind <= PREFIX && rv.klen >= q8len && memcmp(rv.key, q8, (size_t)q8len) == 0)
                v[5] = one_span(0, qlen);
            else if (kind == SUBSTRING) {
                const char *at = memmem(rv.key, (size_t)rv.klen, q8, (size_t)q8len);
                if (at)
                    v[5] = one_span(at - rv.key, at - rv.key + qlen);
            }
            if (!v[5] && PyErr_Occurred())
                goto fail_v;
        }
        if (!v[5] && !(v[5] = spans_mapped(k, h, kind, q8, q8len)) && PyErr_Occurred())
            goto fail_v;
        if (!v[5]) {
            if (!qwords && !(qwords = PyUnicode_Split(qkey, k->space, -1)))
                goto fail_v;
            PyObject *kobj = PyLong_FromLong(kind);
            if (!kobj)
                goto fail_v;
            v[5] = PyObject_CallFunctionObjArgs(k->span_fn, v[2], kobj, qkey, qwords,
                                                last_prefix ? Py_True : Py_False, keys[nid],
                                                NULL);
            Py_DECREF(kobj);
            if (!v[5])
                goto fail_v;
        }
        v[0] = str_from_utf8(rv.ent, rv.elen, h->flags & RF_ENT_ASCII);
        if (!v[0])
            goto fail_v;
        v[1] = Py_NewRef(k->type_str[h->type & 3]);
        v[3] = Py_NewRef(k->kind_str[kind]);
        if (!(v[4] = PyLong_FromLong(f[i].d)) ||
            !(v[6] = PyFloat_FromDouble((double)h->popularity)) ||
            !(v[7] = PyLong_FromLong(nid)))
            goto fail_v;
        PyObject *hit = new_hit(k, v);
        if (!hit)
            goto fail;
        PyList_SET_ITEM(out, i, hit);
        continue;
    fail_v:
        for (int j = 0; j < 8; j++)
            Py_XDECREF(v[j]);
        goto fail;
    }
    Py_XDECREF(qwords);
    return out;
fail:
    Py_XDECREF(qwords);
    Py_DECREF(out);
    return NULL;
}

/* Let other threads run now and then during a construction of several hundred ms: an index
 * rebuilt in a worker thread must not stall the service's event loop (Python code gives the
 * GIL up every 5 ms; a C loop has to do it itself). The objects read here are kept alive by
 * the kernel's references and never change. */
#define YIELD_EVERY 16384
static inline void yield_gil(Py_ssize_t i)
{
    if ((i & (YIELD_EVERY - 1)) == YIELD_EVERY - 1) {
        Py_BEGIN_ALLOW_THREADS
        Py_END_ALLOW_THREADS
    }
}

/* The per-name slots (see RecHead) and the spill, from the index's arrays. */
static int build_records(Kernel *k)
{
    Py_ssize_t n = PyList_GET_SIZE(k->keys);
    PyObject **keys = ((PyListObject *)k->keys)->ob_item;
    Py_ssize_t nent = k->buf[B_ET].len;
    size_t slots_size = (size_t)(n > 0 ? n : 1) << SLOT_SHIFT;
    k->slots = aligned_alloc(SLOT_SIZE, slots_size);     /* a slot is one cache line */
    if (!k->slots) {
        PyErr_NoMemory();
        return -1;
    }
    memset(k->slots, 0, slots_size);
    uint64_t spill_total = 0;
    for (int pass = 0; pass < 2; pass++) {
        spill_total = 0;
        for (Py_ssize_t nid = 0; nid < n; nid++) {
            yield_gil(nid);
            int32_t e = k->ne[nid];
            if (e < 0 || e >= nent) {
                PyErr_SetString(PyExc_ValueError, "name_entity out of range");
                return -1;
            }
            const char *np = k->nblob + k->noff[nid];
            Py_ssize_t nlen = (Py_ssize_t)(k->noff[nid + 1] - k->noff[nid]);
            const char *ep = k->eblob + k->eoff[e];
            Py_ssize_t elen = (Py_ssize_t)(k->eoff[e + 1] - k->eoff[e]);
            PyObject *key = keys[nid];
            Py_ssize_t klen;
            const char *kd = PyUnicode_AsUTF8AndSize(key, &klen);
            if (!kd)
                return -1;
            int spilled = nlen + klen + elen > SLOT_INLINE;
            if (pass == 0) {
                if (spilled)
                    spill_total += 3 * sizeof(uint32_t) + (uint64_t)(nlen + klen + elen);
                if (spill_total > UINT32_MAX) {
                    PyErr_SetString(PyExc_ValueError, "names too large for 32-bit spill offsets");
                    return -1;
                }
                continue;
            }
            int ascii = 1, plain = 1;
            for (Py_ssize_t j = 0; j < nlen; j++) {
                unsigned char ch = (unsigned char)np[j];
                if (ch >= 0x80) {
                    ascii = plain = 0;
                    break;
                }
                if (ch == '&' || ch == '+')
                    plain = 0;
            }
            int simple = plain && PyUnicode_IS_ASCII(key) && PyUnicode_GET_LENGTH(key) == nlen;
            RecHead *h = (RecHead *)(k->slots + ((size_t)nid << SLOT_SHIFT));
            h->entity = e;
            h->popularity = k->ep[e];
            h->type = k->et[e];
            h->flags = (ascii ? RF_NAME_ASCII : 0) | (simple ? RF_SIMPLE : 0) |
                       (bytes_ascii(ep, elen) ? RF_ENT_ASCII : 0) |
                       (PyUnicode_IS_ASCII(key) ? RF_KEY_ASCII : 0) |
                       (spilled ? RF_SPILLED : 0);
            char *p = (char *)(h + 1);
            if (spilled) {
                uint32_t off = (uint32_t)spill_total, lens[3] = {(uint32_t)nlen, (uint32_t)klen,
                                                                 (uint32_t)elen};
                memcpy(p, &off, sizeof off);
                p = k->spill + spill_total;
                memcpy(p, lens, sizeof lens);
                p += sizeof lens;
                spill_total += sizeof lens + (uint64_t)(nlen + klen + elen);
            }
            else {
                h->name_len = (uint8_t)nlen;
                h->key_len = (uint8_t)klen;
                h->ent_len = (uint8_t)elen;
            }
            memcpy(p, np, (size_t)nlen);
            memcpy(p + nlen, kd, (size_t)klen);
            memcpy(p + nlen + klen, ep, (size_t)elen);
        }
        if (pass == 0) {
            k->spill = PyMem_Malloc((size_t)spill_total + 1);
            if (!k->spill) {
                PyErr_NoMemory();
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ methods */

/* The hits of a normalized, non-empty key, or Py_None when the Python path must answer. */
static PyObject *search_key(Kernel *k, PyObject *key, long mode, Py_ssize_t limit, long tbits)
{
    if (mode == M_FUZZY || mode < 0 || mode > M_AUTO || limit <= 0 ||
        PyUnicode_GET_LENGTH(key) == 0)
        Py_RETURN_NONE;
    QKey q;
    if (qkey_init(&q, key) < 0)
        return NULL;
    Coll c;
    coll_init(&c, limit, (unsigned)tbits, k);
    /* the exact range and the prefix range both start here: one binary search for both */
    Py_ssize_t lo = skeys_bisect_left(k, &q);
    int r = tier_exact(k, &c, &q, lo);
    if (r == T_MORE && mode != M_EXACT)
        r = tier_prefix(k, &c, &q, lo);
    if (r == T_MORE && mode == M_SUBSTRING)
        r = tier_substring(k, &c, key);
    /* auto's word tiers (substring and fuzzy words) are the Python path's */
    if (r == T_MORE && mode == M_AUTO)
        r = T_PYTHON;
    PyObject *res;
    if (r == T_ERROR)
        res = NULL;
    else if (r == T_PYTHON)
        res = Py_NewRef(Py_None);
    else
        res = make_hits(k, c.f, c.n, key, mode == M_AUTO);
    coll_free(&c);
    return res;
}

static int parse_args(PyObject *const *args, Py_ssize_t nargs, long *mode, Py_ssize_t *limit,
                      long *tbits, const char *sig)
{
    if (nargs != 4 || !PyUnicode_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, sig);
        return -1;
    }
    *mode = PyLong_AsLong(args[1]);
    *limit = PyLong_AsSsize_t(args[2]);
    *tbits = PyLong_AsLong(args[3]);
    return PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(search_doc,
"search(key, mode, limit, type_bits) -> list[Hit] | None\n\n"
"The hits of an already normalized, non-empty key (mode: 0 exact, 1 prefix, 2 substring,\n"
"3 fuzzy, 4 auto; type_bits: 1 << type code of each wanted type, 0 = all), or None when\n"
"the query needs a tier only the Python path has.");

static PyObject *Kernel_search(Kernel *k, PyObject *const *args, Py_ssize_t nargs)
{
    long mode, tbits;
    Py_ssize_t limit;
    if (parse_args(args, nargs, &mode, &limit, &tbits,
                   "search(key: str, mode: int, limit: int, type_bits: int)") < 0)
        return NULL;
    return search_key(k, args[0], mode, limit, tbits);
}

/* normalize.normalize_key's key for an ASCII query without ' ` & + (lower case, every other
 * character than a letter or digit a separator, runs of them one space, none at the ends);
 * NULL without an exception for any other query. */
static PyObject *normalize_plain_ascii(PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const unsigned char *p = PyUnicode_1BYTE_DATA(text);
    char buf[256];
    if (n > (Py_ssize_t)sizeof buf)
        return NULL;
    Py_ssize_t m = 0;
    int pending = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if (ch == '\'' || ch == '`' || ch == '&' || ch == '+')
            return NULL;
        if (ch >= 'A' && ch <= 'Z')
            ch |= 0x20;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            if (pending && m)
                buf[m++] = ' ';
            pending = 0;
            buf[m++] = (char)ch;
        }
        else
            pending = 1;
    }
    return PyUnicode_FromStringAndSize(buf, m);
}

PyDoc_STRVAR(search_text_doc,
"search_text(query, mode, limit, type_bits) -> list[Hit] | str\n\n"
"search() of a raw query: the hits, or the normalized key when the Python path must\n"
"answer ([] for a query that normalizes to nothing).");

static PyObject *Kernel_search_text(Kernel *k, PyObject *const *args, Py_ssize_t nargs)
{
    long mode, tbits;
    Py_ssize_t limit;
    if (parse_args(args, nargs, &mode, &limit, &tbits,
                   "search_text(query: str, mode: int, limit: int, type_bits: int)") < 0)
        return NULL;
    PyObject *key = normalize_plain_ascii(args[0]);
    if (!key) {
        if (PyErr_Occurred())
            return NULL;
        key = PyObject_CallOneArg(k->normalize, args[0]);
        if (!key)
            return NULL;
        if (!PyUnicode_CheckExact(key)) {
            Py_DECREF(key);
            PyErr_SetString(PyExc_TypeError, "normalize() must return a str");
            return NULL;
        }
    }
    if (PyUnicode_GET_LENGTH(key) == 0 || limit <= 0) {
        Py_DECREF(key);
        return PyList_New(0);
    }
    PyObject *res = search_key(k, key, mode, limit, tbits);
    if (res == Py_None) {
        Py_DECREF(res);
        return key;
    }
    Py_DECREF(key);
    return res;
}

PyDoc_STRVAR(hits_doc,
"hits(found, qkey, last_prefix) -> list[Hit]\n\n"
"Hit assembly (index.py _hits) for a list of (name id, kind, distance, entity).");

static PyObject *Kernel_hits(Kernel *k, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyUnicode_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "hits(found: list, qkey: str, last_prefix: bool)");
        return NULL;
    }
    int last_prefix = PyObject_IsTrue(args[2]);
    if (last_prefix < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    Found sbuf[64];
    Found *f = n <= 64 ? sbuf : PyMem_Malloc((size_t)n * sizeof(Found));
    if (!f)
        return PyErr_NoMemory();
    PyObject *res = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(args[0], i);
        long nid, kind, d, e;
        if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "llll", &nid, &kind, &d, &e)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "found: (name id, kind, distance, entity)");
            goto out;
        }
        if (kind < 0 || kind > FUZZY) {
            PyErr_SetString(PyExc_ValueError, "unknown kind");
            goto out;
        }
        f[i].nid = (int32_t)nid;
        f[i].kind = (int)kind;
        f[i].d = (int32_t)d;
        f[i].e = (int32_t)e;
    }
    res = make_hits(k, f, n, args[1], last_prefix);
out:
    if (f != sbuf)
        PyMem_Free(f);
    return res;
}

static PyMethodDef Kernel_methods[] = {
    {"search", (PyCFunction)(void (*)(void))Kernel_search, METH_FASTCALL, search_doc},
    {"search_text", (PyCFunction)(void (*)(void))Kernel_search_text, METH_FASTCALL,
     search_text_doc},
    {"hits", (PyCFunction)(void (*)(void))Kernel_hits, METH_FASTCALL, hits_doc},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ construction */

static void Kernel_dealloc(Kernel *k)
{
    for (int i = 0; i < k->nbuf; i++)
        PyBuffer_Release(&k->buf[i]);
    free(k->slots);
    PyMem_Free(k->spill);
    PyMem_Free(k->kpre);
    PyMem_Free(k->hkey);
    PyMem_Free(k->hrow);
    Py_XDECREF(k->skeys);
    Py_XDECREF(k->keys);
    Py_XDECREF(k->heavy_key);
    Py_XDECREF(k->span_fn);
    Py_XDECREF(k->one_fold);
    Py_XDECREF(k->normalize);
    PyMem_Free(k->fold_known);
    PyMem_Free(k->fold_one);
    Py_XDECREF(k->hit_type);
    Py_XDECREF(k->space);
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(k->kind_str[i]);
        Py_XDECREF(k->type_str[i]);
    }
    Py_TYPE(k)->tp_free((PyObject *)k);
}

static int str_tuple4(PyObject *t, PyObject *out[4], const char *what)
{
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4) {
        PyErr_Format(PyExc_TypeError, "%s: a tuple of 4 str", what);
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        PyObject *s = PyTuple_GET_ITEM(t, i);
        if (!PyUnicode_Check(s)) {
            PyErr_Format(PyExc_TypeError, "%s: a tuple of 4 str", what);
            return -1;
        }
        out[i] = Py_NewRef(s);
    }
    return 0;
}

static int build_heavy_table(Kernel *k)
{
    Py_ssize_t n = PyDict_GET_SIZE(k->heavy_key);
    uint32_t size = 64;
    while (size < 2 * (uint64_t)n + 2)
        size *= 2;
    k->hmask = size - 1;
    k->hkey = PyMem_Calloc(size, sizeof(uint64_t));
    k->hrow = PyMem_Calloc(size, sizeof(int32_t));
    if (!k->hkey || !k->hrow) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *p, *row;
    while (PyDict_Next(k->heavy_key, &pos, &p, &row)) {
        QKey q;
        if (!PyUnicode_CheckExact(p) || qkey_init(&q, p) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "heavy_key_rows: str keys");
            return -1;
        }
        Py_ssize_t r = PyLong_AsSsize_t(row);
        if (r == -1 && PyErr_Occurred())
            return -1;
        Py_ssize_t nrows = k->buf[B_HOFF].len / 8 - 1;
        if (r < 0 || r >= nrows) {
            PyErr_SetString(PyExc_ValueError, "heavy_key_rows: row out of range");
            return -1;
        }
        if (q.u8len == 0 || q.u8len >= 65536)
            continue;                  /* never looked up: found as a plain range */
        Py_ssize_t lo = skeys_bisect_left(k, &q);
        uint64_t key = ((uint64_t)lo << 16) | (uint64_t)q.u8len;
        uint32_t i = hash_u64(key) & k->hmask;
        while (k->hkey[i] && k->hkey[i] != key)
            i = (i + 1) & k->hmask;
        k->hkey[i] = key;
        k->hrow[i] = (int32_t)r;
    }
    return 0;
}

PyDoc_STRVAR(Kernel_doc,
"Kernel(skeys, keys, heavy_key_rows, hit_type, kinds, types, match_spans, one_fold, normalize,\n"
"       skey_name, heavy_key_off, heavy_key_vals, names_blob, names_off, ent_keys_blob,\n"
"       ent_keys_off, name_entity, ent_type, ent_pop, tri_codes, tri_off, tri_ids)\n\n"
"The compiled query path over a SearchIndex's structures (index.py builds it).");

static PyObject *Kernel_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (kw && PyDict_GET_SIZE(kw)) {
        PyErr_SetString(PyExc_TypeError, "Kernel() takes positional arguments");
        return NULL;
    }
    if (PyTuple_GET_SIZE(args) != 9 + B_COUNT) {
        PyErr_Format(PyExc_TypeError, "Kernel() takes %d arguments", 9 + B_COUNT);
        return NULL;
    }
    Kernel *k = (Kernel *)type->tp_alloc(type, 0);
    if (!k)
        return NULL;
    PyObject *skeys = PyTuple_GET_ITEM(args, 0), *keys = PyTuple_GET_ITEM(args, 1);
    PyObject *heavy = PyTuple_GET_ITEM(args, 2), *hit_type = PyTuple_GET_ITEM(args, 3);
    if (!PyList_CheckExact(skeys) || !PyList_CheckExact(keys) || !PyDict_CheckExact(heavy) ||
        !PyType_Check(hit_type)) {
        PyErr_SetString(PyExc_TypeError, "skeys, keys: list; heavy_key_rows: dict; hit_type: type");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(skeys); i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(skeys, i)) || (yield_gil(i), 0)) {
            PyErr_SetString(PyExc_TypeError, "skeys: a list of str");
            goto fail;
        }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(keys, i)) || (yield_gil(i), 0)) {
            PyErr_SetString(PyExc_TypeError, "keys: a list of str");
            goto fail;
        }
    k->skeys = Py_NewRef(skeys);
    k->keys = Py_NewRef(keys);
    k->heavy_key = Py_NewRef(heavy);
    k->hit_type = (PyTypeObject *)Py_NewRef(hit_type);
    if (str_tuple4(PyTuple_GET_ITEM(args, 4), k->kind_str, "kinds") < 0 ||
        str_tuple4(PyTuple_GET_ITEM(args, 5), k->type_str, "types") < 0)
        goto fail;
    k->span_fn = Py_NewRef(PyTuple_GET_ITEM(args, 6));
    k->one_fold = Py_NewRef(PyTuple_GET_ITEM(args, 7));
    k->normalize = Py_NewRef(PyTuple_GET_ITEM(args, 8));
    k->fold_known = PyMem_Calloc(0x110000 / 8, 1);
    k->fold_one = PyMem_Calloc(0x110000 / 8, 1);
    if (!k->fold_known || !k->fold_one) {
        PyErr_NoMemory();
        goto fail;
    }
    if (!(k->space = PyUnicode_FromString(" ")))
        goto fail;
    /* Hit must be a slotted class whose fields are plain object slots */
    if (k->hit_type->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "hit_type must use __slots__");
        goto fail;
    }
    for (int i = 0; i < 8; i++) {
        PyObject *d = PyObject_GetAttrString(hit_type, HIT_FIELDS[i]);
        if (!d)
            goto fail;
        int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
        if (ok)
            k->hit_off[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "hit_type.%s is not an object slot", HIT_FIELDS[i]);
            goto fail;
        }
    }
    for (int i = 0; i < B_COUNT; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, 9 + i), &k->buf[i], PyBUF_C_CONTIGUOUS) < 0)
            goto fail;
        k->nbuf++;
        if (k->buf[i].len % B_ITEMSIZE[i]) {
            PyErr_Format(PyExc_ValueError, "array argument %d: item size %zd expected",
                         9 + i, B_ITEMSIZE[i]);
            goto fail;
        }
    }
    k->skn = k->buf[B_SKN].buf;
    k->hoff = k->buf[B_HOFF].buf;
    k->hvals = k->buf[B_HVALS].buf;
    k->nblob = k->buf[B_NBLOB].buf;
    k->noff = k->buf[B_NOFF].buf;
    k->eblob = k->buf[B_EBLOB].buf;
    k->eoff = k->buf[B_EOFF].buf;
    k->ne = k->buf[B_NE].buf;
    k->et = k->buf[B_ET].buf;
    k->ep = k->buf[B_EP].buf;
    k->tc = k->buf[B_TC].buf;
    k->to = k->buf[B_TO].buf;
    k->ti = k->buf[B_TI].buf;
    k->ntc = k->buf[B_TC].len / 8;
    Py_ssize_t nskeys = PyList_GET_SIZE(skeys), nnames = PyList_GET_SIZE(keys);
    if (k->buf[B_SKN].len / 4 != nskeys || k->buf[B_NOFF].len / 8 != nnames + 1 ||
        k->buf[B_NE].len / 4 != nnames || k->buf[B_TO].len / 8 != k->ntc + 1 ||
        k->buf[B_ET].len != k->buf[B_EP].len / 4 ||
        k->buf[B_EOFF].len / 8 != k->buf[B_ET].len + 1) {
        PyErr_SetString(PyExc_ValueError, "array sizes do not agree with each other");
        goto fail;
    }
    if (build_records(k) < 0)
        goto fail;
    k->kpre = PyMem_Malloc(((size_t)nskeys + 1) * sizeof(uint64_t));
    if (!k->kpre) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nskeys; i++) {
        yield_gil(i);
        Py_ssize_t len;
        const char *u8 = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(skeys, i), &len);
        if (!u8)
            goto fail;
        k->kpre[i] = pack8(u8, len);
    }
    if (build_heavy_table(k) < 0)
        goto fail;
    return (PyObject *)k;
fail:
    Py_DECREF(k);
    return NULL;
}

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "content_service.engine._kernel.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Kernel_doc,
    .tp_methods = Kernel_methods,
    .tp_new = Kernel_new,
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "_kernel",
    "The compiled query path of content_service.engine.index (see _kernel.c).", -1, NULL,
};

PyMODINIT_FUNC PyInit__kernel(void)
{
    if (PyType_Ready(&KernelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&kernel_module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
