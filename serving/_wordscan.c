/* serving._wordscan: the per-post text work of the classifier's hot path as C loops, each the
 * twin of the Python or numpy code that stays as fallback and reference:
 *
 *   prepare_group  TextFeatures.pairs' grouping: strip_headers and letters, post after post.
 *   strip_headers  Cleaner.headed (headers="strip") for an ASCII post: serving/headers.py's
 *                  one-regex path; the cases its line loop handles come back as None.
 *   letters        wordhash.letters: lower-casing, e-mail/URL words blanked, non-letters.
 *   word_ids       wordhash.WordHashes.word_ids: tokenising, hashing, the word table.
 *   features       WordHashes.features of word_ids: unigram map and bigram table.
 *   runs           the counting of WordHashes.one.
 *   pair_runs      the counting of TermVectorizer.weight_pairs: sorted pairs to CSR arrays.
 *   lookup         hashtable.HashTable.get.
 *   weighted_sum   classifier.sparse_times for float16 weights: the naive Bayes product.
 *   naive_bayes_one  classifier's one-document path after the scan: TF-IDF weights, the
 *                  product, softmax and the classes' order (equal to numpy's to ~1e-15).
 *
 * In numpy, tokenising and looking up ~240 tokens costs ~60 numpy calls of ~1 us each plus
 * temporaries the size of the text; here it is one pass over the bytes. The answers are the
 * same, bit for bit (tests/test_wordscan.py and tests/test_wordhash.py compare both paths on
 * the whole 20news corpus and on random input):
 *
 *   token key  sum(c_i * P**i) + length * LENGTH_MIX  (mod 2**64), c_i the i-th byte of a run
 *              of non-space bytes: wordhash.token_keys' prefix-sum hash.
 *   bucket     (key * MULT) >> shift, shift = 64 - log2(buckets): HashTable._bucket.
 *   value      the value of the equal key in keys[offsets[b] : offsets[b + 1]], else missing.
 *
 * The arrays come in through the buffer protocol (numpy arrays, memory maps): no numpy
 * headers at build time, nothing copied. Sizes and types are checked here, so no input makes
 * a read or a write go out of bounds. The GIL is released while scanning, and nothing here
 * calls back into Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#define P 0x9E3779B97F4A7C15ULL          /* wordhash._P */
#define LENGTH_MIX 0xC2B2AE3D27D4EB4FULL /* wordhash._LENGTH_MIX */
#define MULT 0x9E3779B97F4A7C15ULL       /* hashtable._MULT */
#define STOP (-2)                        /* wordhash.STOP: a token to drop */
#define SPACE ' '

typedef struct {
    Py_buffer keys, values, offsets;
    const uint64_t *k;
    const int32_t *v, *o;
    Py_ssize_t n;
    unsigned shift;
} table_t;

static void table_release(table_t *t) {
    PyBuffer_Release(&t->keys);
    PyBuffer_Release(&t->values);
    PyBuffer_Release(&t->offsets);
}

/* The three arrays of a HashTable: keys (8-byte ints), values (int32) of the same length,
 * offsets (int32, a power of two of buckets plus one). */
