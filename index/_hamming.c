/* Batched exact Hamming range search over 64-bit codes (pHash, dHash, aHash, wHash).
 *
 * Why this exists: an upload asks about 8 orientations of each hash at once. faiss scans the
 * whole array once per query (one popcount per pair), so 8 queries cost 8 scans. Here the codes
 * are read once for the whole batch, and with AVX-512 VPOPCNTDQ eight codes are compared with a
 * query in three instructions, so the batch costs little more than one query.
 *
 * scan(codes, queries, radius) -> (query_index: bytes of int64, position: bytes of int64,
 *                                  distance: bytes of int32)
 * codes and queries: C-contiguous buffers of uint64 (one word per code). Pairs at distance
 * <= radius (inclusive), in no particular order. The GIL is released during the scan.
 *
 * No numpy headers: buffers in, bytes out, so the extension builds with a C compiler alone.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HM_X86 1
#endif

/* Queries compared with each block of codes before moving on: kept in registers. */
#define QUERY_CHUNK 8

typedef struct {
    int64_t *query;
    int64_t *position;
    int32_t *distance;
    Py_ssize_t size;
    Py_ssize_t capacity;
    int failed;
} Hits;

static int hits_grow(Hits *hits) {
    Py_ssize_t capacity = hits->capacity ? hits->capacity * 2 : 1024;
    int64_t *q = realloc(hits->query, capacity * sizeof(int64_t));
    if (q) hits->query = q;
    int64_t *p = realloc(hits->position, capacity * sizeof(int64_t));
    if (p) hits->position = p;
    int32_t *d = realloc(hits->distance, capacity * sizeof(int32_t));
    if (d) hits->distance = d;
    if (!q || !p || !d) {
        hits->failed = 1;
        return -1;
    }
    hits->capacity = capacity;
    return 0;
}

static inline int hits_add(Hits *hits, int64_t query, int64_t position, int32_t distance) {
    if (hits->size == hits->capacity && hits_grow(hits) < 0) return -1;
    hits->query[hits->size] = query;
    hits->position[hits->size] = position;
    hits->distance[hits->size] = distance;
    hits->size++;
    return 0;
}

static void hits_free(Hits *hits) {
    free(hits->query);
    free(hits->position);
    free(hits->distance);
}

/* Portable: one code at a time, every query of the chunk against it. */
static int scan_tail(const uint64_t *codes, Py_ssize_t start, Py_ssize_t n, const uint64_t *queries,
                     Py_ssize_t q0, Py_ssize_t nq, int radius, Hits *hits) {
    for (Py_ssize_t i = start; i < n; i++) {
        uint64_t code = codes[i];
        for (Py_ssize_t j = 0; j < nq; j++) {
            int d = __builtin_popcountll(code ^ queries[q0 + j]);
            if (d <= radius && hits_add(hits, q0 + j, i, d) < 0) return -1;
        }
    }
    return 0;
}

#ifdef HM_X86
__attribute__((target("popcnt")))
static int scan_popcnt(const uint64_t *codes, Py_ssize_t n, const uint64_t *queries, Py_ssize_t q0,
                       Py_ssize_t nq, int radius, Hits *hits) {
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t code = codes[i];
        for (Py_ssize_t j = 0; j < nq; j++) {
            int d = (int)_mm_popcnt_u64(code ^ queries[q0 + j]);
            if (d <= radius && hits_add(hits, q0 + j, i, d) < 0) return -1;
        }
    }
    return 0;
}

/* nq is a constant in every call (see scan_avx512), so the compiler keeps the chunk's queries,
   distances and masks in registers and unrolls the query loops. */
