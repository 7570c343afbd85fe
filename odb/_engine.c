/* The object engine in C: pack entries read, inflated and rebuilt through their delta chains without the GIL. */

/*
 * The optional accelerator behind odb.objects.delta_chain.ChainReader.read. One call takes a pack's
 * bytes (its mapping) and an entry offset, and does all of the work of a read with the GIL
 * released: entry headers, the walk down an OFS_DELTA chain (an explicit stack, never
 * recursion), inflation (libdeflate when it was there at build time: one shot, the exact size
 * the header gives; else zlib) and delta application, with a delta-base cache that every thread
 * shares, bounded in bytes. A REF_DELTA's base is found by id, which only Python can do: the
 * call comes back with "need the base of the entry at R" and Python calls again with it.
 *
 * Every check mirrors odb/pack/entry.py, odb/pack/packfile.py, odb/objects/delta.py and
 * odb/objects/delta_chain.py, in the same order and with the same messages (zlib's own wording aside),
 * on limits Python passes at every call: a damaged entry comes back as (offset, reason), which Python
 * raises as CorruptObject.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>  /* pread: headers read without touching the mapping */

#include <zlib.h>  /* a delta's first bytes (headers), and inflation without libdeflate */
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#define INFLATER "libdeflate"
#else
#define INFLATER "zlib"
#endif

#include "delta_apply.h"
#include "engine_api.h"

#define OFS_DELTA 6
#define REF_DELTA 7
#define MAX_ENTRY_HEADER 48 /* odb/pack/entry.py */
/* odb/tuning.py HEADER_READ: one pread holds an entry header and, for most deltas, the start of
 * its zlib stream up to the two size varints. */
#define HEADER_READ 128
#define WINDOW_SHIFT 16     /* odb/pack/residency.py: pages are counted per 64 KiB window */
#define MAX_RAW_LEN 64
/* Above this result size the instructions are checked before the result is allocated, so that a
   delta lying about its size makes nothing big; below it a lie costs one small allocation. */
#define CHECK_FIRST_ABOVE (1 << 20)
#define MSG_LEN 256
#define MAX_DELTA_HEADER 64  /* bound on DELTA_HEADER_BYTES, so the prefix lives on the stack */

/* ---- objects: reference-counted buffers, shared by the cache and the reads using them ------- */

/* Python's raw allocator works without the GIL, and tracemalloc sees it: the memory tests hold
   this code to the same bounds as the Python path. */
#define ALLOC PyMem_RawMalloc
#define REALLOC PyMem_RawRealloc
#define FREE PyMem_RawFree

typedef struct obj {
    struct obj *hnext;        /* hash chain */
    struct obj *prev, *next;  /* LRU list, oldest first */
    uint64_t key, offset;     /* the pack (a number Python gives each Pack) and the entry */
    size_t size;
    size_t refs;              /* atomic */
    int kind;
    int in_table;
    uint8_t data[];
} obj;

static obj *
obj_new(size_t size)
{
    obj *o = ALLOC(sizeof(obj) + (size ? size : 1));
    if (o == NULL)
        return NULL;
    memset(o, 0, sizeof(obj));
    o->size = size;
    o->refs = 1;
    return o;
}

static void
obj_ref(obj *o)
{
    __atomic_add_fetch(&o->refs, 1, __ATOMIC_RELAXED);
}

static void
obj_release(obj *o)
{
    if (o != NULL && __atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) == 0)
        FREE(o);
}

/* ---- the delta-base cache ------------------------------------------------------------------- */

/* What the engine's shared tables (Cache, Kinds) begin with: one lock, and their entries' count. */
#define SHARED_TABLE_HEAD \
    PyObject_HEAD \
    pthread_mutex_t lock; \
    size_t count;

typedef struct {
    SHARED_TABLE_HEAD
} SharedTable;

static Py_ssize_t
SharedTable_len(PyObject *self)
{
    SharedTable *t = (SharedTable *)self;
    pthread_mutex_lock(&t->lock);
    Py_ssize_t n = (Py_ssize_t)t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* The home slot of (pack key, offset) in a table of n slots, n a power of two. */
static size_t
home_slot(size_t n, uint64_t key, uint64_t offset)
{
    uint64_t h = (key * 0x9E3779B97F4A7C15ull) ^ (offset * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h ^ (h >> 29)) & (n - 1);
}

typedef struct {
    SHARED_TABLE_HEAD
    obj **buckets;
    size_t nbuckets;  /* a power of two */
    obj lru;          /* sentinel: lru.next is the oldest, lru.prev the newest */
    uint64_t limit, used;
} Cache;

static size_t
slot(const Cache *c, uint64_t key, uint64_t offset)
{
    return home_slot(c->nbuckets, key, offset);
}

static void
lru_unlink(obj *o)
{
    o->prev->next = o->next;
    o->next->prev = o->prev;
}

static void
lru_append(Cache *c, obj *o)
{
    o->prev = c->lru.prev;
    o->next = &c->lru;
    c->lru.prev->next = o;
    c->lru.prev = o;
}

/* Takes o out of the table and the list (lock held) and drops the table's reference. */
static void
cache_remove(Cache *c, obj *o)
{
    obj **p = &c->buckets[slot(c, o->key, o->offset)];
    while (*p != o)
        p = &(*p)->hnext;
    *p = o->hnext;
    lru_unlink(o);
    c->count--;
    c->used -= o->size;
    o->in_table = 0;
    obj_release(o);
}

/* The object cached for (key, offset), with a reference for the caller, or NULL. */
static obj *
cache_get(Cache *c, uint64_t key, uint64_t offset)
{
    pthread_mutex_lock(&c->lock);
    obj *o = c->buckets[slot(c, key, offset)];
    while (o != NULL && !(o->key == key && o->offset == offset))
        o = o->hnext;
    if (o != NULL) {
        lru_unlink(o);
        lru_append(c, o);
        obj_ref(o);
    }
    pthread_mutex_unlock(&c->lock);
    return o;
}

static void
cache_grow(Cache *c)
{
    size_t n = c->nbuckets * 2;
    obj **b = PyMem_RawCalloc(n, sizeof(obj *));
    if (b == NULL)
        return;  /* longer chains, still correct */
    obj **old = c->buckets;
    size_t oldn = c->nbuckets;
    c->buckets = b;
    c->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        obj *o = old[i];
        while (o != NULL) {
            obj *next = o->hnext;
            size_t s = slot(c, o->key, o->offset);
            o->hnext = b[s];
            b[s] = o;
            o = next;
        }
    }
    FREE(old);
}

/* Keeps o (key, offset and kind set) as odb.cache.ByteLRU.put would: nothing over a quarter of
   the limit, the oldest evicted past it, an older copy of the same entry replaced. */