static int table_get(PyObject *keys, PyObject *values, PyObject *offsets, table_t *t) {
    memset(t, 0, sizeof(*t));
    if (PyObject_GetBuffer(keys, &t->keys, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (PyObject_GetBuffer(values, &t->values, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&t->keys);
        return -1;
    }
    if (PyObject_GetBuffer(offsets, &t->offsets, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&t->keys);
        PyBuffer_Release(&t->values);
        return -1;
    }
    Py_ssize_t n = t->keys.len / 8, buckets = t->offsets.len / 4 - 1;
    if (t->keys.itemsize != 8 || t->values.itemsize != 4 || t->offsets.itemsize != 4
        || t->values.len / 4 != n || buckets < 2 || (buckets & (buckets - 1))) {
        table_release(t);
        PyErr_SetString(PyExc_ValueError, "hash table arrays of the wrong shape or type");
        return -1;
    }
    t->k = t->keys.buf;
    t->v = t->values.buf;
    t->o = t->offsets.buf;
    t->n = n;
    t->shift = 64;
    while (((Py_ssize_t)1 << (64 - t->shift)) < buckets) t->shift--;
    return 0;
}

/* A bucket's range of keys, clamped to the table (HashTable checks at load that offsets rise
 * from 0 to at most len(keys); clamping anyway means no array makes a read go out of bounds). */
static inline void bucket_range(const table_t *t, uint64_t b, Py_ssize_t *lo, Py_ssize_t *hi) {
    *lo = t->o[b] > 0 ? t->o[b] : 0;
    *hi = t->o[b + 1] < t->n ? t->o[b + 1] : t->n;
}

static inline int32_t find_in(const table_t *t, uint64_t key, Py_ssize_t lo, Py_ssize_t hi,
                              int32_t missing) {
    for (; lo < hi; lo++)
        if (t->k[lo] == key) return t->v[lo];
    return missing;
}

static inline int32_t find(const table_t *t, uint64_t key, int32_t missing) {
    Py_ssize_t lo, hi;
    bucket_range(t, (key * MULT) >> t->shift, &lo, &hi);
    return find_in(t, key, lo, hi, missing);
}

/* Lookups a window at a time (lookup, scan_features): each lookup is a chain of dependent cache
 * misses (the bucket's offset, then its keys and values), ~40 ns each from L3. One key at a
 * time they add up; a step done for a whole window, with prefetches for the next step, has the
 * misses of the window in flight together (~3x faster on the 20news tables). */
#define WINDOW 64

/* The second step of a window: the range of each of the first m buckets (those whose ``want``
 * is set; all when NULL), and a prefetch of the keys and values it starts with. */
static inline void fetch_ranges(const table_t *t, Py_ssize_t m, const uint64_t *bucket,
                                const unsigned char *want, Py_ssize_t *lo, Py_ssize_t *hi) {
    for (Py_ssize_t j = 0; j < m; j++)
        if (want == NULL || want[j]) {
            bucket_range(t, bucket[j], &lo[j], &hi[j]);
            __builtin_prefetch(t->k + lo[j]);
            __builtin_prefetch(t->v + lo[j]);
        }
}

/* The next run of non-space bytes of s[*i : n] (letters and spaces): its offset, -1 when none
 * is left; *i moves past it, its token key (the header comment's) goes to *key and its length
 * to *length. */
static inline Py_ssize_t next_run(const unsigned char *s, Py_ssize_t n, Py_ssize_t *i,
                                  uint64_t *key, Py_ssize_t *length) {
    Py_ssize_t at = *i, end;
    while (at < n && s[at] == SPACE) at++;
    uint64_t h = 0, power = 1;
    for (end = at; end < n && s[end] != SPACE; end++) {
        h += (uint64_t)s[end] * power;
        power *= P;
    }
    *i = end;
    if (at == n) return -1;
    *length = end - at;
    *key = h + (uint64_t)*length * LENGTH_MIX;
    return at;
}

/* The next kept token of s[*i : n]: its offset and word id in the word table (-1: unknown, or
 * longer than max_len and not looked up); 0 when none is left. Tokens shorter than min_len and
 * those whose id is STOP are skipped. */
static inline int next_word(const unsigned char *s, Py_ssize_t n, Py_ssize_t *i, const table_t *t,
                            Py_ssize_t min_len, Py_ssize_t max_len, Py_ssize_t *start,
                            int32_t *id) {
    Py_ssize_t begin, length;
    uint64_t key;
    while ((begin = next_run(s, n, i, &key, &length)) >= 0) {
        if (length < min_len) continue;
        int32_t found = -1;
        if (length <= max_len) {
            found = find(t, key, -1);
            if (found == STOP) continue;
        }
        *start = begin;
        *id = found;
        return 1;
    }
    return 0;
}

PyDoc_STRVAR(word_ids_doc,
"word_ids(text, keys, values, offsets, min_len, max_len, ids, starts) -> count\n\n"
"Word ids of the runs of non-space bytes of ``text`` (letters and spaces), looked up in the\n"
"word table, written to ``ids`` (int32) with each run's offset in ``starts`` (int64): a run\n"
"shorter than ``min_len`` or whose id is STOP (-2) is dropped, one longer than ``max_len`` is\n"
"-1 (unknown) without a lookup, a miss is -1. Both outputs hold len(text) // 2 + 1 items.");

static PyObject *word_ids(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer text, ids, starts;
    PyObject *keys, *values, *offsets;
    Py_ssize_t min_len, max_len;
    if (!PyArg_ParseTuple(args, "y*OOOnnw*w*", &text, &keys, &values, &offsets, &min_len,
                          &max_len, &ids, &starts))
        return NULL;
    table_t t;
    Py_ssize_t count = 0, n = text.len, room = n / 2 + 1;
    if (ids.itemsize != 4 || starts.itemsize != 8 || ids.len / 4 < room
        || starts.len / 8 < room) {
        PyErr_SetString(PyExc_ValueError, "ids (int32) and starts (int64) need len(text) // 2 + 1 items");
        goto done;
    }
    if (table_get(keys, values, offsets, &t) < 0) goto done;
    const unsigned char *s = text.buf;
    int32_t *out = ids.buf;
    int64_t *at = starts.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t i = 0, start;
    int32_t id;
    /* count < room: every token but the last is followed by a space */
    while (next_word(s, n, &i, &t, min_len, max_len, &start, &id)) {
        out[count] = id;
        at[count] = start;
        count++;
    }
    Py_END_ALLOW_THREADS
    table_release(&t);
done:
    PyBuffer_Release(&text);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&starts);
    return PyErr_Occurred() ? NULL : PyLong_FromSsize_t(count);
}

PyDoc_STRVAR(lookup_doc,
"lookup(keys, values, offsets, queries, out, missing)\n\n"
"HashTable.get: the value of each 8-byte key of ``queries`` into ``out`` (int32, as many\n"
"items), ``missing`` where the key is not in the table.");

static PyObject *lookup(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer queries, out;
    PyObject *keys, *values, *offsets;
    int missing;
    if (!PyArg_ParseTuple(args, "OOOy*w*i", &keys, &values, &offsets, &queries, &out, &missing))
        return NULL;
    table_t t;
    Py_ssize_t n = queries.len / 8;
    if (queries.itemsize != 8 || out.itemsize != 4 || out.len / 4 != n) {
        PyErr_SetString(PyExc_ValueError, "queries (8-byte ints) and out (int32) of one length");
        goto done;
    }
    if (table_get(keys, values, offsets, &t) < 0) goto done;
    const uint64_t *q = queries.buf;
    int32_t *o = out.buf;
    Py_BEGIN_ALLOW_THREADS
    /* a window of queries at a time, as scan_features: their misses overlap */
    Py_ssize_t lo[WINDOW], hi[WINDOW];
    uint64_t bucket[WINDOW];
    for (Py_ssize_t i = 0; i < n; i += WINDOW) {
        Py_ssize_t m = n - i < WINDOW ? n - i : WINDOW, j;
        for (j = 0; j < m; j++) {
            bucket[j] = (q[i + j] * MULT) >> t.shift;
            __builtin_prefetch(t.o + bucket[j]);
        }
        fetch_ranges(&t, m, bucket, NULL, lo, hi);
        for (j = 0; j < m; j++) o[i + j] = find_in(&t, q[i + j], lo[j], hi[j], missing);
    }
    Py_END_ALLOW_THREADS
    table_release(&t);
done:
    PyBuffer_Release(&queries);
    PyBuffer_Release(&out);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

/* The loop of features(): the same answers as next_word + find token by token, a WINDOW of
 * tokens at a time. A token costs ~6 dependent misses (the word's bucket offset, its keys and
 * values, its unigram feature, its bigram's bucket offset, keys and values): ~250 ns a token
 * one at a time; for 1,000 posts the scan fell from ~75 to ~20 ms. */

static Py_ssize_t scan_features(const unsigned char *s, Py_ssize_t n, const int64_t *starts,
                                Py_ssize_t n_docs, Py_ssize_t first_row, const table_t *words,
                                const table_t *pairs, const int32_t *uni, int unigrams,
                                Py_ssize_t n_words, Py_ssize_t min_len, Py_ssize_t max_len,
                                int64_t *row_out, int32_t *out) {
    Py_ssize_t begin[WINDOW], lo[WINDOW], hi[WINDOW];
    uint64_t key[WINDOW], bucket[WINDOW];
    int32_t id[WINDOW];
    Py_ssize_t doc_of[WINDOW];
    unsigned char look[WINDOW], pair[WINDOW];
    Py_ssize_t i = 0, doc = 0, count = 0;
    int32_t previous = -1; /* the word id before this token in its document */
    while (i < n) {
        int m = 0, kept = 0, j;
        /* 1: the next WINDOW tokens of at least min_len bytes, their keys and buckets */
        while (m < WINDOW) {
            Py_ssize_t length, at = next_run(s, n, &i, &key[m], &length);
            if (at < 0) break;
            if (length < min_len) continue;
            begin[m] = at;
            look[m] = length <= max_len;
            if (look[m]) {
                bucket[m] = (key[m] * MULT) >> words->shift;
                __builtin_prefetch(words->o + bucket[m]);
            }
            m++;
        }
        /* 2: each bucket's range; its keys and values on their way */
        fetch_ranges(words, m, bucket, look, lo, hi);
        /* 3: word ids (STOP dropped), documents, bigram keys and buckets, in token order */
        for (j = 0; j < m; j++) {
            int32_t w = look[j] ? find_in(words, key[j], lo[j], hi[j], -1) : -1;
            if (w == STOP) continue;
            if (w >= n_words) w = -1; /* not a word of this index (a corrupt table) */
            if (doc + 1 < n_docs && starts[doc + 1] <= begin[j]) {
                while (doc + 1 < n_docs && starts[doc + 1] <= begin[j]) doc++;
                previous = -1;
            }
            id[kept] = w;
            doc_of[kept] = doc;
            pair[kept] = 0;
            if (w >= 0) {
                if (unigrams) __builtin_prefetch(uni + w);
                if (pairs != NULL && previous >= 0) {
                    pair[kept] = 1;
                    key[kept] = (uint64_t)((int64_t)previous * n_words + w);
                    bucket[kept] = (key[kept] * MULT) >> pairs->shift;
                    __builtin_prefetch(pairs->o + bucket[kept]);
                }
            }
            previous = w;
            kept++;
        }
        /* 4: each bigram bucket's range; its keys and values on their way */
        fetch_ranges(pairs, kept, bucket, pair, lo, hi);
        /* 5: the features, each word's unigram then its bigram with the word before */
        for (j = 0; j < kept; j++) {
            if (id[j] < 0) continue;
            int32_t feature = unigrams ? uni[id[j]] : -1;
            if (feature >= 0) {
                out[count] = feature;
                if (row_out != NULL) row_out[count] = first_row + doc_of[j];
                count++;
            }
            if (pair[j]) {
                feature = find_in(pairs, key[j], lo[j], hi[j], -1);
                if (feature >= 0) {
                    out[count] = feature;
                    if (row_out != NULL) row_out[count] = first_row + doc_of[j];
                    count++;
                }
            }
        }
    }
    return count;
}

PyDoc_STRVAR(features_doc,
"features(text, doc_starts, first_row, keys, values, offsets, min_len, max_len, unigram,\n"
"         unigrams, bigram_keys, bigram_values, bigram_offsets, rows, found) -> count\n\n"
"WordHashes.features of word_ids(text): when ``unigrams``, the unigram feature of each known\n"
"word (``unigram``: int32, word id -> feature or -1, then a last -1; n_words = its length - 1);\n"
"then the bigram feature of two consecutive known words of one document (the bigram table's\n"
"int64 key id(a) * n_words + id(b); ``bigram_keys`` None: no bigrams). Misses are left out.\n"
"``doc_starts``: int64, rising, the offset in ``text`` where each document starts (the first\n"
"at 0); a token belongs to the last document starting at or before it. Writes each feature\n"
"(int32) to ``found`` and its document's number (``first_row`` + the document's index, int64)\n"
"to ``rows`` (None: not written); both hold len(text) + 2 items.");

static PyObject *features(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer text, docs, unigram, rows = {0}, found;
    PyObject *keys, *values, *offsets, *bkeys, *bvalues, *boffsets, *rows_obj;
    Py_ssize_t first_row, min_len, max_len, count = 0;
    int unigrams;
    if (!PyArg_ParseTuple(args, "y*y*nOOOnny*pOOOOw*", &text, &docs, &first_row, &keys, &values,
                          &offsets, &min_len, &max_len, &unigram, &unigrams, &bkeys, &bvalues,
                          &boffsets, &rows_obj, &found))
        return NULL;
    table_t words, pairs;
    int have_words = 0, have_pairs = 0, have_rows = 0;
    Py_ssize_t n = text.len, n_docs = docs.len / 8, n_words = 0;
    if (docs.itemsize != 8 || n_docs < 1 || found.itemsize != 4 || found.len / 4 < n + 2) {
        PyErr_SetString(PyExc_ValueError, "doc_starts (int64, at least one) or found (int32, "
                        "len(text) + 2 items) of the wrong type or size");
        goto done;
    }
    if (rows_obj != Py_None) {
        if (PyObject_GetBuffer(rows_obj, &rows, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
            goto done;
        have_rows = 1;
        if (rows.itemsize != 8 || rows.len / 8 < n + 2) {
            PyErr_SetString(PyExc_ValueError, "rows: int64, len(text) + 2 items");
            goto done;
        }
    }
    if (unigram.itemsize != 4 || unigram.len / 4 < 1) {
        PyErr_SetString(PyExc_ValueError, "unigram: int32, one item per word and a last -1");
        goto done;
    }
    n_words = unigram.len / 4 - 1;
    if (table_get(keys, values, offsets, &words) < 0) goto done;
    have_words = 1;
    if (bkeys != Py_None) {
        if (table_get(bkeys, bvalues, boffsets, &pairs) < 0) goto done;
        have_pairs = 1;
    }
    const unsigned char *s = text.buf;
    Py_BEGIN_ALLOW_THREADS
    count = scan_features(s, n, docs.buf, n_docs, first_row, &words, have_pairs ? &pairs : NULL,
                          unigram.buf, unigrams, n_words, min_len, max_len,
                          have_rows ? rows.buf : NULL, found.buf);
    Py_END_ALLOW_THREADS
done:
    if (have_words) table_release(&words);
    if (have_pairs) table_release(&pairs);
    PyBuffer_Release(&unigram);
    if (have_rows) PyBuffer_Release(&rows);
    PyBuffer_Release(&text);
    PyBuffer_Release(&docs);
    PyBuffer_Release(&found);
    return PyErr_Occurred() ? NULL : PyLong_FromSsize_t(count);
}

PyDoc_STRVAR(runs_doc,
"runs(ordered, values, counts) -> count\n\n"
"The runs of equal items of ``ordered`` (int32, sorted): each run's item to ``values``\n"
"(int32) and its length to ``counts`` (float64), both as long as ``ordered``.");

static PyObject *runs(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer ordered, values, counts;
    Py_ssize_t k = 0;
    if (!PyArg_ParseTuple(args, "y*w*w*", &ordered, &values, &counts)) return NULL;
    Py_ssize_t n = ordered.len / 4;
    if (ordered.itemsize != 4 || values.itemsize != 4 || counts.itemsize != 8
        || values.len / 4 < n || counts.len / 8 < n) {
        PyErr_SetString(PyExc_ValueError, "ordered, values (int32) and counts (float64) of one length");
    } else {
        const int32_t *in = ordered.buf;
        int32_t *v = values.buf;
        double *c = counts.buf;
        for (Py_ssize_t i = 0; i < n; k++) {
            Py_ssize_t j = i + 1;
            while (j < n && in[j] == in[i]) j++;
            v[k] = in[i];
            c[k] = (double)(j - i);
            i = j;
        }
    }
    PyBuffer_Release(&ordered);
    PyBuffer_Release(&values);
    PyBuffer_Release(&counts);
    return PyErr_Occurred() ? NULL : PyLong_FromSsize_t(k);
}

PyDoc_STRVAR(pair_runs_doc,
"pair_runs(packed, n_features, indptr, indices, counts) -> nnz\n\n"
"The count matrix of (row, feature) pairs packed as row * n_features + feature (int64,\n"
"sorted): each run of equal keys becomes one stored value, its feature to ``indices``\n"
"(int32) and its length to ``counts`` (float64), both at least as long as ``packed``; row i's\n"
"values are indices[indptr[i]:indptr[i + 1]] (``indptr`` int64, rows + 1). The CSR arrays of\n"
"TermVectorizer.weight_pairs' numpy path, without its temporaries.");

static PyObject *pair_runs(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer packed, indptr, indices, counts;
    Py_ssize_t n_features, k = 0;
    if (!PyArg_ParseTuple(args, "y*nw*w*w*", &packed, &n_features, &indptr, &indices, &counts))
        return NULL;
    Py_ssize_t n = packed.len / 8, n_rows = indptr.len / 8 - 1;
    if (packed.itemsize != 8 || indptr.itemsize != 8 || indices.itemsize != 4
        || counts.itemsize != 8 || n_rows < 0 || indices.len / 4 < n || counts.len / 8 < n
        || n_features < 1 || n_features > INT32_MAX
        || (n_rows > 0 && n_features > INT64_MAX / n_rows)) {
        PyErr_SetString(PyExc_ValueError, "pair_runs: arrays of the wrong type or size");
        goto done;
    }
    const int64_t *key = packed.buf;
    const int64_t end = (int64_t)n_rows * n_features;
    for (Py_ssize_t i = 0; i < n; i++)
        if (key[i] < 0 || key[i] >= end || (i && key[i] < key[i - 1])) {
            PyErr_SetString(PyExc_ValueError,
                            "pair_runs: keys not sorted or outside rows x features");
            goto done;
        }
    int64_t *ptr = indptr.buf;
    int32_t *col = indices.buf;
    double *c = counts.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t row = 0;
    int64_t row_end = n_features;  /* the first key past the current row */
    ptr[0] = 0;
    for (Py_ssize_t i = 0; i < n;) {
        Py_ssize_t j = i + 1;
        while (j < n && key[j] == key[i]) j++;
        while (key[i] >= row_end) {  /* rows before this key's: they end here */
            ptr[++row] = k;
            row_end += n_features;
        }
        col[k] = (int32_t)(key[i] - (row_end - n_features));
        c[k] = (double)(j - i);
        k++;
        i = j;
    }
    while (row < n_rows) ptr[++row] = k;
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&packed);
    PyBuffer_Release(&indptr);
    PyBuffer_Release(&indices);
    PyBuffer_Release(&counts);
    return PyErr_Occurred() ? NULL : PyLong_FromSsize_t(k);
}

/* strip_headers(): the ASCII characters str.strip() removes. */
static inline int strippable(unsigned char c) {
    return c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31);
}

static inline int name_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Length of the header name at s (``[A-Za-z][A-Za-z0-9-]*`` then ':'), 0 if none. */
static Py_ssize_t header_name(const unsigned char *s, Py_ssize_t n) {
    if (n < 2 || !((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')) return 0;
    Py_ssize_t i = 1;
    while (i < n && name_char(s[i])) i++;
    return i < n && s[i] == ':' ? i : 0;
}

/* Whether the lower-cased name is a line of ``names`` ("\n"-separated, lower case). */
static int listed(const unsigned char *name, Py_ssize_t length, const unsigned char *names,
                  Py_ssize_t size) {
    Py_ssize_t at = 0;
    while (at < size) {
        Py_ssize_t end = at;
        while (end < size && names[end] != '\n') end++;
        if (end - at == length) {
            Py_ssize_t i = 0;
            while (i < length && (unsigned char)(name[i] | (name[i] >= 'A' && name[i] <= 'Z' ? 32 : 0)) == names[at + i]) i++;
            if (i == length) return 1;
        }
        at = end + 1;
    }
    return 0;
}

#define MAX_HEADER_CHARS (1 << 20) /* headers.MAX_HEADER_CHARS */
#define MAX_FIELDS 4096

enum { PLAN_UNCHANGED, PLAN_STRIPPED, PLAN_FALLBACK };

/* headers.py's decision for the ASCII post t[0:n]: PLAN_UNCHANGED (no header block: the post
 * as it is), PLAN_FALLBACK (a block the line-by-line path reads: a line boundary other than \n,
 * a block ending in a newline, a byte over 127, over MAX_FIELDS fields) or PLAN_STRIPPED: the
 * block's fields in ``fields`` (3 * MAX_FIELDS: each field's line start, name length and the
 * end of its last continuation line), *count of them, the body from *body. */
static int strip_plan(const unsigned char *t, Py_ssize_t n, const Py_buffer *known,
                      Py_ssize_t *fields, Py_ssize_t *count, Py_ssize_t *body) {
    Py_ssize_t head = n, i;
    *count = 0;
    *body = n;
    if (!header_name(t, n)) return PLAN_UNCHANGED;
    for (i = 0; i + 1 < n; i++)
        if (t[i] == '\n' && t[i + 1] == '\n') {
            head = i;
            *body = i + 2;
            break;
        }
    if (head > MAX_HEADER_CHARS) return PLAN_UNCHANGED;
    if (head > 0 && t[head - 1] == '\n') return PLAN_FALLBACK;
    for (i = 0; i < head; i++)
        if (t[i] > 127 || t[i] == '\r' || t[i] == 11 || t[i] == 12 || (t[i] >= 28 && t[i] <= 30))
            return PLAN_FALLBACK;
    int any_known = 0;
    for (i = 0; i < head;) { /* one line at a time: a field or a continuation, else no block */
        Py_ssize_t end = i;
        while (end < head && t[end] != '\n') end++;
        if (t[i] == ' ' || t[i] == '\t') {
            if (*count == 0) return PLAN_UNCHANGED; /* (the first line is a field: never here) */
            fields[3 * (*count - 1) + 2] = end;
        } else {
            Py_ssize_t length = header_name(t + i, end - i);
            if (!length) return PLAN_UNCHANGED;
            if (*count == MAX_FIELDS) return PLAN_FALLBACK;
            any_known |= listed(t + i, length, known->buf, known->len);
            fields[3 * *count] = i;
            fields[3 * *count + 1] = length;
            fields[3 * *count + 2] = end;
            (*count)++;
        }
        i = end + 1;
    }
    return any_known ? PLAN_STRIPPED : PLAN_UNCHANGED;
}

/* A PLAN_STRIPPED post: the values of the fields named in ``keep`` (each line of a value
 * stripped, the lines joined by a space), each followed by a newline, then the body; written
 * to o, or only measured when o is NULL. Returns the length. */
static Py_ssize_t strip_write(const unsigned char *t, Py_ssize_t n, const Py_buffer *keep,
                              const Py_ssize_t *fields, Py_ssize_t count, Py_ssize_t body,
                              unsigned char *o) {
    Py_ssize_t size = 0;
    for (Py_ssize_t f = 0; f < count; f++) {
        if (!listed(t + fields[3 * f], fields[3 * f + 1], keep->buf, keep->len)) continue;
        Py_ssize_t at = fields[3 * f] + fields[3 * f + 1] + 1, last = fields[3 * f + 2];
        int first = 1;
        while (at <= last) { /* each line of the value: stripped, joined by a space */
            Py_ssize_t end = at;
            while (end < last && t[end] != '\n') end++;
            Py_ssize_t a = at, b = end;
            while (a < b && strippable(t[a])) a++;
            while (b > a && strippable(t[b - 1])) b--;
            if (!first) {
                if (o) o[size] = ' ';
                size++;
            }
            if (o) memcpy(o + size, t + a, (size_t)(b - a));
            size += b - a;
            first = 0;
            at = end + 1;
        }
        if (o) o[size] = '\n';
        size++;
    }
    if (o) memcpy(o + size, t + body, (size_t)(n - body));
    return size + n - body;
}

PyDoc_STRVAR(strip_headers_doc,
"strip_headers(text, keep, known) -> bytes | None\n\n"
"Cleaner.headed for headers='strip' (serving/headers.py split_headers, its one-regex path) on\n"
"ASCII ``text``: the values of the header fields named in ``keep``, then the body, joined by\n"
"newlines; ``text`` itself when it has no header block. ``keep`` and ``known`` (KNOWN_HEADERS)\n"
"are lower-case names joined by newlines. None when the block needs the line-by-line path\n"
"(a line boundary other than \\n, a block ending in a newline, a byte over 127).");

static PyObject *strip_headers(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *text_obj, *result = NULL;
    Py_buffer keep, known;
    if (!PyArg_ParseTuple(args, "Sy*y*", &text_obj, &keep, &known)) return NULL;
    const unsigned char *t = (const unsigned char *)PyBytes_AS_STRING(text_obj);
    Py_ssize_t n = PyBytes_GET_SIZE(text_obj), count, body;
    Py_ssize_t *fields = PyMem_Malloc(sizeof(Py_ssize_t) * 3 * MAX_FIELDS);
    if (fields == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    switch (strip_plan(t, n, &known, fields, &count, &body)) {
    case PLAN_UNCHANGED:
        result = Py_NewRef(text_obj);
        break;
    case PLAN_FALLBACK:
        result = Py_NewRef(Py_None);
        break;
    default:
        result = PyBytes_FromStringAndSize(
            NULL, strip_write(t, n, &keep, fields, count, body, NULL));
        if (result != NULL)
            strip_write(t, n, &keep, fields, count, body,
                        (unsigned char *)PyBytes_AS_STRING(result));
    }
done:
    PyMem_Free(fields);
    PyBuffer_Release(&keep);
    PyBuffer_Release(&known);
    return result;
}

/* letters(): str.split's ASCII white space (\t \n \v \f \r, \x1c-\x1f, space), and every
 * byte lower-cased with each non-letter a space (wordhash.LOWER_LETTERS). */
static unsigned char white[256], lower_letter[256];
/* letters_into: '@' (e-mails), ':' and 'w'/'W' (URLs), as each flag asks */
static unsigned char may_none[256], may_email[256], may_url[256], may_both[256];

static inline unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* The loop of letters(): s[0:n] to o[0:n], which may be s itself (each byte is read before
 * it is written, and a word is blanked only once it has been read). */
static void letters_into(const unsigned char *s, unsigned char *o, Py_ssize_t n, int emails,
                         int urls) {
    /* the bytes that may start a pattern (one test per byte in the usual case) */
    const unsigned char *may = emails ? (urls ? may_both : may_email) : (urls ? may_url : may_none);
    Py_ssize_t i = 0;
    while (i < n) {
        if (white[s[i]]) {
            o[i++] = SPACE;
            continue;
        }
        Py_ssize_t start = i;
        int marked = 0;
        for (; i < n && !white[s[i]]; i++) {
            unsigned char c = s[i];
            /* a pattern's bytes are not white space: a match lies within this word */
            if (may[c] && ((emails && c == '@')
                || (urls && c == ':' && i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/')
                || (urls && lower(c) == 'w' && i + 3 < n && lower(s[i + 1]) == 'w'
                    && lower(s[i + 2]) == 'w' && s[i + 3] == '.')))
                marked = 1;
            o[i] = lower_letter[c];
        }
        if (marked) memset(o + start, SPACE, (size_t)(i - start));
    }
}

PyDoc_STRVAR(letters_doc,
"letters(raw, emails, urls) -> bytes\n\n"
"wordhash.letters: ``raw`` lower-cased, every white-space-delimited word holding '@'\n"
"(``emails``) or '://' or 'www.' in any case (``urls``) blanked, every byte but a letter a\n"
"space. Same length as ``raw``.");

static PyObject *letters(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer raw;
    int emails, urls;
    if (!PyArg_ParseTuple(args, "y*pp", &raw, &emails, &urls)) return NULL;
    PyObject *result = PyBytes_FromStringAndSize(NULL, raw.len);
    if (result == NULL) {
        PyBuffer_Release(&raw);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    letters_into(raw.buf, (unsigned char *)PyBytes_AS_STRING(result), raw.len, emails, urls);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&raw);
    return result;
}

PyDoc_STRVAR(prepare_group_doc,
"prepare_group(texts, first, keep, known, strip, emails, urls, out, starts)\n"
"    -> (next, docs, used, stop)\n\n"
"TextFeatures.pairs' grouping, for the ASCII posts of the list ``texts`` from index ``first``:\n"
"each post's Cleaner.headed (strip_headers when ``strip``, else the post as it is) through\n"
"letters(emails, urls), written to ``out`` (a writable byte buffer: the group's size) one after\n"
"the other with a space between, each one's offset to ``starts`` (int64). Stops before\n"
"texts[next]: stop 0 at the list's end, 1 when the group is full (the next post does not fit\n"
"in ``out`` or ``starts``), 2 when texts[next] is for the Python path (not an exact ASCII\n"
"str, a header block strip_headers leaves to serving/headers.py, or longer than ``out``).\n"
"``docs`` posts were written, ``used`` bytes: wordhash.letters(b' '.join(headed posts)).");

static PyObject *prepare_group(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *texts;
    Py_ssize_t first;
    Py_buffer keep, known, out, starts;
    int strip, emails, urls;
    if (!PyArg_ParseTuple(args, "O!ny*y*pppw*w*", &PyList_Type, &texts, &first, &keep, &known,
                          &strip, &emails, &urls, &out, &starts))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t *fields = NULL, i = first, docs = 0, used = 0, size = 0;
    Py_ssize_t limit = out.len, room = starts.len / 8, n_texts = PyList_GET_SIZE(texts);
    int stop = 0;
    if (starts.itemsize != 8 || first < 0) {
        PyErr_SetString(PyExc_ValueError, "prepare_group: starts is int64, first >= 0");
        goto done;
    }
    fields = PyMem_Malloc(sizeof(Py_ssize_t) * 3 * MAX_FIELDS);
    if (fields == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    unsigned char *o = out.buf;
    int64_t *at_out = starts.buf;
    for (; i < n_texts; i++) {
        PyObject *item = PyList_GET_ITEM(texts, i);
        if (!PyUnicode_CheckExact(item)) {
            stop = 2;
            break;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(item) < 0) goto done;
#endif
        if (!PyUnicode_IS_ASCII(item)) {
            stop = 2;
            break;
        }
        const unsigned char *t = PyUnicode_DATA(item);
        Py_ssize_t n = PyUnicode_GET_LENGTH(item), count = 0, body = 0, length = n;
        int plan = strip ? strip_plan(t, n, &known, fields, &count, &body) : PLAN_UNCHANGED;
        if (plan == PLAN_FALLBACK) {
            stop = 2;
            break;
        }
        if (plan == PLAN_STRIPPED) length = strip_write(t, n, &keep, fields, count, body, NULL);
        if (length > limit) {
            stop = 2;
            break;
        }
        if (docs == room || (docs > 0 && size + length > limit)) {
            stop = 1;
            break;
        }
        Py_ssize_t at = docs > 0 ? used + 1 : 0;
        if (docs > 0) o[used] = SPACE;
        if (plan == PLAN_STRIPPED)
            strip_write(t, n, &keep, fields, count, body, o + at);
        else
            memcpy(o + at, t, (size_t)n);
        letters_into(o + at, o + at, length, emails, urls);
        at_out[docs++] = at;
        used = at + length;
        size += length + 1;
    }
    result = Py_BuildValue("nnni", i, docs, used, stop);
done:
    PyMem_Free(fields);
    PyBuffer_Release(&keep);
    PyBuffer_Release(&known);
    PyBuffer_Release(&out);
    PyBuffer_Release(&starts);
    return result;
}

/* The float16 value of the bits h, exactly, as a float (float32 holds every float16); the
 * module fills HALF with it at import, so weighted_sum converts with one load from a table of
 * 256 KB (~2x faster than this function's branches). */
static float HALF[65536];

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    union { uint32_t u; float f; } bits;
    if (exponent == 0x1f) { /* infinity, NaN */
        bits.u = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent == 0) { /* zero, subnormal: mantissa * 2**-24 */
        float value = (float)mantissa * (1.0f / 16777216.0f);
        return sign ? -value : value;
    } else {
        bits.u = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    return bits.f;
}

PyDoc_STRVAR(weighted_sum_doc,
"weighted_sum(indptr, indices, data, weights, n_classes, out)\n\n"
"classifier.sparse_times for float16 weights: ``out`` (float64, rows x n_classes, zeroed)\n"
"+= the CSR matrix (``indptr`` int64, ``indices`` int32, ``data`` float64) times ``weights``\n"
"(float16 as uint16 bits, features x n_classes, C order). Each row's stored values are taken\n"
"in order and each product added to the row's sums, as scipy's CSR-times-dense loop does, in\n"
"float64: the same numbers, bit for bit, without a float64 copy of the gathered rows.");

static PyObject *weighted_sum(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer indptr, indices, data, weights, out;
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nw*", &indptr, &indices, &data, &weights, &n_classes,
                          &out))
        return NULL;
    Py_ssize_t n_rows = indptr.len / 8 - 1, nnz = indices.len / 4, n_features = 0;
    if (indptr.itemsize != 8 || indices.itemsize != 4 || data.itemsize != 8
        || weights.itemsize != 2 || out.itemsize != 8 || n_classes < 1 || n_rows < 0
        || data.len / 8 != nnz || weights.len / 2 % n_classes != 0
        || out.len / 8 != n_rows * n_classes) {
        PyErr_SetString(PyExc_ValueError, "weighted_sum: arrays of the wrong type or size");
        goto done;
    }
    n_features = weights.len / 2 / n_classes;
    const int64_t *ptr = indptr.buf;
    const int32_t *col = indices.buf;
    if (ptr[0] != 0 || ptr[n_rows] != nnz) {
        PyErr_SetString(PyExc_ValueError, "weighted_sum: indptr does not fit the indices");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_rows; i++)
        if (ptr[i + 1] < ptr[i]) {
            PyErr_SetString(PyExc_ValueError, "weighted_sum: indptr falls");
            goto done;
        }
    for (Py_ssize_t j = 0; j < nnz; j++)
        if (col[j] < 0 || col[j] >= n_features) {
            PyErr_SetString(PyExc_ValueError, "weighted_sum: a feature outside the weights");
            goto done;
        }
    const double *value = data.buf;
    const uint16_t *w = weights.buf;
    double *sums = out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        double *row = sums + i * n_classes;
        for (int64_t j = ptr[i]; j < ptr[i + 1]; j++) {
            if (j + 8 < nnz) __builtin_prefetch(w + (Py_ssize_t)col[j + 8] * n_classes);
            const uint16_t *feature = w + (Py_ssize_t)col[j] * n_classes;
            double a = value[j];
            for (Py_ssize_t c = 0; c < n_classes; c++)
                row[c] += a * (double)HALF[feature[c]];
        }
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&indptr);
    PyBuffer_Release(&indices);
    PyBuffer_Release(&data);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&out);
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

PyDoc_STRVAR(naive_bayes_one_doc,
"naive_bayes_one(indices, counts, idf, binary, sublinear, norm, weights, n_classes, prior,\n"
"                proba, order)\n\n"
"One document from its sorted unique features (``indices`` int32) and their ``counts``\n"
"(float64, overwritten with the TF-IDF weights) to class probabilities: what\n"
"TermVectorizer.weight_row, weighted_sum, ``+ prior``, classifier.probabilities and best_k do\n"
"with ~20 numpy calls, in one. ``idf``: float64 per feature, or empty for none; ``norm``: 0\n"
"none, 1 l1, 2 l2; ``weights``: float16 as uint16 bits, features x n_classes; ``prior``\n"
"float64 per class. Writes ``proba`` (float64 per class) and ``order`` (int64 per class:\n"
"classes by falling probability, ties in class order, np.argsort(-proba, kind='stable')).\n"
"The same operations in the same order as the numpy path except three: libm's log and exp\n"
"(numpy may use its own SIMD versions) and plain left-to-right sums for the norm and the\n"
"softmax (numpy: BLAS's dot, pairwise sums), so results agree to the last bit or two.");

static PyObject *naive_bayes_one(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer indices, counts, idf, weights, prior, proba, order;
    int binary, sublinear, norm;
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "y*w*y*ppiy*ny*w*w*", &indices, &counts, &idf, &binary,
                          &sublinear, &norm, &weights, &n_classes, &prior, &proba, &order))
        return NULL;
    Py_ssize_t n = indices.len / 4, n_features = 0;
    if (indices.itemsize != 4 || counts.itemsize != 8 || counts.len / 8 != n
        || (idf.len && idf.itemsize != 8) || weights.itemsize != 2 || n_classes < 1
        || weights.len / 2 % n_classes != 0 || prior.itemsize != 8
        || prior.len / 8 != n_classes || proba.itemsize != 8 || proba.len / 8 != n_classes
        || order.itemsize != 8 || order.len / 8 != n_classes || norm < 0 || norm > 2) {
        PyErr_SetString(PyExc_ValueError, "naive_bayes_one: arrays of the wrong type or size");
        goto done;
    }
    n_features = weights.len / 2 / n_classes;
    if (idf.len && idf.len / 8 != n_features) {
        PyErr_SetString(PyExc_ValueError, "naive_bayes_one: idf does not fit the weights");
        goto done;
    }
    const int32_t *col = indices.buf;
    for (Py_ssize_t j = 0; j < n; j++)
        if (col[j] < 0 || col[j] >= n_features) {
            PyErr_SetString(PyExc_ValueError, "naive_bayes_one: a feature outside the weights");
            goto done;
        }
    double *x = counts.buf, *p = proba.buf;
    const double *inv = idf.len ? idf.buf : NULL, *base = prior.buf;
    const uint16_t *w = weights.buf;
    int64_t *rank = order.buf;
    for (Py_ssize_t j = 0; j < n; j++) {  /* weight_row */
        double v = binary ? 1.0 : x[j];
        if (sublinear) v = log(v) + 1.0;
        if (inv) v *= inv[col[j]];
        x[j] = v;
    }
    if (norm && n) {
        double scale = 0.0;
        for (Py_ssize_t j = 0; j < n; j++) scale += norm == 2 ? x[j] * x[j] : fabs(x[j]);
        if (norm == 2) scale = sqrt(scale);
        if (scale != 0.0)
            for (Py_ssize_t j = 0; j < n; j++) x[j] /= scale;
    }
    for (Py_ssize_t c = 0; c < n_classes; c++) p[c] = 0.0;
    for (Py_ssize_t j = 0; j < n; j++) {  /* weighted_sum's loop, one row */
        if (j + 8 < n) __builtin_prefetch(w + (Py_ssize_t)col[j + 8] * n_classes);
        const uint16_t *feature = w + (Py_ssize_t)col[j] * n_classes;
        for (Py_ssize_t c = 0; c < n_classes; c++) p[c] += x[j] * (double)HALF[feature[c]];
    }
    double top = -INFINITY, total = 0.0;
    for (Py_ssize_t c = 0; c < n_classes; c++) {
        p[c] += base[c];
        if (p[c] > top || isnan(p[c])) top = isnan(top) ? top : p[c];
    }
    for (Py_ssize_t c = 0; c < n_classes; c++) {
        p[c] = exp(p[c] - top);
        total += p[c];
    }
    for (Py_ssize_t c = 0; c < n_classes; c++) p[c] /= total;
    for (Py_ssize_t c = 0; c < n_classes; c++) {  /* insertion sort: stable, by -p */
        Py_ssize_t i = c;
        while (i > 0 && -p[rank[i - 1]] > -p[c]) {
            rank[i] = rank[i - 1];
            i--;
        }
        rank[i] = c;
    }
done:
    PyBuffer_Release(&indices);
    PyBuffer_Release(&counts);
    PyBuffer_Release(&idf);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&prior);
    PyBuffer_Release(&proba);
    PyBuffer_Release(&order);
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef methods[] = {
    {"letters", letters, METH_VARARGS, letters_doc},
    {"features", features, METH_VARARGS, features_doc},
    {"runs", runs, METH_VARARGS, runs_doc},
    {"pair_runs", pair_runs, METH_VARARGS, pair_runs_doc},
    {"strip_headers", strip_headers, METH_VARARGS, strip_headers_doc},
    {"prepare_group", prepare_group, METH_VARARGS, prepare_group_doc},
    {"word_ids", word_ids, METH_VARARGS, word_ids_doc},
    {"lookup", lookup, METH_VARARGS, lookup_doc},
    {"weighted_sum", weighted_sum, METH_VARARGS, weighted_sum_doc},
    {"naive_bayes_one", naive_bayes_one, METH_VARARGS, naive_bayes_one_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "serving._wordscan",
    "serving.wordhash's letters and word scanner, serving.hashtable's lookup and the naive "
    "Bayes product of serving.classifier, in C.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wordscan(void) {
    for (int c = 0; c < 256; c++) {
        white[c] = (c >= 9 && c <= 13) || (c >= 28 && c <= 32);
        lower_letter[c] = (c >= 'a' && c <= 'z') ? c : (c >= 'A' && c <= 'Z') ? c + 32 : SPACE;
        may_email[c] = c == '@';
        may_url[c] = c == ':' || c == 'w' || c == 'W';
        may_both[c] = may_email[c] || may_url[c];
    }
    for (int h = 0; h < 65536; h++) HALF[h] = half_to_float((uint16_t)h);
    return PyModule_Create(&module);
}