__attribute__((target("avx512f,avx512vpopcntdq"), always_inline))
static inline int scan_avx512_n(const uint64_t *codes, Py_ssize_t n, const uint64_t *queries, Py_ssize_t q0,
                                const int nq, int radius, Hits *hits) {
    __m512i q[QUERY_CHUNK];
    for (int j = 0; j < nq; j++) q[j] = _mm512_set1_epi64((long long)queries[q0 + j]);
    const __m512i limit = _mm512_set1_epi64(radius);
    __m512i distance[QUERY_CHUNK];
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i block = _mm512_loadu_si512((const void *)(codes + i));
        /* All the chunk's distances first, one test after: most blocks are far from every query,
           and a branch per query would stall the pipeline. The test is on the lane-wise minimum
           over the queries (one vector min per query instead of a compare and a mask OR: 14%
           less time for a batch of 8, bench/hamming.py); the masks are made only for a block
           that holds a hit. */
        distance[0] = _mm512_popcnt_epi64(_mm512_xor_si512(block, q[0]));
        __m512i nearest = distance[0];
        for (int j = 1; j < nq; j++) {
            distance[j] = _mm512_popcnt_epi64(_mm512_xor_si512(block, q[j]));
            nearest = _mm512_min_epu64(nearest, distance[j]);
        }
        if (!_mm512_cmple_epu64_mask(nearest, limit)) continue;
        for (int j = 0; j < nq; j++) {
            __mmask8 lanes = _mm512_cmple_epu64_mask(distance[j], limit);
            if (!lanes) continue;
            int64_t distances[8];
            _mm512_storeu_si512((void *)distances, distance[j]);
            while (lanes) {
                int lane = __builtin_ctz(lanes);
                lanes &= lanes - 1;
                if (hits_add(hits, q0 + j, i + lane, (int32_t)distances[lane]) < 0) return -1;
            }
        }
    }
    return scan_tail(codes, i, n, queries, q0, nq, radius, hits);
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static int scan_avx512(const uint64_t *codes, Py_ssize_t n, const uint64_t *queries, Py_ssize_t q0,
                       Py_ssize_t nq, int radius, Hits *hits) {
    switch (nq) {
        case 1: return scan_avx512_n(codes, n, queries, q0, 1, radius, hits);
        case 2: return scan_avx512_n(codes, n, queries, q0, 2, radius, hits);
        case 3: return scan_avx512_n(codes, n, queries, q0, 3, radius, hits);
        case 4: return scan_avx512_n(codes, n, queries, q0, 4, radius, hits);
        case 5: return scan_avx512_n(codes, n, queries, q0, 5, radius, hits);
        case 6: return scan_avx512_n(codes, n, queries, q0, 6, radius, hits);
        case 7: return scan_avx512_n(codes, n, queries, q0, 7, radius, hits);
        default: return scan_avx512_n(codes, n, queries, q0, 8, radius, hits);
    }
}
#endif

typedef int (*scan_fn)(const uint64_t *, Py_ssize_t, const uint64_t *, Py_ssize_t, Py_ssize_t, int, Hits *);

static int scan_portable(const uint64_t *codes, Py_ssize_t n, const uint64_t *queries, Py_ssize_t q0,
                         Py_ssize_t nq, int radius, Hits *hits) {
    return scan_tail(codes, 0, n, queries, q0, nq, radius, hits);
}

static scan_fn chosen_scan = scan_portable;
static const char *chosen_name = "portable";

static void choose_scan(void) {
#ifdef HM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) {
        chosen_scan = scan_avx512;
        chosen_name = "avx512-vpopcntdq";
    } else if (__builtin_cpu_supports("popcnt")) {
        chosen_scan = scan_popcnt;
        chosen_name = "popcnt";
    }
#endif
}

/* A C-contiguous buffer of whole items of ``itemsize`` bytes (ValueError naming ``what`` and the
   ``items`` it should hold if not). */