static void
cache_put(Cache *c, obj *o)
{
    pthread_mutex_lock(&c->lock);
    if (o->size > c->limit >> 2 || o->in_table) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    obj *old = c->buckets[slot(c, o->key, o->offset)];
    while (old != NULL && !(old->key == o->key && old->offset == o->offset))
        old = old->hnext;
    if (old != NULL)
        cache_remove(c, old);
    if (c->count >= c->nbuckets)
        cache_grow(c);
    size_t s = slot(c, o->key, o->offset);
    o->hnext = c->buckets[s];
    c->buckets[s] = o;
    lru_append(c, o);
    o->in_table = 1;
    obj_ref(o);
    c->count++;
    c->used += o->size;
    while (c->used > c->limit)
        cache_remove(c, c->lru.next);
    pthread_mutex_unlock(&c->lock);
}

static void
cache_clear_locked(Cache *c)
{
    while (c->lru.next != &c->lru)
        cache_remove(c, c->lru.next);
}

/* The one argument of Cache() and Kinds(): limit. */
static int
parse_limit(PyObject *args, PyObject *kwds, unsigned long long *limit)
{
    static char *names[] = {"limit", NULL};
    return PyArg_ParseTupleAndKeywords(args, kwds, "K", names, limit) ? 0 : -1;
}

