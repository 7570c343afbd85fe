/* Tree object indexing in C: the optional accelerator behind odb.objects.tree.Tree's index. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/*
 * The canonical mode of one of the five spellings git writes, or 0 for anything else (an odd
 * mode: the Python path canonicalises it).
 */
static unsigned
common_mode(const uint8_t *d, size_t n)
{
    if (n == 5 && memcmp(d, "40000", 5) == 0)
        return 0040000;
    if (n != 6)
        return 0;
    if (memcmp(d, "100644", 6) == 0)
        return 0100644;
    if (memcmp(d, "100755", 6) == 0)
        return 0100755;
    if (memcmp(d, "120000", 6) == 0)
        return 0120000;
    if (memcmp(d, "160000", 6) == 0)
        return 0160000;
    return 0;
}

/* Whether a name starting with "." is one git refuses: ".", "..", or ".git" in any case. */
static int
bad_dot_name(const uint8_t *d, size_t n)
{
    if (n == 1 || (n == 2 && d[1] == '.'))
        return 1;
    return n == 4 && (d[1] | 0x20) == 'g' && (d[2] | 0x20) == 'i' && (d[3] | 0x20) == 't';
}

/* git's base_name_compare: a subtree sorts as if its name ended in "/". */
static int
key_compare(const uint8_t *a, size_t an, int atree, const uint8_t *b, size_t bn, int btree)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    unsigned ca = an > n ? a[n] : (atree ? '/' : 0);
    unsigned cb = bn > n ? b[n] : (btree ? '/' : 0);
    return (int)ca - (int)cb;
}

/*
 * index(data, raw_len) -> (spaces, nuls, modes, ordered) or None.
 *
 * spaces and nuls are bytes of native uint32s (the offsets of each entry's space and NUL), modes
 * of uint16s. None means "let the Python path do it": a framing error (it raises the precise
 * CorruptObject), an odd mode, or a name that must be left out (empty, with "/", ".", "..",
 * ".git", or a repeat), all rare, or a tree of 4 GiB or more.
 */
static PyObject *
tree_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer buf;
    Py_ssize_t raw_len;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "index(data, raw_len)");
        return NULL;
    }
    raw_len = PyLong_AsSsize_t(args[1]);
    if (raw_len == -1 && PyErr_Occurred())
        return NULL;
    if (raw_len <= 0) {
        PyErr_SetString(PyExc_ValueError, "raw_len must be positive");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *d = buf.buf;
    size_t end = (size_t)buf.len, pos = 0, count = 0, cap = 0;
    PyObject *spaces_obj = NULL, *nuls_obj = NULL, *modes_obj = NULL;
    uint32_t *spaces, *nuls;
    uint16_t *modes;
    PyObject *result = NULL;
    int ordered = 1, fallback = 0;
    const uint8_t *prev = NULL;
    size_t prev_n = 0;
    int prev_tree = 0;

    if (end >= ((size_t)1 << 32)) {
        fallback = 1;
        goto done;
    }
    /* An entry takes at least "40000 x\0" and an id: the count is at most this. The arrays are
       written in place in bytes objects, shrunk to size at the end (no copy of the index). */
    cap = end / (8 + (size_t)raw_len) + 1;
    spaces_obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(cap * sizeof *spaces));
    nuls_obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(cap * sizeof *nuls));
    modes_obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(cap * sizeof *modes));
    if (!spaces_obj || !nuls_obj || !modes_obj)
        goto done;
    spaces = (uint32_t *)PyBytes_AS_STRING(spaces_obj);
    nuls = (uint32_t *)PyBytes_AS_STRING(nuls_obj);
    modes = (uint16_t *)PyBytes_AS_STRING(modes_obj);
    while (pos < end) {
        const uint8_t *sp = memchr(d + pos, ' ', end - pos);
        if (!sp) {
            fallback = 1;
            break;
        }
        size_t space = (size_t)(sp - d);
        unsigned mode = common_mode(d + pos, space - pos);
        const uint8_t *nl = memchr(sp + 1, 0, end - space - 1);
        if (!mode || !nl) {
            fallback = 1;
            break;
        }
        size_t nul = (size_t)(nl - d);
        if (nul + 1 + (size_t)raw_len > end) {
            fallback = 1;
            break;
        }
        const uint8_t *name = sp + 1;
        size_t n = nul - space - 1;
        if (n == 0 || memchr(name, '/', n) || (name[0] == '.' && bad_dot_name(name, n))
            || (prev && n == prev_n && memcmp(name, prev, n) == 0)) {
            fallback = 1;
            break;
        }
        int tree = mode == 0040000;
        if (prev && key_compare(name, n, tree, prev, prev_n, prev_tree) <= 0)
            ordered = 0;
        if (count == cap) {  /* cannot happen with the guess above; kept for safety */
            fallback = 1;
            break;
        }
        spaces[count] = (uint32_t)space;
        nuls[count] = (uint32_t)nul;
        modes[count] = (uint16_t)mode;
        count++;
        prev = name;
        prev_n = n;
        prev_tree = tree;
        pos = nul + 1 + (size_t)raw_len;
    }
    if (!fallback) {
        if (_PyBytes_Resize(&spaces_obj, (Py_ssize_t)(count * sizeof *spaces)) < 0
            || _PyBytes_Resize(&nuls_obj, (Py_ssize_t)(count * sizeof *nuls)) < 0
            || _PyBytes_Resize(&modes_obj, (Py_ssize_t)(count * sizeof *modes)) < 0)
            goto done;
        result = PyTuple_Pack(4, spaces_obj, nuls_obj, modes_obj, ordered ? Py_True : Py_False);
    }
