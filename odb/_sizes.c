/* Object sizes in bulk, in C: the optional accelerator behind odb/pack/sizes.py. */

/*
 * Three loops that odb runs once per object when a listing asks for sizes (find -size, ls -l):
 * finding ids in a sorted id table, decoding the index entries found, and reading each entry's
 * header (and a delta's first inflated bytes). Each mirrors the Python code it replaces, check
 * for check; anything that code would refuse, and anything unusual, comes back as "not
 * answered" (-1 or UNSURE), and the caller asks the careful Python path for that object.
 * Every length and offset read from a file is checked before it is used.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "index_entries.h"

/* odb/pack/sizes.py: MISSING and UNSURE. */
#define MISSING (-1)
#define UNSURE (-2)

/* Bounds on the limits odb/pack/sizes.py passes in, so that the buffers below can live on the stack. */
#define MAX_HEADER_READ 4096
#define MAX_PREFIX_READ 8192
#define MAX_DELTA_HEADER 64
#define MAX_RAW_LEN 64

/* A buffer of n aligned int64 items (an array('q')), or a ValueError. */
static int
check_int64s(const Py_buffer *b, Py_ssize_t n, const char *what)
{
    if (b->len != n * (Py_ssize_t)sizeof(int64_t) || (uintptr_t)b->buf % sizeof(int64_t)) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zd aligned int64 items", what, n);
        return -1;
    }
    return 0;
}

/* ---- positions: SortedIds.find for many ids ----------------------------------------------- */

/* bisect.bisect_left over the second id bytes of a bucket: the same steps, so that a table that
   is not sorted (damage) gives the same range Python's sub-fanout does. */
static uint64_t
bisect_second(const uint8_t *second, Py_ssize_t stride, uint64_t n, unsigned x)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = (lo + hi) >> 1;
        if (second[mid * (uint64_t)stride] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static PyObject *
positions(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer table, fanout, ids, out;
    Py_ssize_t start, stride, raw_len, sub_min;
    if (!PyArg_ParseTuple(args, "y*nnny*ny*w*", &table, &start, &stride, &raw_len, &fanout, &sub_min,
                          &ids, &out))
        return NULL;
    PyObject *result = NULL;
    uint32_t fan[256];
    if (raw_len < 2 || raw_len > MAX_RAW_LEN || stride < raw_len || start < 0 || sub_min < 0
        || fanout.len != 256 * (Py_ssize_t)sizeof(uint32_t) || ids.len % raw_len) {
        PyErr_SetString(PyExc_ValueError, "bad id table layout");
        goto done;
    }
    memcpy(fan, fanout.buf, sizeof(fan));
    uint64_t prev = 0;
    for (int b = 0; b < 256; b++) {
        if (fan[b] < prev) {
            PyErr_SetString(PyExc_ValueError, "fanout decreases");
            goto done;
        }
        prev = fan[b];
    }
    /* The fanout's count of ids must fit the buffer: no position read below lies outside it. */
    if (start > table.len || prev > (uint64_t)(table.len - start) / (uint64_t)stride) {
        PyErr_SetString(PyExc_ValueError, "id table runs past its buffer");
        goto done;
    }
    Py_ssize_t count = ids.len / raw_len;
    if (check_int64s(&out, count, "out") < 0)
        goto done;

    const uint8_t *base = (const uint8_t *)table.buf + start;
    const uint8_t *want = (const uint8_t *)ids.buf;
    int64_t *pos = (int64_t *)out.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count; k++, want += raw_len) {
        unsigned b = want[0];
        uint64_t lo = b ? fan[b - 1] : 0, hi = fan[b];
        if (hi - lo > (uint64_t)sub_min) {
            /* SortedIds._subfanout: the range of ids whose second byte is want[1]. */
            const uint8_t *second = base + lo * (uint64_t)stride + 1;
            uint64_t n = hi - lo;
            uint64_t first = lo + bisect_second(second, stride, n, want[1]);
            hi = want[1] == 255 ? hi : lo + bisect_second(second, stride, n, want[1] + 1u);
            lo = first;
        }
        /* The first id equal to want, as SortedIds.find's buf.find on id boundaries gives it. */
        int64_t found = MISSING;
        for (uint64_t q = lo; q < hi; q++) {
            if (memcmp(base + q * (uint64_t)stride, want, (size_t)raw_len) == 0) {
                found = (int64_t)q;
                break;
            }
        }
        pos[k] = found;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&table);
    PyBuffer_Release(&fanout);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&out);
    return result;
}