static int
Cache_init(Cache *self, PyObject *args, PyObject *kwds)
{
    unsigned long long limit;
    if (parse_limit(args, kwds, &limit) < 0)
        return -1;
    if (self->buckets == NULL) {
        self->buckets = PyMem_RawCalloc(1024, sizeof(obj *));
        if (self->buckets == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->nbuckets = 1024;
        self->lru.next = self->lru.prev = &self->lru;
        pthread_mutex_init(&self->lock, NULL);
    }
    self->limit = limit;
    return 0;
}

static void
Cache_dealloc(Cache *self)
{
    if (self->buckets != NULL) {
        pthread_mutex_lock(&self->lock);
        cache_clear_locked(self);
        pthread_mutex_unlock(&self->lock);
        FREE(self->buckets);
        pthread_mutex_destroy(&self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Cache_clear(Cache *self, PyObject *unused)
{
    (void)unused;
    pthread_mutex_lock(&self->lock);
    cache_clear_locked(self);
    pthread_mutex_unlock(&self->lock);
    Py_RETURN_NONE;
}

static PyObject *
Cache_get_used(Cache *self, void *unused)
{
    (void)unused;
    pthread_mutex_lock(&self->lock);
    uint64_t used = self->used;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLongLong(used);
}

static PyObject *
Cache_get_limit(Cache *self, void *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLongLong(self->limit);
}

static PyMethodDef Cache_methods[] = {
    {"clear", (PyCFunction)Cache_clear, METH_NOARGS, "Drops every cached object."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Cache_getset[] = {
    {"used", (getter)Cache_get_used, NULL, "bytes held", NULL},
    {"limit", (getter)Cache_get_limit, NULL, "the bound in bytes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* len() of Cache and Kinds: how many entries they hold. */
static PySequenceMethods SharedTable_as_sequence = {.sq_length = SharedTable_len};

static PyTypeObject CacheType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "odb._engine.Cache",
    .tp_basicsize = sizeof(Cache),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Cache(limit): rebuilt delta bases, shared by every thread, bounded in bytes (LRU).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Cache_init,
    .tp_dealloc = (destructor)Cache_dealloc,
    .tp_methods = Cache_methods,
    .tp_getset = Cache_getset,
    .tp_as_sequence = &SharedTable_as_sequence,
};

/* ---- the kinds memo: the whole object's type of entries already walked ---------------------- */

/*
 * ChainReader.kind's memo in C (pack.kinds in the Python path): the type at the bottom of the
 * chain of every entry a successful header walk passed, by pack key and offset, so that a walk
 * over many objects stops at the first entry some earlier walk typed, where it would otherwise
 * pread every header down to the base (most chains share their lower entries). Only walks that
 * end in a base fill it, from the headers they parsed: an entry's type is a fact of the pack's
 * immutable bytes. Bounded as the Python memo is: past `limit` entries it starts again. One
 * mutex: header walks run without the GIL, on any thread.
 */
typedef struct {
    SHARED_TABLE_HEAD
    struct kind_slot {
        uint64_t key;
        uint64_t at;  /* offset << 3 | type; 0: empty (no entry lies at offset 0) */
    } *slots;
    size_t nslots;  /* a power of two, or 0 */
    size_t limit;
} Kinds;

/* The type memoized for the entry, or -1. */
static int
kinds_get(Kinds *m, uint64_t key, uint64_t offset)
{
    int kind = -1;
    pthread_mutex_lock(&m->lock);
    if (m->nslots) {
        for (size_t i = home_slot(m->nslots, key, offset);; i = (i + 1) & (m->nslots - 1)) {
            struct kind_slot *k = &m->slots[i];
            if (k->at == 0)
                break;
            if (k->key == key && k->at >> 3 == offset) {
                kind = (int)(k->at & 7);
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    return kind;
}

static void
kinds_insert_locked(Kinds *m, uint64_t key, uint64_t at)
{
    for (size_t i = home_slot(m->nslots, key, at >> 3);; i = (i + 1) & (m->nslots - 1)) {
        struct kind_slot *k = &m->slots[i];
        if (k->at == 0) {
            k->key = key;
            k->at = at;
            m->count++;
            return;
        }
        if (k->key == key && k->at >> 3 == at >> 3)
            return;
    }
}

/* Room for one more entry at half load at most: grown, or emptied past the limit (0: no room). */
static int
kinds_room_locked(Kinds *m)
{
    if (m->count >= m->limit) {
        memset(m->slots, 0, m->nslots * sizeof(*m->slots));
        m->count = 0;
    }
    if (m->nslots && 2 * (m->count + 1) <= m->nslots)
        return 1;
    size_t grown = m->nslots ? 2 * m->nslots : 1024;
    struct kind_slot *old = m->slots, *slots = PyMem_RawCalloc(grown, sizeof(*slots));
    if (slots == NULL)
        return 0;  /* only slower: the walks go on without memoizing */
    size_t had = m->nslots;
    m->slots = slots;
    m->nslots = grown;
    m->count = 0;
    for (size_t i = 0; i < had; i++)
        if (old[i].at != 0)
            kinds_insert_locked(m, old[i].key, old[i].at);
    FREE(old);
    return 1;
}

static void
kinds_put(Kinds *m, uint64_t key, const uint64_t *offsets, size_t n, int kind)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n && kinds_room_locked(m); i++)
        kinds_insert_locked(m, key, offsets[i] << 3 | (uint64_t)kind);
    pthread_mutex_unlock(&m->lock);
}

static int
Kinds_init(Kinds *self, PyObject *args, PyObject *kwds)
{
    unsigned long long limit;
    if (parse_limit(args, kwds, &limit) < 0)
        return -1;
    if (!self->nslots && self->slots == NULL && self->limit == 0)
        pthread_mutex_init(&self->lock, NULL);
    self->limit = limit ? (size_t)limit : 1;
    return 0;
}

static void
Kinds_dealloc(Kinds *self)
{
    if (self->limit) {
        FREE(self->slots);
        pthread_mutex_destroy(&self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Kinds_get(Kinds *self, PyObject *args)
{
    unsigned long long key, offset;
    if (!PyArg_ParseTuple(args, "KK", &key, &offset))
        return NULL;
    int kind = kinds_get(self, key, offset);
    if (kind < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(kind);
}

static PyObject *
Kinds_put(Kinds *self, PyObject *args)
{
    unsigned long long key, offset;
    int kind;
    if (!PyArg_ParseTuple(args, "KKi", &key, &offset, &kind))
        return NULL;
    if (offset == 0 || offset >> 60 || kind < 1 || kind > 7) {
        PyErr_SetString(PyExc_ValueError, "no entry lies at offset 0, and a type is 1..7");
        return NULL;
    }
    uint64_t at = offset;
    kinds_put(self, key, &at, 1, kind);
    Py_RETURN_NONE;
}

static PyMethodDef Kinds_methods[] = {
    {"get", (PyCFunction)Kinds_get, METH_VARARGS, "get(pack_key, offset) -> the type memoized, or None."},
    {"put", (PyCFunction)Kinds_put, METH_VARARGS, "put(pack_key, offset, type): what a walk found."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KindsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "odb._engine.Kinds",
    .tp_basicsize = sizeof(Kinds),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Kinds(limit): the whole object's type of entries header walks passed, by pack key and\n"
              "offset, shared by every thread; emptied past limit entries.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Kinds_init,
    .tp_dealloc = (destructor)Kinds_dealloc,
    .tp_methods = Kinds_methods,
    .tp_as_sequence = &SharedTable_as_sequence,
};

/* ---- one pack's bytes, and the limits of odb's Python code --------------------------------- */

struct limits {
    uint64_t inflate_ratio;  /* odb.pack.entry.MAX_INFLATE_RATIO */
    uint64_t max_depth;      /* odb.objects.delta_chain.MAX_DEPTH */
    uint64_t max_result;     /* odb.objects.delta_chain.MAX_DELTA_RESULT */
    int max_varint;          /* odb.objects.delta.MAX_VARINT_BYTES */
    int raw_len;             /* the id length of REF_DELTA entries */
    int header_bytes;        /* odb.objects.delta_chain.DELTA_HEADER_BYTES */
    uint64_t expansion;      /* odb.objects.delta_chain.MAX_DELTA_EXPANSION */
};

struct src {
    const uint8_t *buf;
    uint64_t end;            /* where the entries end (the trailer starts) */
    uint8_t *windows;        /* Pack._windows: one byte per 64 KiB window touched, or NULL */
    uint64_t nwindows;
    uint64_t touched;        /* windows newly marked */
    int fd;                  /* the pack's descriptor, for headers read with pread; -1: none */
    struct limits L;
};

struct entry {
    uint64_t offset;
    int type;
    uint64_t size;
    uint64_t data_offset;
    uint64_t base_offset;
    const uint8_t *base_id;
};

struct err {
    uint64_t offset;
    int nomem;
    char msg[MSG_LEN];
};

static int
fail(struct err *e, uint64_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    e->offset = offset;
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int
out_of_memory(struct err *e)
{
    e->nomem = 1;
    return -1;
}

/* size > room * ratio + 64, without overflow: Pack's "more than its data can hold". */
static int
claims_too_much(uint64_t size, uint64_t room, uint64_t ratio)
{
    return (unsigned __int128)size > (unsigned __int128)room * ratio + 64;
}

static void
touch(struct src *s, uint64_t start, uint64_t stop)
{
    if (s->windows == NULL || stop <= start)
        return;
    for (uint64_t w = start >> WINDOW_SHIFT; w <= (stop - 1) >> WINDOW_SHIFT && w < s->nwindows; w++) {
        if (!s->windows[w]) {
            s->windows[w] = 1;
            s->touched++;
        }
    }
}

/* odb/pack/entry.py parse_entry, check for check. */
static int
parse_entry_at(const struct src *s, const uint8_t *head, uint64_t offset, struct entry *e, struct err *err)
{
    uint64_t end = s->end;
    uint64_t limit = end - offset < MAX_ENTRY_HEADER ? end - offset : MAX_ENTRY_HEADER;
    unsigned c = head[0];
    uint64_t pos = 1;
    int kind = (c >> 4) & 7;
    uint64_t size = c & 15;
    int shift = 4, huge = 0;
    while (c & 0x80) {
        if (pos >= limit || shift > 63)
            return fail(err, offset, "bad entry header");
        c = head[pos++];
        uint64_t bits = c & 0x7f;
        if (shift >= 64 || (shift > 57 && bits >> (64 - shift)))
            huge = 1;  /* Python's size would not fit 64 bits: no pack can back it */
        if (shift < 64)
            size |= bits << shift;
        shift += 7;
    }
    if (huge || claims_too_much(size, end - offset - pos, s->L.inflate_ratio)) {
        if (huge)
            return fail(err, offset, "entry claims more than 2**64 bytes, more than its data can hold");
        return fail(err, offset, "entry claims %llu bytes, more than its data can hold",
                    (unsigned long long)size);
    }
    e->offset = offset;
    e->type = kind;
    e->size = size;
    e->base_id = NULL;
    if (kind == OFS_DELTA) {
        if (pos >= limit)
            return fail(err, offset, "truncated delta base offset");
        c = head[pos++];
        uint64_t distance = c & 0x7f;
        while (c & 0x80) {
            if (pos >= limit || distance > ((uint64_t)1 << 56))
                return fail(err, offset, "bad delta base offset");
            c = head[pos++];
            distance = ((distance + 1) << 7) | (c & 0x7f);
        }
        int64_t base = (int64_t)offset - (int64_t)distance;
        if (!(base >= 12 && (uint64_t)base < offset))
            return fail(err, offset, "delta base offset %lld out of range", (long long)base);
        e->data_offset = offset + pos;
        e->base_offset = (uint64_t)base;
        return 0;
    }
    if (kind == REF_DELTA) {
        if (pos + (uint64_t)s->L.raw_len > limit)
            return fail(err, offset, "truncated delta base id");
        e->base_id = head + pos;
        e->data_offset = offset + pos + s->L.raw_len;
        return 0;
    }
    if (kind == 0 || kind == 5)
        return fail(err, offset, "invalid entry type %d", kind);
    e->data_offset = offset + pos;
    return 0;
}

static int
parse_entry(const struct src *s, uint64_t offset, struct entry *e, struct err *err)
{
    if (!(offset >= 12 && offset < s->end))
        return fail(err, offset, "entry offset outside the pack");
    return parse_entry_at(s, s->buf + offset, offset, e, err);
}

/*
 * The bytes of the pack from offset, up to HEADER_READ (fewer only where the entries end), read
 * with pread into buf: they map nothing, so a header walk over every object neither faults in
 * nor counts in RSS the pages of the packs (docs/performance.md, "What bounds read_header").
 * How many were read, or -1 when there is no descriptor or the read fell short (the caller then
 * reads the mapping, whose bytes are the same).
 */
static int64_t
read_head(const struct src *s, uint64_t offset, uint8_t *buf)
{
    if (s->fd < 0 || !(offset >= 12 && offset < s->end))
        return -1;
    uint64_t want = s->end - offset < HEADER_READ ? s->end - offset : HEADER_READ;
    ssize_t n;
    do
        n = pread(s->fd, buf, (size_t)want, (off_t)offset);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)want ? (int64_t)n : -1;
}

/* parse_entry from a head read with pread (buf, n bytes from offset): the same checks. */
static int
parse_entry_read(const struct src *s, uint64_t offset, const uint8_t *buf, int64_t n, struct entry *e,
                 struct err *err)
{
    if (n < 0)
        return parse_entry(s, offset, e, err);
    /* n is HEADER_READ, or all that is left before the entries end: at least what the
     * header may take (MAX_ENTRY_HEADER), or the mapping would hold no more either. */
    return parse_entry_at(s, buf, offset, e, err);
}

#ifdef HAVE_LIBDEFLATE
static pthread_key_t decompressor_key;

static void
free_decompressor(void *d)
{
    libdeflate_free_decompressor(d);
}
#endif

/* Pack.inflate: exactly e->size bytes into out, from a zlib stream that must end there. */
static int
inflate_entry(struct src *s, const struct entry *e, uint8_t *out, struct err *err)
{
    uint64_t size = e->size, pos = e->data_offset, end = s->end;
    if (pos > end || claims_too_much(size, end - pos, s->L.inflate_ratio))
        return fail(err, e->offset, "entry claims %llu bytes, more than its data can hold",
                    (unsigned long long)size);
#ifdef HAVE_LIBDEFLATE
    struct libdeflate_decompressor *d = pthread_getspecific(decompressor_key);
    if (d == NULL) {
        d = libdeflate_alloc_decompressor();
        if (d == NULL || pthread_setspecific(decompressor_key, d) != 0) {
            if (d != NULL)
                libdeflate_free_decompressor(d);
            return out_of_memory(err);
        }
    }
    /* The stream's input is everything up to the trailer: libdeflate says how much it used. */
    size_t used = 0;
    enum libdeflate_result r =
        libdeflate_zlib_decompress_ex(d, s->buf + pos, (size_t)(end - pos), out, (size_t)size, &used, NULL);
    if (r == LIBDEFLATE_BAD_DATA) {
        touch(s, e->offset, end < pos + 4096 ? end : pos + 4096);
        return fail(err, e->offset, "bad compressed data: invalid or truncated deflate stream");
    }
    if (r != LIBDEFLATE_SUCCESS)  /* SHORT_OUTPUT, INSUFFICIENT_SPACE */
        return fail(err, e->offset, "entry inflates to the wrong size (header says %llu)",
                    (unsigned long long)size);
    touch(s, e->offset, pos + used);
    return 0;
#else
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit(&z) != Z_OK)
        return out_of_memory(err);
    const uint8_t *in = s->buf + pos;
    uint64_t in_left = end - pos, out_left = size, produced = 0;
    uint8_t *o = out, extra;
    int probing = 0, rc = Z_OK, result = 0;
    for (;;) {
        if (z.avail_in == 0 && in_left) {
            uInt n = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            z.next_in = (Bytef *)in;
            z.avail_in = n;
            in += n;
            in_left -= n;
        }
        if (z.avail_out == 0) {
            if (out_left) {
                uInt n = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
                z.next_out = o;
                z.avail_out = n;
                o += n;
                out_left -= n;
            }
            else if (!probing) {  /* one byte more than the header says: a longer stream is wrong */
                z.next_out = &extra;
                z.avail_out = 1;
                probing = 1;
            }
            else {
                produced = size + 1;
                break;
            }
        }
        uInt before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        produced += before - z.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (rc == Z_BUF_ERROR && z.avail_in == 0 && in_left == 0)
            break;  /* the data ended inside the stream */
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            result = fail(err, e->offset, "bad compressed data: %s", z.msg ? z.msg : "zlib error");
            break;
        }
    }
    uint64_t consumed = (uint64_t)(end - pos) - in_left - z.avail_in;
    inflateEnd(&z);
    touch(s, e->offset, pos + consumed);
    if (result < 0)
        return result;
    if (rc != Z_STREAM_END || produced != size)
        return fail(err, e->offset, "entry inflates to the wrong size (header says %llu)",
                    (unsigned long long)size);
    return 0;
#endif
}

/* ---- a read: the chain walked down, then rebuilt up ----------------------------------------- */

/* The base a REF_DELTA entry at `offset` needs, handed in by Python. */
struct given {
    int present;
    uint64_t offset;
    int kind;
    const uint8_t *data;
    size_t size;
};

/* What Python must find before a read can go on. */
struct need {
    uint64_t offset;  /* the REF_DELTA entry */
    uint8_t id[MAX_RAW_LEN];
    uint64_t depth;   /* deltas walked so far, that one included */
};

enum outcome { READ_OK = 0, READ_NEED = 1, READ_FAILED = -1 };

/*
 * Where the object read is built: straight into a bytes object, for which the GIL is taken for
 * the allocation alone, rather than in a buffer of ours copied afterwards (a tenth of a read).
 */
struct out {
    PyThreadState **ts;  /* the caller's saved thread state, NULL: build in an obj */
    PyObject *bytes;
};

static uint8_t *
out_alloc(struct out *o, uint64_t size)
{
    if (size > (uint64_t)PY_SSIZE_T_MAX)
        return NULL;
    PyEval_RestoreThread(*o->ts);
    o->bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (o->bytes == NULL)
        PyErr_Clear();  /* reported as out of memory once the call returns */
    *o->ts = PyEval_SaveThread();
    return o->bytes != NULL ? (uint8_t *)PyBytes_AS_STRING(o->bytes) : NULL;
}

/*
 * ChainReader._walk and ChainReader.read in one. `depth` deltas were walked before this call
 * (across REF_DELTA bases); `keep` caches the result too (it is the base of such a delta).
 */
static enum outcome
read_object(Cache *cache, struct src *s, uint64_t key, uint64_t offset, uint64_t depth,
            const struct given *given, int keep, struct out *out, obj **result, int *kind_out,
            struct need *need, struct err *err)
{
    struct entry *steps = NULL, e;
    size_t nsteps = 0, cap = 0;
    const uint8_t *base;   /* the object the next delta applies to */
    size_t base_size;
    obj *owner = NULL;     /* what holds base, unless Python's given bytes do */
    int kind;
    uint64_t cur = offset;
    enum outcome outcome = READ_FAILED;

    for (;;) {
        obj *hit = cache_get(cache, key, cur);
        if (hit != NULL) {
            owner = hit;
            kind = hit->kind;
            break;
        }
        if (parse_entry(s, cur, &e, err) < 0)
            goto done;
        if (e.type < OFS_DELTA) {
            if (!nsteps && !keep && out->ts != NULL) {  /* the object itself, not a base */
                uint8_t *dst = out_alloc(out, e.size);
                if (dst == NULL) {
                    out_of_memory(err);
                    goto done;
                }
                if (inflate_entry(s, &e, dst, err) < 0)
                    goto done;
                *result = NULL;
                *kind_out = e.type;
                outcome = READ_OK;
                goto done;
            }
            if (e.size > SIZE_MAX - sizeof(obj) - 1 || (owner = obj_new((size_t)e.size)) == NULL) {
                out_of_memory(err);
                goto done;
            }
            if (inflate_entry(s, &e, owner->data, err) < 0)
                goto done;
            kind = e.type;
            if (nsteps || keep) {
                owner->key = key;
                owner->offset = cur;
                owner->kind = kind;
                cache_put(cache, owner);
            }
            break;
        }
        if (depth + nsteps >= s->L.max_depth) {
            fail(err, cur, "delta chain deeper than %llu", (unsigned long long)s->L.max_depth);
            goto done;
        }
        if (nsteps == cap) {
            size_t n = cap ? cap * 2 : 16;
            struct entry *grown = REALLOC(steps, n * sizeof(*steps));
            if (grown == NULL) {
                out_of_memory(err);
                goto done;
            }
            steps = grown;
            cap = n;
        }
        steps[nsteps++] = e;
        if (e.type == OFS_DELTA) {
            cur = e.base_offset;
            continue;
        }
        if (given->present && given->offset == cur) {
            kind = given->kind;
            break;
        }
        need->offset = cur;
        memcpy(need->id, e.base_id, (size_t)s->L.raw_len);
        need->depth = depth + nsteps;
        outcome = READ_NEED;
        goto done;
    }
    if (owner != NULL) {
        base = owner->data;
        base_size = owner->size;
    }
    else {
        base = given->data;
        base_size = given->size;
    }

    for (size_t k = nsteps; k-- > 0;) {
        const struct entry *st = &steps[k];
        uint8_t *delta = ALLOC(st->size ? (size_t)st->size : 1);
        if (delta == NULL) {
            out_of_memory(err);
            goto done;
        }
        if (inflate_entry(s, st, delta, err) < 0) {
            FREE(delta);
            goto done;
        }
        size_t n = (size_t)st->size, pos = 0;
        uint64_t bs, rs;
        int rc;
        if ((rc = read_varint(delta, n, &pos, &bs, s->L.max_varint)) != 0
            || (rc = read_varint(delta, n, &pos, &rs, s->L.max_varint)) != 0) {
            char what[MSG_LEN - 16];
            describe_varint(rc, pos == 0 ? "base" : "result", s->L.max_varint, what, sizeof(what));
            FREE(delta);
            fail(err, st->offset, "bad delta: %s", what);
            goto done;
        }
        if (rs > s->L.max_result) {
            FREE(delta);
            fail(err, st->offset, "bad delta: delta result of %llu bytes is over the %llu MiB limit",
                 (unsigned long long)rs, (unsigned long long)(s->L.max_result >> 20));
            goto done;
        }
        if (bs != (uint64_t)base_size) {
            FREE(delta);
            fail(err, st->offset, "bad delta: delta expects a base of %llu bytes, the base has %llu",
                 (unsigned long long)bs, (unsigned long long)base_size);
            goto done;
        }
        struct failure f = {OK, 0, 0, 0};
        if (rs > CHECK_FIRST_ABOVE && run(base, base_size, delta, n, pos, NULL, rs, &f) != OK) {
            char what[MSG_LEN - 16];
            describe_failure(&f, what, sizeof(what));
            FREE(delta);
            fail(err, st->offset, "bad delta: %s", what);
            goto done;
        }
        if (k == 0 && !keep && out->ts != NULL) {  /* the object itself, not a base */
            uint8_t *dst = out_alloc(out, rs);
            if (dst == NULL) {
                FREE(delta);
                out_of_memory(err);
                goto done;
            }
            if (run(base, base_size, delta, n, pos, dst, rs, &f) != OK) {
                char what[MSG_LEN - 16];
                describe_failure(&f, what, sizeof(what));
                FREE(delta);
                fail(err, st->offset, "bad delta: %s", what);
                goto done;
            }
            FREE(delta);
            *result = NULL;
            *kind_out = kind;
            outcome = READ_OK;
            goto done;
        }
        obj *made = obj_new((size_t)rs);
        if (made == NULL) {
            FREE(delta);
            out_of_memory(err);
            goto done;
        }
        if (run(base, base_size, delta, n, pos, made->data, rs, &f) != OK) {
            char what[MSG_LEN - 16];
            describe_failure(&f, what, sizeof(what));
            FREE(delta);
            obj_release(made);
            fail(err, st->offset, "bad delta: %s", what);
            goto done;
        }
        FREE(delta);
        obj_release(owner);
        owner = made;
        base = made->data;
        base_size = made->size;
        if (k || keep) {  /* intermediate results are bases of what follows; keep them */
            made->key = key;
            made->offset = st->offset;
            made->kind = kind;
            cache_put(cache, made);
        }
    }
    *result = owner;
    *kind_out = kind;
    owner = NULL;
    outcome = READ_OK;
done:
    obj_release(owner);
    FREE(steps);
    return outcome;
}

/* ---- headers: type and size without inflating more than a delta's first bytes ------------- */

/*
 * Up to n bytes inflated from the zlib stream at in (in_left bytes there), of the entry at
 * entry_offset. *consumed: the input used; *starved: the input ran out before n bytes or the
 * stream's end (only possible when in holds less than the rest of the pack).
 */
static int
inflate_prefix_from(const uint8_t *in, uint64_t in_left, uint64_t entry_offset, uint8_t *out, int n, int *got,
                    uint64_t *consumed, int *starved, struct err *err)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit(&z) != Z_OK)
        return out_of_memory(err);
    const uint8_t *start = in;
    *starved = 0;
    z.next_out = out;
    z.avail_out = (uInt)n;
    int rc = Z_OK, result = 0;
    while (z.avail_out > 0) {
        if (z.avail_in == 0) {
            if (!in_left)
                break;
            uInt k = in_left > (1u << 20) ? (1u << 20) : (uInt)in_left;
            z.next_in = (Bytef *)in;
            z.avail_in = k;
            in += k;
            in_left -= k;
        }
        rc = inflate(&z, Z_SYNC_FLUSH);
        if (rc == Z_STREAM_END)
            break;
        if (rc == Z_BUF_ERROR)
            continue;  /* wants more input, given on the next turn if there is any */
        if (rc != Z_OK) {
            result = fail(err, entry_offset, "bad compressed data: %s", z.msg ? z.msg : "zlib error");
            break;
        }
    }
    *starved = result == 0 && rc != Z_STREAM_END && z.avail_out > 0 && z.avail_in == 0 && !in_left;
    *consumed = (uint64_t)(in - start) - z.avail_in;
    *got = n - (int)z.avail_out;
    inflateEnd(&z);
    return result;
}

/* Pack.inflate_prefix: up to n bytes of the entry's data, inflated from its start (the mapping). */
static int
inflate_prefix(struct src *s, const struct entry *e, uint8_t *out, int n, int *got, struct err *err)
{
    uint64_t pos = e->data_offset, end = s->end, consumed = 0;
    int starved;
    int result = inflate_prefix_from(s->buf + pos, pos < end ? end - pos : 0, e->offset, out, n, got,
                                     &consumed, &starved, err);
    touch(s, e->offset, pos + consumed);
    return result;
}

/* delta_chain.delta_result_size, check for check. head: the n bytes read with pread at the
 * entry (n < 0: none); the mapping is read only when the delta's first bytes are not all there. */
static int
result_size(struct src *s, const struct entry *e, const uint8_t *head, int64_t n, uint64_t *rs, struct err *err)
{
    uint8_t prefix[MAX_DELTA_HEADER];
    int got = 0, starved = 1;
    uint64_t at = e->data_offset - e->offset, consumed;
    if (n >= 0 && (uint64_t)n >= at
        && inflate_prefix_from(head + at, (uint64_t)n - at, e->offset, prefix, s->L.header_bytes, &got,
                               &consumed, &starved, err) < 0)
        return -1;
    if (starved && inflate_prefix(s, e, prefix, s->L.header_bytes, &got, err) < 0)
        return -1;
    size_t pos = 0;
    uint64_t bs;
    int rc;
    if ((rc = read_varint(prefix, (size_t)got, &pos, &bs, s->L.max_varint)) != 0
        || (rc = read_varint(prefix, (size_t)got, &pos, rs, s->L.max_varint)) != 0) {
        char what[MSG_LEN - 24];
        describe_varint(rc, pos == 0 ? "base" : "result", s->L.max_varint, what, sizeof(what));
        return fail(err, e->offset, "bad delta header: %s", what);
    }
    if ((unsigned __int128)*rs > (unsigned __int128)e->size * s->L.expansion)
        return fail(err, e->offset, "delta claims a %llu-byte result, more than its %llu bytes can make",
                    (unsigned long long)*rs, (unsigned long long)e->size);
    if (*rs > s->L.max_result)
        return fail(err, e->offset, "delta result of %llu bytes is over the %llu MiB limit",
                    (unsigned long long)*rs, (unsigned long long)(s->L.max_result >> 20));
    return 0;
}

/*
 * ChainReader.header for a packed object: the whole object's type, by walking the bases' headers
 * (ChainReader.kind), then the size (a delta's from its first bytes). READ_NEED when the walk
 * meets a REF_DELTA: Python types those chains.
 */
/* Offsets of a walk memoized at most (a longer chain memoizes its first MEMO_PATH entries). */
#define MEMO_PATH 64

static enum outcome
header_of(struct src *s, uint64_t offset, Kinds *memo, uint64_t key, int *kind, uint64_t *size,
          struct err *err)
{
    struct entry top, e;
    uint8_t head[HEADER_READ], base_head[HEADER_READ];
    int64_t n = read_head(s, offset, head);
    if (parse_entry_read(s, offset, head, n, &top, err) < 0)
        return READ_FAILED;
    if (top.type < OFS_DELTA) {
        *kind = top.type;
        *size = top.size;
        return READ_OK;
    }
    /* As ChainReader.kind: the depth counts the entries walked until one is typed. */
    uint64_t path[MEMO_PATH];
    size_t np = 0;
    int known = memo != NULL ? kinds_get(memo, key, offset) : -1;
    e = top;
    uint64_t walked = 0;
    while (known < 0) {
        walked++;
        if (np < MEMO_PATH)
            path[np++] = e.offset;
        if (e.type < OFS_DELTA) {
            known = e.type;
            break;
        }
        if (walked > s->L.max_depth) {
            fail(err, e.offset, "delta chain deeper than %llu", (unsigned long long)s->L.max_depth);
            return READ_FAILED;
        }
        if (e.type == REF_DELTA)
            return READ_NEED;
        uint64_t base = e.base_offset;
        if (memo != NULL && (known = kinds_get(memo, key, base)) >= 0)
            break;
        if (parse_entry_read(s, base, base_head, read_head(s, base, base_head), &e, err) < 0)
            return READ_FAILED;
    }
    if (memo != NULL)
        kinds_put(memo, key, path, np, known);
    *kind = known;
    return result_size(s, &top, head, n, size, err) < 0 ? READ_FAILED : READ_OK;
}

/* ---- the Python calls ----------------------------------------------------------------------- */

struct call {
    Py_buffer buf, windows;
    int have_windows;
    struct src s;
};

static int
parse_limits(PyObject *limits, struct limits *L)
{
    unsigned long long ratio, depth, result, expansion;
    int varint, raw_len, header_bytes;
    if (!PyArg_ParseTuple(limits, "KKKiiiK", &ratio, &depth, &result, &varint, &raw_len, &header_bytes,
                          &expansion))
        return -1;
    if (raw_len < 1 || raw_len > MAX_RAW_LEN || varint < 1 || header_bytes < 0
        || header_bytes > MAX_DELTA_HEADER) {
        PyErr_SetString(PyExc_ValueError, "bad limits");
        return -1;
    }
    L->inflate_ratio = ratio;
    L->max_depth = depth;
    L->max_result = result;
    L->max_varint = varint;
    L->raw_len = raw_len;
    L->header_bytes = header_bytes;
    L->expansion = expansion;
    return 0;
}

static int
call_open(struct call *c, PyObject *buf, unsigned long long end, PyObject *windows, PyObject *limits)
{
    memset(c, 0, sizeof(*c));
    c->s.fd = -1;
    if (parse_limits(limits, &c->s.L) < 0)
        return -1;
    if (PyObject_GetBuffer(buf, &c->buf, PyBUF_SIMPLE) < 0)
        return -1;
    if (end > (unsigned long long)c->buf.len) {
        PyBuffer_Release(&c->buf);
        PyErr_SetString(PyExc_ValueError, "data end past the buffer");
        return -1;
    }
    if (windows != Py_None) {
        if (PyObject_GetBuffer(windows, &c->windows, PyBUF_WRITABLE) < 0) {
            PyBuffer_Release(&c->buf);
            return -1;
        }
        c->have_windows = 1;
        c->s.windows = c->windows.buf;
        c->s.nwindows = (uint64_t)c->windows.len;
    }
    c->s.buf = c->buf.buf;
    c->s.end = end;
    return 0;
}

static void
call_close(struct call *c)
{
    if (c->have_windows)
        PyBuffer_Release(&c->windows);
    PyBuffer_Release(&c->buf);
}

/* (kind, bytes) | (0, ref_offset, base_id, depth) | (-1, offset, reason); NULL on MemoryError. */
static PyObject *
outcome_tuple(enum outcome outcome, obj *o, struct out *out, int kind, const struct need *need,
              const struct err *err, int raw_len)
{
    if (outcome != READ_OK)
        Py_CLEAR(out->bytes);
    if (outcome == READ_OK) {
        PyObject *data = out->bytes;
        out->bytes = NULL;
        if (o != NULL) {
            data = PyBytes_FromStringAndSize((const char *)o->data, (Py_ssize_t)o->size);
            obj_release(o);
        }
        if (data == NULL)
            return NULL;
        return Py_BuildValue("(iN)", kind, data);
    }
    if (outcome == READ_NEED)
        return Py_BuildValue("(iKy#K)", 0, (unsigned long long)need->offset, need->id,
                             (Py_ssize_t)raw_len, (unsigned long long)need->depth);
    if (err->nomem)
        return PyErr_NoMemory();
    return Py_BuildValue("(iKs)", -1, (unsigned long long)err->offset, err->msg);
}

/* One read_object call, made without the GIL (out_alloc takes it back to allocate the answer). */
struct one_read {
    PyThreadState *ts;
    struct out out;
    obj *o;
    int kind;
    struct need need;
    struct err err;
    enum outcome outcome;
};

static void
read_released(Cache *cache, struct src *s, uint64_t key, uint64_t offset, uint64_t depth,
              const struct given *given, int keep, struct one_read *r)
{
    r->o = NULL;
    r->kind = 0;
    r->err.nomem = 0;
    r->ts = PyEval_SaveThread();
    r->out = (struct out){&r->ts, NULL};
    r->outcome = read_object(cache, s, key, offset, depth, given, keep, &r->out, &r->o, &r->kind, &r->need,
                             &r->err);
    PyEval_RestoreThread(r->ts);
}

static PyObject *
engine_read(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *cache, *buf, *windows, *limits, *given_obj;
    unsigned long long end, offset, key, depth;
    int keep;
    if (!PyArg_ParseTuple(args, "O!OKKKOOKOp", &CacheType, &cache, &buf, &end, &offset, &key, &windows,
                          &limits, &depth, &given_obj, &keep))
        return NULL;
    struct given given = {0, 0, 0, NULL, 0};
    Py_buffer given_buf;
    if (given_obj != Py_None) {
        unsigned long long at;
        PyObject *data;
        if (!PyArg_ParseTuple(given_obj, "KiO", &at, &given.kind, &data))
            return NULL;
        if (PyObject_GetBuffer(data, &given_buf, PyBUF_SIMPLE) < 0)
            return NULL;
        given.present = 1;
        given.offset = at;
        given.data = given_buf.buf;
        given.size = (size_t)given_buf.len;
    }
    struct call c;
    if (call_open(&c, buf, end, windows, limits) < 0) {
        if (given.present)
            PyBuffer_Release(&given_buf);
        return NULL;
    }
    struct one_read r;
    read_released((Cache *)cache, &c.s, key, offset, depth, &given, keep, &r);
    uint64_t touched = c.s.touched;
    int raw_len = c.s.L.raw_len;
    call_close(&c);
    if (given.present)
        PyBuffer_Release(&given_buf);
    PyObject *answer = outcome_tuple(r.outcome, r.o, &r.out, r.kind, &r.need, &r.err, raw_len);
    if (answer == NULL)
        return NULL;
    return Py_BuildValue("(NK)", answer, (unsigned long long)touched);
}

struct item {
    uint64_t offset;
    Py_ssize_t at;
};

static int
by_offset(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The entry offsets of a Python sequence, each with its place in it (to answer in the order
   asked); *n their count. NULL with an exception set if it is not a sequence of offsets. */
static struct item *
items_of(PyObject *offsets, Py_ssize_t *n)
{
    PyObject *seq = PySequence_Fast(offsets, "offsets must be a sequence");
    if (seq == NULL)
        return NULL;
    *n = PySequence_Fast_GET_SIZE(seq);
    struct item *items = PyMem_Malloc((*n ? *n : 1) * sizeof(*items));
    if (items == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < *n; i++) {
        items[i].offset = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        items[i].at = i;
        if (PyErr_Occurred()) {
            PyMem_Free(items);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    return items;
}

/* Many entries of one pack, read in offset order whatever the order asked; the answers in the order asked. */
static PyObject *
engine_read_many(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *cache, *buf, *offsets, *windows, *limits;
    unsigned long long end, key;
    if (!PyArg_ParseTuple(args, "O!OKOKOO", &CacheType, &cache, &buf, &end, &offsets, &key, &windows,
                          &limits))
        return NULL;
    Py_ssize_t n;
    struct item *items = items_of(offsets, &n);
    if (items == NULL)
        return NULL;
    PyObject *answers = PyList_New(n);
    if (answers == NULL) {
        PyMem_Free(items);
        return NULL;
    }
    qsort(items, (size_t)n, sizeof(*items), by_offset);
    struct call c;
    if (call_open(&c, buf, end, windows, limits) < 0) {
        PyMem_Free(items);
        Py_DECREF(answers);
        return NULL;
    }
    struct given none = {0, 0, 0, NULL, 0};
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        struct one_read r;
        read_released((Cache *)cache, &c.s, key, items[i].offset, 0, &none, 0, &r);
        PyObject *answer = outcome_tuple(r.outcome, r.o, &r.out, r.kind, &r.need, &r.err, c.s.L.raw_len);
        if (answer == NULL)
            goto done;
        PyList_SET_ITEM(answers, items[i].at, answer);
    }
    result = Py_BuildValue("(OK)", answers, (unsigned long long)c.s.touched);
done:
    call_close(&c);
    PyMem_Free(items);
    Py_DECREF(answers);
    return result;
}


/* Types and sizes of many entries of one pack, in offset order; the answers in the order asked. */
static PyObject *
engine_headers(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *buf, *offsets, *windows, *limits, *memo = Py_None;
    unsigned long long end, key = 0;
    int fd = -1;
    if (!PyArg_ParseTuple(args, "OKOOO|iOK", &buf, &end, &offsets, &windows, &limits, &fd, &memo, &key))
        return NULL;
    if (memo != Py_None && !PyObject_TypeCheck(memo, &KindsType)) {
        PyErr_SetString(PyExc_TypeError, "memo: an odb._engine.Kinds or None");
        return NULL;
    }
    Kinds *kinds = memo == Py_None ? NULL : (Kinds *)memo;
    Py_ssize_t n;
    struct item *items = items_of(offsets, &n);
    if (items == NULL)
        return NULL;
    struct header_answer {
        enum outcome outcome;
        int kind;
        uint64_t size;
        struct err err;
    } *got = PyMem_Malloc((n ? n : 1) * sizeof(*got));
    if (got == NULL) {
        PyMem_Free(items);
        return PyErr_NoMemory();
    }
    struct call c;
    if (call_open(&c, buf, end, windows, limits) < 0) {
        PyMem_Free(items);
        PyMem_Free(got);
        return NULL;
    }
    c.s.fd = fd;  /* the caller holds it open across the call (Pack.header_source) */
    Py_BEGIN_ALLOW_THREADS
    qsort(items, (size_t)n, sizeof(*items), by_offset);
    for (Py_ssize_t i = 0; i < n; i++) {
        struct header_answer *a = &got[items[i].at];
        a->err.nomem = 0;
        a->outcome = header_of(&c.s, items[i].offset, kinds, key, &a->kind, &a->size, &a->err);
    }
    Py_END_ALLOW_THREADS
    PyObject *answers = PyList_New(n), *result = NULL;
    if (answers == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        struct header_answer *a = &got[i];
        PyObject *answer;
        if (a->outcome == READ_OK)
            answer = Py_BuildValue("(iK)", a->kind, (unsigned long long)a->size);
        else if (a->outcome == READ_NEED)
            answer = Py_BuildValue("(i)", 0);
        else if (a->err.nomem)
            answer = PyErr_NoMemory();
        else
            answer = Py_BuildValue("(iKs)", -1, (unsigned long long)a->err.offset, a->err.msg);
        if (answer == NULL)
            goto done;
        PyList_SET_ITEM(answers, i, answer);
    }
    result = Py_BuildValue("(OK)", answers, (unsigned long long)c.s.touched);
done:
    Py_XDECREF(answers);
    call_close(&c);
    PyMem_Free(items);
    PyMem_Free(got);
    return result;
}

/* ---- for compiled callers outside odb (odb/engine_api.h) ------------------------------------ */

struct odb_engine_pack {
    struct call c;
    uint64_t key;
    uint8_t *marks;    /* the pack's 64 KiB windows this reader touched: its own, not Python's */
    uint64_t touched;  /* atomic: windows marked since pack_touched last drained them */
};

static odb_engine_pack *
api_pack_open(PyObject *bytes, unsigned long long end, int fd, PyObject *limits, uint64_t key)
{
    odb_engine_pack *p = PyMem_RawCalloc(1, sizeof(*p));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    if (call_open(&p->c, bytes, end, Py_None, limits) < 0) {
        PyMem_RawFree(p);
        return NULL;
    }
    uint64_t n = ((uint64_t)p->c.buf.len >> WINDOW_SHIFT) + 1;
    p->marks = PyMem_RawCalloc((size_t)n, 1);
    if (p->marks == NULL) {
        call_close(&p->c);
        PyMem_RawFree(p);
        PyErr_NoMemory();
        return NULL;
    }
    p->c.s.windows = p->marks;
    p->c.s.nwindows = n;
    p->c.s.fd = fd;
    p->key = key;
    return p;
}

static void
api_pack_close(odb_engine_pack *p)
{
    if (p == NULL)
        return;
    call_close(&p->c);
    PyMem_RawFree(p->marks);
    PyMem_RawFree(p);
}

static uint64_t
api_pack_touched(odb_engine_pack *p, int reset)
{
    if (reset)
        memset(p->marks, 0, (size_t)p->c.s.nwindows);
    return __atomic_exchange_n(&p->touched, 0, __ATOMIC_RELAXED);
}

/* The source of one call: the pack's, with a count of its own (struct src counts per call). */
static struct src
api_src(const odb_engine_pack *p)
{
    struct src s = p->c.s;
    s.touched = 0;
    return s;
}

static int
api_header(odb_engine_pack *p, uint64_t offset, int *kind, uint64_t *size)
{
    struct src s = api_src(p);
    struct err err;
    err.nomem = 0;
    enum outcome outcome = header_of(&s, offset, NULL, p->key, kind, size, &err);
    __atomic_add_fetch(&p->touched, s.touched, __ATOMIC_RELAXED);
    return outcome != READ_OK;
}

/* delta_chain.packed_size: the size alone (a delta's from its own first bytes, its chain not walked). */
static int
api_size(odb_engine_pack *p, uint64_t offset, uint64_t *size)
{
    struct src s = api_src(p);
    struct entry e;
    struct err err;
    uint8_t head[HEADER_READ];
    err.nomem = 0;
    int64_t n = read_head(&s, offset, head);
    int rc = parse_entry_read(&s, offset, head, n, &e, &err);
    if (rc == 0) {
        if (e.type < OFS_DELTA)
            *size = e.size;
        else
            rc = result_size(&s, &e, head, n, size, &err);
    }
    __atomic_add_fetch(&p->touched, s.touched, __ATOMIC_RELAXED);
    return rc < 0;
}

static int
api_read(PyObject *cache, odb_engine_pack *p, uint64_t offset, const uint8_t **data, uint64_t *size,
         int *kind, void **handle)
{
    struct src s = api_src(p);
    struct given none = {0, 0, 0, NULL, 0};
    struct out out = {NULL, NULL};  /* built in an obj: no GIL needed */
    struct need need;
    struct err err;
    obj *o = NULL;
    err.nomem = 0;
    enum outcome outcome = read_object((Cache *)cache, &s, p->key, offset, 0, &none, 0, &out, &o, kind, &need,
                                       &err);
    __atomic_add_fetch(&p->touched, s.touched, __ATOMIC_RELAXED);
    if (outcome != READ_OK || o == NULL) {
        obj_release(o);
        return 1;
    }
    *data = o->data;
    *size = o->size;
    *handle = o;
    return 0;
}

static void
api_release(void *handle)
{
    obj_release(handle);
}

static struct odb_engine_api api = {
    ODB_ENGINE_API_VERSION, api_pack_open, api_pack_close, api_pack_touched, api_header, api_size, api_read,
    api_release,
};

static PyMethodDef methods[] = {
    {"read", engine_read, METH_VARARGS,
     "read(cache, pack_bytes, data_end, offset, pack_key, windows, limits, depth, given, keep)\n"
     "-> (answer, windows_touched)\n\n"
     "Reads the object whose entry is at offset, without the GIL. answer is (kind, bytes); or\n"
     "(0, ref_offset, base_id, depth) when a REF_DELTA entry needs its base: call again with\n"
     "given=(ref_offset, kind, base bytes); or (-1, offset, reason) for damage.\n"
     "limits = (max_inflate_ratio, max_depth, max_delta_result, max_varint_bytes, raw_len,\n"
     "delta_header_bytes, max_delta_expansion)."},
    {"read_many", engine_read_many, METH_VARARGS,
     "read_many(cache, pack_bytes, data_end, offsets, pack_key, windows, limits)\n"
     "-> (answers, windows_touched)\n\n"
     "read() for many entries of one pack, in offset order; the answers in the order asked."},
    {"headers", engine_headers, METH_VARARGS,
     "headers(pack_bytes, data_end, offsets, windows, limits[, fd[, memo, pack_key]])\n"
     "-> (answers, windows_touched)\n\n"
     "(kind, size) of each entry's object from headers alone (a delta's size from its first\n"
     "inflated bytes), in offset order; (0,) where the chain meets a REF_DELTA (Python types it);\n"
     "(-1, offset, reason) for damage. With fd, the pack's descriptor, headers are read with\n"
     "pread and map nothing (the mapping is read only where a delta's first bytes run past).\n"
     "With memo, a Kinds, a walk stops at the first entry an earlier walk typed, and types the\n"
     "entries it passes.\n"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "odb._engine",
    "The object engine in C (optional accelerator of odb.objects.delta_chain).",
    0,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__engine(void)
{
#ifdef HAVE_LIBDEFLATE
    static int key_made = 0;
    if (!key_made) {
        if (pthread_key_create(&decompressor_key, free_decompressor) != 0) {
            PyErr_SetString(PyExc_OSError, "pthread_key_create failed");
            return NULL;
        }
        key_made = 1;
    }
#endif
    if (PyType_Ready(&CacheType) < 0 || PyType_Ready(&KindsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&CacheType);
    Py_INCREF(&KindsType);
    if (PyModule_AddObject(m, "Cache", (PyObject *)&CacheType) < 0
        || PyModule_AddObject(m, "Kinds", (PyObject *)&KindsType) < 0
        || PyModule_AddStringConstant(m, "INFLATER", INFLATER) < 0
        || PyModule_AddObject(m, "_api", PyCapsule_New(&api, ODB_ENGINE_API_CAPSULE, NULL)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