done:
    Py_XDECREF(spaces_obj);
    Py_XDECREF(nuls_obj);
    Py_XDECREF(modes_obj);
    PyBuffer_Release(&buf);
    if (fallback && !PyErr_Occurred())
        Py_RETURN_NONE;
    return result;
}

/*
 * ids(data, nuls, start, stop, raw_len) -> bytes: the raw ids after nuls[start:stop] (a uint32
 * array's buffer), one after the other. Every offset is checked against data.
 */
static PyObject *
tree_ids(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, offsets;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "ids(data, nuls, start, stop, raw_len)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[2]), stop = PyLong_AsSsize_t(args[3]);
    Py_ssize_t raw_len = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &offsets, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t count = offsets.len / (Py_ssize_t)sizeof(uint32_t);
    if (start < 0 || stop < start || stop > count || raw_len <= 0) {
        PyErr_SetString(PyExc_ValueError, "ids: range out of bounds");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, (stop - start) * raw_len);
    if (!out)
        goto done;
    uint8_t *w = (uint8_t *)PyBytes_AS_STRING(out);
    const uint32_t *nuls = offsets.buf;
    for (Py_ssize_t k = start; k < stop; k++) {
        size_t at = (size_t)nuls[k] + 1;
        if (at + (size_t)raw_len > (size_t)data.len) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_ValueError, "ids: offset past the tree");
            goto done;
        }
        memcpy(w, (const uint8_t *)data.buf + at, (size_t)raw_len);
        w += raw_len;
    }
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef methods[] = {
    {"index", (PyCFunction)(void (*)(void))tree_index, METH_FASTCALL,
     "index(data, raw_len) -> (spaces, nuls, modes, ordered) or None\n\n"
     "Offsets and modes of a well-formed tree's entries; None: use the Python path."},
    {"ids", (PyCFunction)(void (*)(void))tree_ids, METH_FASTCALL,
     "ids(data, nuls, start, stop, raw_len) -> bytes\n\n"
     "The raw ids of entries start..stop, one after the other."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "odb._tree",
    "Tree object indexing in C (optional accelerator of odb.objects.tree).",
    0,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__tree(void)
{
    return PyModule_Create(&module);
}