static int get_buffer(PyObject *object, Py_buffer *view, Py_ssize_t itemsize, const char *what, const char *items) {
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len % itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %s", what, view->len, items);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The hits as (query_index, position, distance): bytes of int64, int64, int32; frees the hits.
   Py_BuildValue makes None of a NULL buffer: no hits must still give three empty bytes. */
static PyObject *hits_result(Hits *hits) {
    static const char nothing[1] = {0};
    PyObject *result = Py_BuildValue(
        "(y#y#y#)",
        hits->size ? (const char *)hits->query : nothing, hits->size * (Py_ssize_t)sizeof(int64_t),
        hits->size ? (const char *)hits->position : nothing, hits->size * (Py_ssize_t)sizeof(int64_t),
        hits->size ? (const char *)hits->distance : nothing, hits->size * (Py_ssize_t)sizeof(int32_t));
    hits_free(hits);
    return result;
}

static PyObject *scan(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *codes_obj, *queries_obj;
    int radius;
    if (!PyArg_ParseTuple(args, "OOi", &codes_obj, &queries_obj, &radius)) return NULL;
    if (radius < 0 || radius > 64) return PyErr_Format(PyExc_ValueError, "radius %d is outside 0..64", radius);
    Py_buffer codes, queries;
    if (get_buffer(codes_obj, &codes, 8, "codes", "64-bit codes") < 0) return NULL;
    if (get_buffer(queries_obj, &queries, 8, "queries", "64-bit codes") < 0) {
        PyBuffer_Release(&codes);
        return NULL;
    }
    const uint64_t *code_words = (const uint64_t *)codes.buf;
    const uint64_t *query_words = (const uint64_t *)queries.buf;
    Py_ssize_t n = codes.len / 8, nq = queries.len / 8;
    Hits hits = {0};
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t q0 = 0; q0 < nq && status == 0; q0 += QUERY_CHUNK) {
        Py_ssize_t chunk = nq - q0 < QUERY_CHUNK ? nq - q0 : QUERY_CHUNK;
        status = chosen_scan(code_words, n, query_words, q0, chunk, radius, &hits);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&codes);
    PyBuffer_Release(&queries);
    if (status < 0 || hits.failed) {
        hits_free(&hits);
        return PyErr_NoMemory();
    }
    return hits_result(&hits);
}

/* probe(codes, words, offsets, perm, keys, perm_starts, queries, radius) -> like scan's result.
 *
 * The verification step of a multi-index search (index/mih.py) for codes of any number of 64-bit
 * words. keys holds, for each query in turn, P probe keys into offsets; bucket k's positions are
 * perm[start + offsets[k] .. start + offsets[k + 1]) with start = perm_starts[probe column]. Every
 * position found is compared with its query over all the words; pairs within radius are returned
 * (a position found through several probes is returned each time: the caller dedupes the few hits).
 * In numpy the same takes a dozen passes over candidate arrays; here it is one loop, without the GIL. */
__attribute__((always_inline))
static inline int probe_all(const uint64_t *codes, Py_ssize_t n, int words, const uint32_t *offsets, Py_ssize_t n_offsets,
                     const uint32_t *perm, Py_ssize_t n_perm, const int64_t *keys, Py_ssize_t n_keys,
                     const int64_t *starts, Py_ssize_t p, const uint64_t *queries, int radius, Hits *hits) {
    for (Py_ssize_t idx = 0; idx < n_keys; idx++) {
        if (idx + 8 < n_keys) {
            int64_t ahead = keys[idx + 8];
            if (ahead >= 0 && ahead < n_offsets) __builtin_prefetch(offsets + ahead);
        }
        int64_t k = keys[idx];
        if (k < 0 || k + 1 >= n_offsets) return -2;
        Py_ssize_t q = idx / p;
        int64_t start = starts[idx % p];
        uint32_t lo = offsets[k], hi = offsets[k + 1];
        if (hi < lo || start < 0 || start + (int64_t)hi > n_perm) return -2;
        const uint64_t *query = queries + q * words;
        for (uint32_t i = lo; i < hi; i++) {
            uint32_t pos = perm[start + i];
            if ((Py_ssize_t)pos >= n) return -2;
            const uint64_t *code = codes + (Py_ssize_t)pos * words;
            int d = 0;
            for (int w = 0; w < words; w++) d += __builtin_popcountll(code[w] ^ query[w]);
            if (d <= radius && hits_add(hits, q, pos, d) < 0) return -1;
        }
    }
    return 0;
}

typedef int (*probe_fn)(const uint64_t *, Py_ssize_t, int, const uint32_t *, Py_ssize_t, const uint32_t *,
                        Py_ssize_t, const int64_t *, Py_ssize_t, const int64_t *, Py_ssize_t, const uint64_t *, int,
                        Hits *);

static int probe_portable(const uint64_t *codes, Py_ssize_t n, int words, const uint32_t *offsets,
                          Py_ssize_t n_offsets, const uint32_t *perm, Py_ssize_t n_perm, const int64_t *keys,
                          Py_ssize_t n_keys, const int64_t *starts, Py_ssize_t p, const uint64_t *queries,
                          int radius, Hits *hits) {
    return probe_all(codes, n, words, offsets, n_offsets, perm, n_perm, keys, n_keys, starts, p, queries, radius, hits);
}

