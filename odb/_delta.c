/* Git delta application in C: the optional accelerator behind odb.objects.delta.apply_delta. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Same limit as odb/objects/delta.py: 9 varint bytes already reach 2**63. */
#define MAX_VARINT_BYTES 9

/* Below this many bytes of work, dropping and retaking the GIL costs more than it frees. */
#define GIL_RELEASE_BYTES (64 * 1024)

#include "delta_apply.h"

static PyObject *
raise_failure(const struct failure *f)
{
    char msg[200];
    describe_failure(f, msg, sizeof(msg));
    PyErr_SetString(PyExc_ValueError, msg);
    return NULL;
}

static int
raise_varint(int rc, const char *what)
{
    char msg[100];
    describe_varint(rc, what, MAX_VARINT_BYTES, msg, sizeof(msg));
    PyErr_SetString(PyExc_ValueError, msg);
    return -1;
}

static PyObject *
apply(const uint8_t *base, size_t blen, const uint8_t *d, size_t n)
{
    size_t pos = 0;
    uint64_t bs, rs;
    int rc;
    if ((rc = read_varint(d, n, &pos, &bs, MAX_VARINT_BYTES)) != 0) {
        raise_varint(rc, "base");
        return NULL;
    }
    if ((rc = read_varint(d, n, &pos, &rs, MAX_VARINT_BYTES)) != 0) {
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
    "Git delta application in C (optional accelerator of odb.objects.delta).",
    0,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__delta(void)
{
    return PyModule_Create(&module);
}
