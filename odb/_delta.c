/* Git delta application in C: the optional accelerator behind odb.delta.apply_delta. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Same limit as odb/delta.py: 9 varint bytes already reach 2**63. */
#define MAX_VARINT_BYTES 9

/* Below this many bytes of work, dropping and retaking the GIL costs more than it frees. */
#define GIL_RELEASE_BYTES (64 * 1024)

enum failure_kind {
    OK = 0,
    TRUNCATED_COPY,
    TRUNCATED_INSERT,
    OPCODE_ZERO,
    COPY_PAST_BASE,
    PAST_RESULT,
    RESULT_SHORT,
};

/* What went wrong, recorded without the GIL and turned into a message once it is held again. */
struct failure {
    enum failure_kind kind;
    uint64_t a, b, c;
};

/* Reads one size varint; returns 0, or -1 truncated, or -2 longer than MAX_VARINT_BYTES. */
static int
read_varint(const uint8_t *d, size_t n, size_t *pos, uint64_t *value)
{
    uint64_t v = 0;
    size_t i = *pos;
    for (int k = 0; k < MAX_VARINT_BYTES; k++) {
        if (i >= n)
            return -1;
        uint8_t byte = d[i++];
        v |= (uint64_t)(byte & 0x7f) << (7 * k);
        if (!(byte & 0x80)) {
            *pos = i;
            *value = v;
            return 0;
        }
    }
    return -2;
}

/*
 * Runs the instructions from d[i]. With out == NULL it only checks them, so that nothing is
 * allocated for a delta that lies about its result size; with out it also copies. Both runs
 * check every bound, because a bytearray or mmap passed in may change between them.
 */
static enum failure_kind
run(const uint8_t *base, uint64_t blen, const uint8_t *d, size_t n, size_t i,
    uint8_t *out, uint64_t rs, struct failure *f)
{
    uint64_t w = 0;

#define NEXT(v)                          \
    do {                                 \
        if (i >= n)                      \
            goto truncated_copy;         \
        (v) = d[i++];                    \
    } while (0)

    while (i < n) {
        unsigned c = d[i++];
        if (c & 0x80) {
            uint64_t off = 0, size = 0, byte;
            if (c & 0x01) { NEXT(byte); off = byte; }
            if (c & 0x02) { NEXT(byte); off |= byte << 8; }
            if (c & 0x04) { NEXT(byte); off |= byte << 16; }
            if (c & 0x08) { NEXT(byte); off |= byte << 24; }
            if (c & 0x10) { NEXT(byte); size = byte; }
            if (c & 0x20) { NEXT(byte); size |= byte << 8; }
            if (c & 0x40) { NEXT(byte); size |= byte << 16; }
            if (size == 0)
                size = 0x10000;
            /* off < 2**32 and size < 2**24: the sum cannot overflow. */
            if (off + size > blen) {
                f->a = size; f->b = off; f->c = blen;
                return f->kind = COPY_PAST_BASE;
            }
            if (size > rs - w) {
                f->a = rs;
                return f->kind = PAST_RESULT;
            }
            if (out)
                memcpy(out + w, base + off, (size_t)size);
            w += size;
        }
        else if (c) {
            if (c > n - i)
                return f->kind = TRUNCATED_INSERT;
            if (c > rs - w) {
                f->a = rs;
                return f->kind = PAST_RESULT;
            }
            if (out)
                memcpy(out + w, d + i, c);
            i += c;
            w += c;
        }
        else {
            f->a = i - 1;
            return f->kind = OPCODE_ZERO;
        }
    }
#undef NEXT
    if (w != rs) {
        f->a = w; f->b = rs;
        return f->kind = RESULT_SHORT;
    }
    return f->kind = OK;

truncated_copy:
    return f->kind = TRUNCATED_COPY;
}