/* Chosen once, at import (choose_probe), like the scan. */
static probe_fn chosen_probe = probe_portable;

#ifdef HM_X86
__attribute__((target("popcnt")))
static int probe_all_popcnt(const uint64_t *codes, Py_ssize_t n, int words, const uint32_t *offsets,
                            Py_ssize_t n_offsets, const uint32_t *perm, Py_ssize_t n_perm, const int64_t *keys,
                            Py_ssize_t n_keys, const int64_t *starts, Py_ssize_t p, const uint64_t *queries,
                            int radius, Hits *hits) {
    return probe_all(codes, n, words, offsets, n_offsets, perm, n_perm, keys, n_keys, starts, p, queries, radius, hits);
}
#endif

static void choose_probe(void) {
#ifdef HM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt")) chosen_probe = probe_all_popcnt;
#endif
}

static PyObject *probe(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *objects[7];
    int words, radius;
    if (!PyArg_ParseTuple(args, "OiOOOOOi", &objects[0], &words, &objects[1], &objects[2], &objects[3],
                          &objects[4], &objects[5], &radius))
        return NULL;
    if (words < 1 || words > 64) return PyErr_Format(PyExc_ValueError, "words %d is outside 1..64", words);
    if (radius < 0 || radius > 64 * words) return PyErr_Format(PyExc_ValueError, "radius %d is out of range", radius);
    static const char *names[6] = {"codes", "offsets", "perm", "keys", "perm_starts", "queries"};
    static const Py_ssize_t sizes[6] = {8, 4, 4, 8, 8, 8};
    static const char *items[6] = {"codes of the given words", "32-bit offsets", "32-bit positions",
                                   "64-bit keys", "64-bit starts", "codes of the given words"};
    Py_buffer views[6];
    for (int i = 0; i < 6; i++) {
        Py_ssize_t itemsize = (i == 0 || i == 5) ? 8 * (Py_ssize_t)words : sizes[i];
        if (get_buffer(objects[i], &views[i], itemsize, names[i], items[i]) < 0) {
            for (int j = 0; j < i; j++) PyBuffer_Release(&views[j]);
            return NULL;
        }
    }
    Py_ssize_t n = views[0].len / (8 * words), n_offsets = views[1].len / 4, n_perm = views[2].len / 4;
    Py_ssize_t n_keys = views[3].len / 8, p = views[4].len / 8, nq = views[5].len / (8 * words);
    Hits hits = {0};
    int status = 0;
    if (p == 0 ? n_keys != 0 : n_keys != nq * p) {
        status = -3;
    } else if (n_keys) {
        Py_BEGIN_ALLOW_THREADS
        status = chosen_probe(views[0].buf, n, words, views[1].buf, n_offsets, views[2].buf, n_perm,
                              views[3].buf, n_keys, views[4].buf, p, views[5].buf, radius, &hits);
        Py_END_ALLOW_THREADS
    }
    for (int i = 0; i < 6; i++) PyBuffer_Release(&views[i]);
    if (status == -2 || status == -3) {
        hits_free(&hits);
        return PyErr_Format(PyExc_ValueError, status == -2
            ? "probe: a key, bucket or position is outside the tables"
            : "probe: keys must hold the same number of probes for every query");
    }
    if (status < 0 || hits.failed) {
        hits_free(&hits);
        return PyErr_NoMemory();
    }
    return hits_result(&hits);
}

/* bucket_sort(codes, words, start, length, offsets, perm) -> None
 *
 * Builds one multi-index table (index/mih.py) in place: the key of code i is its bits
 * [start, start + length) (bit b of a code is bit b % 64 of word b / 64); offsets (2**length + 1
 * uint32, writable) gets each key's first position in perm, and perm (n uint32, writable) the
 * positions grouped by key, ascending within a key: exactly what sorting (key << 32 | position)
 * gives. A counting sort: two passes over the codes and no temporary array, where numpy needs an
 * O(n log n) sort and several n-sized temporaries (which glibc may keep resident after they are
 * freed: bench/search.py's memory rows). The GIL is released. */