/* ---- entries: the pack and offset of each position ----------------------------------------- */

static PyObject *
entries(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer table, in, packs_out, offsets_out;
    Py_ssize_t base, stride, n_packs, large_at, n_large;
    int with_pack;
    if (!PyArg_ParseTuple(args, "y*y*nnpnnnw*w*", &table, &in, &base, &stride, &with_pack, &n_packs,
                          &large_at, &n_large, &packs_out, &offsets_out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t width = with_pack ? 8 : 4;
    Py_ssize_t count = in.len / (Py_ssize_t)sizeof(int64_t);
    if (check_int64s(&in, count, "positions") < 0)
        goto done;
    if (base < 0 || stride < width || large_at < 0 || n_large < -1) {
        PyErr_SetString(PyExc_ValueError, "bad entry table layout");
        goto done;
    }
    if (check_int64s(&packs_out, count, "packs") < 0 || check_int64s(&offsets_out, count, "offsets") < 0)
        goto done;
    if (n_large > 0 && (large_at > table.len || n_large > (table.len - large_at) / 8)) {
        PyErr_SetString(PyExc_ValueError, "large offset table runs past its buffer");
        goto done;
    }
    const uint8_t *buf = (const uint8_t *)table.buf;
    const int64_t *pos = (const int64_t *)in.buf;
    int64_t *pack = (int64_t *)packs_out.buf, *offset = (int64_t *)offsets_out.buf;
    for (Py_ssize_t k = 0; k < count; k++) {
        pack[k] = MISSING;
        offset[k] = 0;
        if (pos[k] < 0)
            continue;
        uint64_t at = (uint64_t)base + (uint64_t)pos[k] * (uint64_t)stride;
        if ((uint64_t)pos[k] > (uint64_t)(PY_SSIZE_T_MAX / stride) || at + (uint64_t)width > (uint64_t)table.len) {
            PyErr_SetString(PyExc_ValueError, "entry position past its table");
            goto done;
        }
        uint32_t id;
        uint64_t off;
        pack[k] = UNSURE;
        if (!index_entry(buf, at, with_pack, (uint64_t)large_at, n_large, &id, &off))
            continue;
        if (id >= (uint64_t)n_packs || off > INT64_MAX)
            continue;
        pack[k] = id;
        offset[k] = (int64_t)off;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&table);
    PyBuffer_Release(&in);
    PyBuffer_Release(&packs_out);
    PyBuffer_Release(&offsets_out);
    return result;
}

/* ---- entry_sizes: Pack.header, then for deltas inflate_prefix and read_sizes -------------------- */

/* The limits of odb's Python path (odb/pack/packfile.py, odb/pack/entry.py, odb/objects/delta_chain.py,
 * odb/objects/delta.py), passed in. */
struct limits {
    Py_ssize_t raw_len, header_read, prefix_read, delta_header, varint_bytes;
    uint64_t inflate_ratio, delta_expansion, max_result;
};

/* What one pack's entries are read from: the whole small file, or a descriptor (pread). */
struct source {
    PyObject *data;  /* a bytes object holding the whole file, or NULL */
    const uint8_t *buf;
    int64_t len;
    int fd;
    int64_t end;     /* where the entries end: the trailer starts */
    int usable;
};

/* Pack.read_at: up to n bytes at pos, never past the end of the data; -1 on a read error. */
static Py_ssize_t
read_at(const struct source *s, int64_t pos, uint8_t *out, Py_ssize_t n)
{
    if (pos < 0 || pos >= s->end)
        return 0;
    if (n > s->end - pos)
        n = (Py_ssize_t)(s->end - pos);
    if (s->data) {
        if (pos >= s->len)
            return 0;
        if (n > s->len - pos)
            n = (Py_ssize_t)(s->len - pos);
        memcpy(out, s->buf + pos, (size_t)n);
        return n;
    }
    for (;;) {
        ssize_t got = pread(s->fd, out, (size_t)n, (off_t)pos);
        if (got >= 0)
            return (Py_ssize_t)got;
        if (errno != EINTR)
            return -1;
    }
}

/* Python's Decompress.decompress(data, max_length): one inflate call with Z_SYNC_FLUSH. */
static int
inflate_more(z_stream *z, const uint8_t *in, Py_ssize_t n_in, uint8_t *out, Py_ssize_t *have,
             Py_ssize_t want, int *eof, int *tail)
{
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n_in;
    z->next_out = out + *have;
    z->avail_out = (uInt)(want - *have);
    int rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
        return -1;
    *have = want - (Py_ssize_t)z->avail_out;
    *eof = rc == Z_STREAM_END;
    *tail = !*eof && z->avail_in > 0;
    return 0;
}

/* delta.read_sizes for one varint; -1 where it raises DeltaError. */
static int
varint(const uint8_t *d, Py_ssize_t n, Py_ssize_t *i, Py_ssize_t max_bytes, uint64_t *value)
{
    if (*i >= n)
        return -1;
    unsigned c = d[(*i)++];
    uint64_t v = c & 0x7f;
    Py_ssize_t shift = 7;
    while (c & 0x80) {
        if (shift == 7 * max_bytes || *i >= n)
            return -1;
        c = d[(*i)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        shift += 7;
    }
    *value = v;
    return 0;
}

/* size > room * ratio + 64, as Python's unbounded ints compute it. */
static int
claims_too_much(uint64_t size, uint64_t room, uint64_t ratio)
{
    if (ratio && room > (UINT64_MAX - 64) / ratio)
        return 0;
    return size > room * ratio + 64;
}

/* The result size of the delta whose zlib stream starts `skip` bytes into head (Pack.inflate_prefix
   and ChainReader's delta_result_size); -1 where Python raises. */
static int64_t
delta_size(const struct source *s, int64_t offset, const uint8_t *head, Py_ssize_t limit, Py_ssize_t skip,
           uint64_t entry_size, const struct limits *L, z_stream *z, int *z_ready)
{
    if (!*z_ready) {
        memset(z, 0, sizeof(*z));
        if (inflateInit2(z, MAX_WBITS) != Z_OK)
            return -1;
        *z_ready = 1;
    }
    else if (inflateReset(z) != Z_OK)
        return -1;
    uint8_t out[MAX_DELTA_HEADER];
    uint8_t more[MAX_PREFIX_READ];
    Py_ssize_t have = 0, want = L->delta_header;
    int eof = 0, tail = 0;
    if (limit > skip && inflate_more(z, head + skip, limit - skip, out, &have, want, &eof, &tail) < 0)
        return -1;
    int64_t pos = offset + (limit > skip ? limit : skip);
    while (have < want && !eof && !tail && pos < s->end) {
        Py_ssize_t got = read_at(s, pos, more, L->prefix_read);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        if (inflate_more(z, more, got, out, &have, want, &eof, &tail) < 0)
            return -1;
        pos += got;
    }
    Py_ssize_t i = 0;
    uint64_t base_size, result;
    if (varint(out, have, &i, L->varint_bytes, &base_size) < 0 || varint(out, have, &i, L->varint_bytes, &result) < 0)
        return -1;
    if (!(L->delta_expansion && entry_size > UINT64_MAX / L->delta_expansion)
        && result > entry_size * L->delta_expansion)
        return -1;
    if (result > L->max_result || result > INT64_MAX)
        return -1;
    return (int64_t)result;
}

/* odb.objects.delta_chain.packed_size for one entry: its object's size, or -1 where Python raises. */
static int64_t
entry_size(const struct source *s, int64_t offset, const struct limits *L, z_stream *z, int *z_ready)
{
    uint8_t head[MAX_HEADER_READ];
    if (offset < 12 || offset >= s->end)
        return -1;
    Py_ssize_t limit = read_at(s, offset, head, L->header_read);
    if (limit <= 0)
        return -1;
    /* odb/pack/entry.py parse_entry. */
    unsigned c = head[0];
    Py_ssize_t pos = 1;
    unsigned kind = (c >> 4) & 7;
    uint64_t size = c & 15;
    unsigned shift = 4;
    while (c & 0x80) {
        if (pos >= limit || shift > 63)
            return -1;
        c = head[pos++];
        uint64_t bits = c & 0x7f;
        if (shift > 57 && bits >> (64 - shift))
            return -1;  /* more than 64 bits: far beyond what any file can hold, refused below */
        size |= bits << shift;
        shift += 7;
    }
    if (claims_too_much(size, (uint64_t)(s->end - offset - pos), L->inflate_ratio))
        return -1;
    Py_ssize_t skip;
    if (kind == 6) {
        if (pos >= limit)
            return -1;
        c = head[pos++];
        uint64_t distance = c & 0x7f;
        while (c & 0x80) {
            if (pos >= limit || distance > ((uint64_t)1 << 56))
                return -1;
            c = head[pos++];
            distance = ((distance + 1) << 7) | (c & 0x7f);
        }
        /* The base lies at offset - distance, after the pack header and before this entry. */
        if (distance == 0 || distance > (uint64_t)(offset - 12))
            return -1;
        skip = pos;
    }
    else if (kind == 7) {
        if (pos + L->raw_len > limit)
            return -1;
        skip = pos + L->raw_len;
    }
    else if (kind == 0 || kind == 5) {
        return -1;
    }
    else {
        return size > INT64_MAX ? -1 : (int64_t)size;
    }
    return delta_size(s, offset, head, limit, skip, size, L, z, z_ready);
}

static int
read_limits(PyObject *t, struct limits *L)
{
    long long v[8];
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 8) {
        PyErr_SetString(PyExc_TypeError, "limits must be a tuple of 8 ints");
        return -1;
    }
    for (int k = 0; k < 8; k++) {
        v[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, k));
        if (v[k] == -1 && PyErr_Occurred())
            return -1;
        if (v[k] < 0) {
            PyErr_SetString(PyExc_ValueError, "limits must not be negative");
            return -1;
        }
    }
    L->raw_len = (Py_ssize_t)v[0];
    L->header_read = (Py_ssize_t)v[1];
    L->prefix_read = (Py_ssize_t)v[2];
    L->delta_header = (Py_ssize_t)v[3];
    L->varint_bytes = (Py_ssize_t)v[4];
    L->inflate_ratio = (uint64_t)v[5];
    L->delta_expansion = (uint64_t)v[6];
    L->max_result = (uint64_t)v[7];
    if (L->raw_len < 1 || L->raw_len > MAX_RAW_LEN || L->header_read < 1 || L->header_read > MAX_HEADER_READ
        || L->prefix_read < 1 || L->prefix_read > MAX_PREFIX_READ || L->delta_header < 1
        || L->delta_header > MAX_DELTA_HEADER
        || L->varint_bytes < 1 || L->varint_bytes > 9) {
        PyErr_SetString(PyExc_ValueError, "limits out of the range this accelerator supports");
        return -1;
    }
    return 0;
}

/* sources[j]: None, or (bytes of the whole file, end of data), or (descriptor, end of data). */
static int
read_source(PyObject *item, struct source *s)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    if (item == Py_None)
        return 0;
    PyObject *what, *end;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_SetString(PyExc_TypeError, "a source is None or a (bytes or descriptor, end) tuple");
        return -1;
    }
    what = PyTuple_GET_ITEM(item, 0);
    end = PyTuple_GET_ITEM(item, 1);
    s->end = PyLong_AsLongLong(end);
    if (s->end == -1 && PyErr_Occurred())
        return -1;
    if (PyBytes_Check(what)) {
        Py_INCREF(what);
        s->data = what;
        s->buf = (const uint8_t *)PyBytes_AS_STRING(what);
        s->len = PyBytes_GET_SIZE(what);
    }
    else {
        long fd = PyLong_AsLong(what);
        if (fd == -1 && PyErr_Occurred())
            return -1;
        if (fd < 0 || fd > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "bad descriptor");
            return -1;
        }
        s->fd = (int)fd;
    }
    s->usable = 1;
    return 0;
}