/* The messages match odb/delta.py's pure-Python implementation. */
static void
raise_failure(const struct failure *f)
{
    switch (f->kind) {
    case TRUNCATED_COPY:
        PyErr_SetString(PyExc_ValueError, "delta truncated inside a copy instruction");
        break;
    case TRUNCATED_INSERT:
        PyErr_SetString(PyExc_ValueError, "delta truncated inside an insert instruction");
        break;
    case OPCODE_ZERO:
        PyErr_Format(PyExc_ValueError, "delta opcode 0x00 at delta offset %llu",
                     (unsigned long long)f->a);
        break;
    case COPY_PAST_BASE:
        PyErr_Format(PyExc_ValueError,
                     "delta copies %llu bytes at base offset %llu, past the base end (%llu)",
                     (unsigned long long)f->a, (unsigned long long)f->b,
                     (unsigned long long)f->c);
        break;
    case PAST_RESULT:
        PyErr_Format(PyExc_ValueError, "delta writes past its result size %llu",
                     (unsigned long long)f->a);
        break;
    case RESULT_SHORT:
        PyErr_Format(PyExc_ValueError, "delta produced %llu bytes but declares %llu",
                     (unsigned long long)f->a, (unsigned long long)f->b);
        break;
    case OK:
        break;
    }
}

static int
raise_varint(int rc, const char *what)
{
    if (rc == -1)
        PyErr_Format(PyExc_ValueError, "delta truncated in its %s size", what);
    else
        PyErr_Format(PyExc_ValueError, "delta %s size is longer than %d bytes", what,
                     MAX_VARINT_BYTES);
    return -1;
}

static PyObject *
apply(const uint8_t *base, size_t blen, const uint8_t *d, size_t n)
{
    size_t pos = 0;
    uint64_t bs, rs;
    int rc;
    if ((rc = read_varint(d, n, &pos, &bs)) != 0) {
        raise_varint(rc, "base");
        return NULL;
    }
    if ((rc = read_varint(d, n, &pos, &rs)) != 0) {
        raise_varint(rc, "result");
        return NULL;
    }
    if (bs != (uint64_t)blen) {
        PyErr_Format(PyExc_ValueError,
                     "delta expects a base of %llu bytes, the base has %llu",
                     (unsigned long long)bs, (unsigned long long)blen);
        return NULL;
    }

    if (rs > (uint64_t)PY_SSIZE_T_MAX) {
        /* Only reachable where Py_ssize_t is 32 bits: no bytes object can be that long. */
        PyErr_Format(PyExc_ValueError, "delta result size %llu is too large",
                     (unsigned long long)rs);
        return NULL;
    }

    struct failure f = {OK, 0, 0, 0};
    int release = rs >= GIL_RELEASE_BYTES || n >= GIL_RELEASE_BYTES;
    PyThreadState *ts = release ? PyEval_SaveThread() : NULL;
    run(base, blen, d, n, pos, NULL, rs, &f);
    if (release)
        PyEval_RestoreThread(ts);
    if (f.kind != OK) {
        raise_failure(&f);
        return NULL;
    }

    /* The instructions really produce rs bytes: allocating it is not a header's bluff. */
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)rs);
    if (result == NULL)
        return NULL;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    if (release)
        ts = PyEval_SaveThread();
    run(base, blen, d, n, pos, out, rs, &f);
    if (release)
        PyEval_RestoreThread(ts);
    if (f.kind != OK) {
        Py_DECREF(result);
        raise_failure(&f);
        return NULL;
    }
    return result;
}

static PyObject *
apply_delta(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "apply_delta() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    /* Holding both buffers keeps a bytearray from resizing and an mmap from closing. */
    Py_buffer bb, db;
    if (PyObject_GetBuffer(args[0], &bb, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &db, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&bb);
        return NULL;
    }
    PyObject *result = apply((const uint8_t *)bb.buf, (size_t)bb.len,
                             (const uint8_t *)db.buf, (size_t)db.len);
    PyBuffer_Release(&db);
    PyBuffer_Release(&bb);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_delta", (PyCFunction)(void (*)(void))apply_delta, METH_FASTCALL,
     "apply_delta(base, delta) -> bytes\n\n"
     "Rebuild an object from its base and git delta data; ValueError on bad data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "odb._delta",
    "Git delta application in C (optional accelerator of odb.delta).",
    0,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__delta(void)
{
    return PyModule_Create(&module);
}