static inline uint32_t key_of(const uint64_t *code, int start, int length) {
    int word = start >> 6, shift = start & 63;
    uint64_t value = code[word] >> shift;
    if (shift + length > 64) value |= code[word + 1] << (64 - shift);
    return (uint32_t)(value & ((1ULL << length) - 1));  /* length <= 32 */
}

static PyObject *bucket_sort(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *codes_obj, *offsets_obj, *perm_obj;
    int words, start, length;
    if (!PyArg_ParseTuple(args, "OiiiOO", &codes_obj, &words, &start, &length, &offsets_obj, &perm_obj)) return NULL;
    if (words < 1 || words > 64) return PyErr_Format(PyExc_ValueError, "words %d is outside 1..64", words);
    if (length < 1 || length > 32 || start < 0 || start + length > 64 * words)
        return PyErr_Format(PyExc_ValueError, "bits [%d, %d) are not a substring of 1..32 bits of the code",
                            start, start + length);
    Py_buffer codes, offsets, perm;
    if (get_buffer(codes_obj, &codes, 8 * (Py_ssize_t)words, "codes", "codes of the given words") < 0) return NULL;
    if (PyObject_GetBuffer(offsets_obj, &offsets, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&codes);
        return NULL;
    }
    if (PyObject_GetBuffer(perm_obj, &perm, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&codes);
        PyBuffer_Release(&offsets);
        return NULL;
    }
    Py_ssize_t n = codes.len / (8 * words), buckets = (Py_ssize_t)1 << length;
    const char *problem = NULL;
    const char *o = (const char *)offsets.buf, *q = (const char *)perm.buf;
    if (offsets.itemsize != 4 || perm.itemsize != 4 || strchr("IL", offsets.format[strlen(offsets.format) - 1]) == NULL
        || strchr("IL", perm.format[strlen(perm.format) - 1]) == NULL)
        problem = "bucket_sort: offsets and perm must be arrays of uint32";
    else if (o < q + perm.len && q < o + offsets.len) problem = "bucket_sort: offsets and perm overlap";
    else if (n >= ((Py_ssize_t)1 << 32)) problem = "bucket_sort: 2**32 codes or more";
    else if (offsets.len != (buckets + 1) * 4) problem = "bucket_sort: offsets must hold 2**length + 1 uint32";
    else if (perm.len != n * 4) problem = "bucket_sort: perm must hold one uint32 per code";
    if (problem == NULL) {
        const uint64_t *code_words = (const uint64_t *)codes.buf;
        uint32_t *first = (uint32_t *)offsets.buf, *positions = (uint32_t *)perm.buf;
        Py_BEGIN_ALLOW_THREADS
        memset(first, 0, (size_t)(buckets + 1) * 4);
        /* Counts land one slot up, so the running sum makes first[k] the start of bucket k. */
        for (Py_ssize_t i = 0; i < n; i++) first[key_of(code_words + i * words, start, length) + 1]++;
        for (Py_ssize_t k = 0; k < buckets; k++) first[k + 1] += first[k];
        /* Scattering moves first[k] to the end of bucket k, i.e. the start of bucket k + 1... */
        for (Py_ssize_t i = 0; i < n; i++) positions[first[key_of(code_words + i * words, start, length)]++] = (uint32_t)i;
        /* ...so one shift up restores the starts. */
        memmove(first + 1, first, (size_t)buckets * 4);
        first[0] = 0;
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&codes);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&perm);
    if (problem != NULL) return PyErr_Format(PyExc_ValueError, "%s", problem);
    Py_RETURN_NONE;
}

static PyObject *kernel(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyUnicode_FromString(chosen_name);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(codes, queries, radius) -> (query_index, position, distance) as bytes of int64, int64, int32."},
    {"probe", probe, METH_VARARGS,
     "probe(codes, words, offsets, perm, keys, perm_starts, queries, radius) -> as scan: a multi-index's buckets verified."},
    {"bucket_sort", bucket_sort, METH_VARARGS,
     "bucket_sort(codes, words, start, length, offsets, perm) -> None: one multi-index table, built in place."},
    {"kernel", kernel, METH_NOARGS, "The scan kernel this CPU uses: avx512-vpopcntdq, popcnt or portable."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hamming", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__hamming(void) {
    choose_scan();
    choose_probe();
    return PyModule_Create(&module);
}