static PyObject *
entry_sizes(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *list, *limits_tuple;
    Py_buffer packs_in, offsets_in, out;
    if (!PyArg_ParseTuple(args, "O!y*y*w*O", &PyList_Type, &list, &packs_in, &offsets_in, &out, &limits_tuple))
        return NULL;
    PyObject *result = NULL;
    struct source *sources = NULL;
    Py_ssize_t n_sources = PyList_GET_SIZE(list), ready = 0;
    struct limits L;
    Py_ssize_t count = packs_in.len / (Py_ssize_t)sizeof(int64_t);
    if (read_limits(limits_tuple, &L) < 0)
        goto done;
    if (check_int64s(&packs_in, count, "packs") < 0 || check_int64s(&offsets_in, count, "offsets") < 0
        || check_int64s(&out, count, "out") < 0)
        goto done;
    sources = PyMem_Calloc(n_sources ? (size_t)n_sources : 1, sizeof(*sources));
    if (sources == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; ready < n_sources; ready++) {
        if (read_source(PyList_GET_ITEM(list, ready), &sources[ready]) < 0)
            goto done;
    }
    const int64_t *pack = (const int64_t *)packs_in.buf, *offset = (const int64_t *)offsets_in.buf;
    int64_t *size = (int64_t *)out.buf;
    z_stream z;
    int z_ready = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count; k++) {
        int64_t j = pack[k];
        size[k] = -1;
        if (j >= 0 && j < n_sources && sources[j].usable)
            size[k] = entry_size(&sources[j], offset[k], &L, &z, &z_ready);
    }
    if (z_ready)
        inflateEnd(&z);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    for (Py_ssize_t j = 0; j < ready; j++)
        Py_XDECREF(sources[j].data);
    PyMem_Free(sources);
    PyBuffer_Release(&packs_in);
    PyBuffer_Release(&offsets_in);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"positions", positions, METH_VARARGS,
     "positions(table, start, stride, raw_len, fanout, sub_min, ids, out) -> None\n\n"
     "out[k] = the position of the k-th id of ids in the sorted id table (SortedIds.find), or -1."},
    {"entries", entries, METH_VARARGS,
     "entries(table, positions, base, stride, with_pack, n_packs, large_at, n_large, packs, offsets) -> None\n\n"
     "The pack id and offset of each position's index entry; -1 (missing) for position -1, -2 for a broken entry."},
    {"entry_sizes", entry_sizes, METH_VARARGS,
     "entry_sizes(sources, packs, offsets, out, limits) -> None\n\n"
     "out[k] = the object size of the entry at offsets[k] of sources[packs[k]], or -1 if not answered."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "odb._sizes",
    "Object sizes in bulk, in C (optional accelerator of odb.pack.sizes).",
    0,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__sizes(void)
{
    return PyModule_Create(&module);
}
