/* The compiled request path: LOOKUP, READ and GETXATTR of the buckets' object files, answered in C. */

/*
 * A patched pyfuse3 (gitfs/pyfuse3-fast-path.patch) offers every request to handle() below before
 * any Python runs, with the GIL let go. handle() answers the two requests that random reads are
 * made of, when it can answer them exactly as the Python path would:
 *
 * - LOOKUP of a bucket (lower case) that the multi-pack-index holds ids of: a directory, shown as
 *   the root shows the objects directory (set_root);
 * - LOOKUP of BUCKET/REST, REST the rest of a full id in lower case, for an id that the
 *   multi-pack-index holds (a plain one, not a chain): the object's inode (its natural inode,
 *   gitfs/view/inodes.py) and attributes (its size from its entry's header alone, as Store.stat
 *   reads it, the Access of its pack, gitfs/view/mount_view.py object_attr);
 * - READ of an inode that such a LOOKUP answered, when the object is at most inline_max bytes:
 *   its bytes, made by odb's engine (odb/engine_api.h) through the delta-base cache the Python
 *   path shares (a READ of an entry that a listing gave is Python's: it drives read-ahead);
 * - GETXATTR of user.git.type of any object of the index, found by its inode as Python's prefix
 *   search finds it (what a hasher asks of every file), and ENOTSUP for any name outside user.*
 *   (what `ls -l` asks).
 *
 * Every other request, and every one of these that meets anything unusual (an abbreviated or
 * upper-case name, an id the index does not hold, an inode that another id may share, a
 * REF_DELTA on the chain, damage, a failed allocation), is left to the Python path untouched:
 * handle() returns 0 and has written nothing. So the answers never differ from Python's; only
 * the common case is faster. tests/gitfs/test_request_path.py holds the two to the same bytes.
 *
 * handle() may run in several threads at once (pyfuse3's request threads). The snapshot (the
 * index, the packs, the inodes not to answer) is Python's to set with renew(), under the write
 * side of a lock whose read side every request takes without waiting: a request that meets a
 * renewal in progress is left to Python. The table of inodes that LOOKUP answered has a lock of
 * its own, held for a copy. mark_stale() may be called from any thread: handle() then declines
 * everything until the next renew().
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "../../odb/engine_api.h"
#include "../../odb/index_entries.h"

_Static_assert(sizeof(struct fuse_in_header) == 40, "FUSE in header");
_Static_assert(sizeof(struct fuse_entry_out) == 128, "FUSE entry (protocol 7.9 and later)");
_Static_assert(sizeof(struct fuse_read_in) == 40, "FUSE read (protocol 7.9 and later)");

#define MAX_RAW 32          /* SHA-256 */
#define TABLE_SIZE 4096     /* inodes answered by LOOKUP, for their READs: a power of two */

static const struct odb_engine_api *engine;
static PyObject *cache_type;  /* odb._engine.Cache */

/* What READ needs of an inode that LOOKUP answered. */
struct known {
    uint64_t inode;         /* 0: empty slot */
    uint64_t offset;        /* of the entry in its pack */
    uint64_t size;
    uint32_t pack;          /* index into the snapshot's packs */
    uint32_t epoch;         /* the snapshot's: an older one is not used */
    uint64_t position;      /* the id's, in the index */
};

struct pack_slot {
    odb_engine_pack *pack;  /* NULL: not opened by Python, every lookup in it is declined */
    uint64_t end;           /* where its entries end */
    uint32_t mode, uid, gid;
    uint64_t mtime_ns;
};

typedef struct {
    PyObject_HEAD
    /* set at __init__ */
    PyObject *cache;                /* odb._engine.Cache: the delta bases every reader shares */
    uint64_t bucket_inode;          /* inode of bucket 00 (lower-case spelling) */
    uint64_t first_object_inode;    /* natural inodes below this are moved by Python */
    uint64_t inline_max;            /* larger objects are read by Python (cache, streams) */
    uint64_t timeout_s;             /* entry and attribute timeout of an object */
    uint32_t blksize;
    /* a bucket directory (set_root): the objects directory's owner, mode and mtime, as the root shows */
    int have_root;
    uint32_t root_mode, root_uid, root_gid, dir_blksize;
    uint64_t root_mtime_ns, dir_timeout_s;
    uint32_t dir_timeout_ns;
    /* the snapshot (renew), under the write side of `snapshot`; requests take the read side */
    pthread_rwlock_t snapshot;
    pthread_mutex_t table_lock;     /* for `table` */
    int locks_made;
    int ready;
    int stale;                      /* atomic */
    uint32_t epoch;
    Py_buffer midx, fanout;         /* the index's bytes; its fanout as 256 native uint32 */
    int have_midx, have_fanout;
    uint64_t oidl_at, ooff_at, loff_at;
    int64_t n_large;                /* -1: no LOFF chunk */
    uint64_t count;
    int raw_len;
    struct pack_slot *packs;
    uint32_t npacks;
    int all_packs;                  /* every pack of the index opened: its fanout is what listings show */
    Py_buffer outside, retired;     /* sorted native uint64 natural inodes not to answer */
    int have_outside, have_retired;
    PyObject *keep;                 /* what holds the packs' descriptors open */
    struct known table[TABLE_SIZE];
    /* counts (status) */
    uint64_t lookups, buckets, reads, xattrs, declined;
} RequestPath;

/* ---- the multi-pack-index --------------------------------------------------------------- */

/* The position of raw in the index, or -1. */
static int64_t
midx_find(const RequestPath *r, const uint8_t *raw)
{
    const uint32_t *fanout = r->fanout.buf;
    uint64_t lo = raw[0] ? fanout[raw[0] - 1] : 0, hi = fanout[raw[0]];
    if (hi > r->count || lo > hi)
        return -1;
    const uint8_t *ids = (const uint8_t *)r->midx.buf + r->oidl_at;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = memcmp(ids + mid * (uint64_t)r->raw_len, raw, (size_t)r->raw_len);
        if (c == 0)
            return (int64_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* MultiPackIndex.entry_at: (pack id, offset) of position i; 0 when the entry is not usable. */
static int
midx_entry(const RequestPath *r, uint64_t i, uint32_t *pack_id, uint64_t *offset)
{
    return index_entry(r->midx.buf, r->ooff_at + 8 * i, 1, r->loff_at, r->n_large, pack_id, offset)
           && *pack_id < r->npacks;
}

static uint64_t
natural_inode(const uint8_t *raw)
{
    return be64(raw) >> 1;
}

static int
in_sorted(const Py_buffer *b, int have, uint64_t v)
{
    if (!have)
        return 0;
    const uint64_t *a = b->buf;
    size_t lo = 0, hi = (size_t)b->len / sizeof(uint64_t);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] == v)
            return 1;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Whether the id at position i keeps its natural inode: no other id of the index (they are
   sorted: only a neighbour can share the top 63 bits), of the other sources, or moved by Python. */
static int
inode_is_unique(const RequestPath *r, uint64_t i, uint64_t inode)
{
    const uint8_t *ids = (const uint8_t *)r->midx.buf + r->oidl_at;
    if (inode < r->first_object_inode)
        return 0;
    if (i > 0 && natural_inode(ids + (i - 1) * (uint64_t)r->raw_len) == inode)
        return 0;
    if (i + 1 < r->count && natural_inode(ids + (i + 1) * (uint64_t)r->raw_len) == inode)
        return 0;
    return !in_sorted(&r->outside, r->have_outside, inode) && !in_sorted(&r->retired, r->have_retired, inode);
}

/* ---- replies ---------------------------------------------------------------------------- */

/* Writes one reply. A write the kernel refuses (ENOENT: the request was interrupted and is gone)
   is what libfuse ignores too; the request is answered either way. */
static void
reply(int fd, uint64_t unique, const void *payload, size_t n)
{
    struct fuse_out_header out = {(uint32_t)(sizeof(out) + n), 0, unique};
    struct iovec iov[2] = {{&out, sizeof(out)}, {(void *)payload, n}};
    ssize_t w;
    do
        w = writev(fd, iov, n ? 2 : 1);
    while (w < 0 && errno == EINTR);
}

static void
reply_error(int fd, uint64_t unique, int error)
{
    struct fuse_out_header out = {(uint32_t)sizeof(out), -error, unique};
    ssize_t w;
    do
        w = write(fd, &out, sizeof(out));
    while (w < 0 && errno == EINTR);
}

static int
hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;  /* upper case too: another spelling, which Python answers (an alias, no caching) */
}

static struct known *
slot_of(RequestPath *r, uint64_t inode)
{
    uint64_t h = inode * 0x9E3779B97F4A7C15ull;
    return &r->table[(h >> 32) & (TABLE_SIZE - 1)];
}

static void
times_of(struct fuse_attr *a, uint64_t mtime_ns)
{
    a->atime = a->mtime = a->ctime = mtime_ns / 1000000000u;
    a->atimensec = a->mtimensec = a->ctimensec = (uint32_t)(mtime_ns % 1000000000u);
}

/* LOOKUP of a bucket in the root (lower case): a directory, when the index holds ids there (an
   empty one may hold loose objects or a new pack's: Python looks, after a refresh). */
static int
lookup_bucket(RequestPath *r, const struct fuse_in_header *in, const char *name, size_t room, int fd)
{
    if (!r->have_root || !r->all_packs || room < 3 || name[2] != '\0')
        return 0;
    int hi = hex_value((unsigned char)name[0]), lo = hex_value((unsigned char)name[1]);
    if (hi < 0 || lo < 0)
        return 0;
    int b = hi << 4 | lo;
    const uint32_t *fanout = r->fanout.buf;
    if (fanout[b] <= (b ? fanout[b - 1] : 0))
        return 0;
    struct fuse_entry_out e;
    memset(&e, 0, sizeof(e));
    e.nodeid = e.attr.ino = r->bucket_inode + (uint64_t)b;
    e.entry_valid = e.attr_valid = r->dir_timeout_s;
    e.entry_valid_nsec = e.attr_valid_nsec = r->dir_timeout_ns;
    times_of(&e.attr, r->root_mtime_ns);
    e.attr.mode = r->root_mode;
    e.attr.nlink = 2;
    e.attr.uid = r->root_uid;
    e.attr.gid = r->root_gid;
    e.attr.blksize = r->dir_blksize;
    reply(fd, in->unique, &e, sizeof(e));
    __atomic_add_fetch(&r->buckets, 1, __ATOMIC_RELAXED);
    return 1;
}

static int
lookup(RequestPath *r, const struct fuse_in_header *in, const char *name, size_t room, int fd)
{
    if (in->nodeid == FUSE_ROOT_ID)
        return lookup_bucket(r, in, name, room, fd);
    uint64_t bucket = in->nodeid - r->bucket_inode;
    if (in->nodeid < r->bucket_inode || bucket > 255)
        return 0;
    size_t rest = 2 * (size_t)r->raw_len - 2;
    if (room < rest + 1 || name[rest] != '\0')
        return 0;
    uint8_t raw[MAX_RAW];
    raw[0] = (uint8_t)bucket;
    for (size_t k = 0; k < rest; k += 2) {
        int hi = hex_value((unsigned char)name[k]), lo = hex_value((unsigned char)name[k + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        raw[1 + k / 2] = (uint8_t)(hi << 4 | lo);
    }
    int64_t i = midx_find(r, raw);
    if (i < 0)
        return 0;
    uint64_t inode = natural_inode(raw);
    uint32_t pack_id;
    uint64_t offset, size;
    if (!inode_is_unique(r, (uint64_t)i, inode) || !midx_entry(r, (uint64_t)i, &pack_id, &offset))
        return 0;
    const struct pack_slot *p = &r->packs[pack_id];
    /* The size alone, as Store.stat gives it: a broken chain below shows when the object is read. */
    if (p->pack == NULL || !(offset >= 12 && offset < p->end) || engine->size(p->pack, offset, &size))
        return 0;
    struct fuse_entry_out e;
    memset(&e, 0, sizeof(e));
    e.nodeid = inode;
    e.entry_valid = e.attr_valid = r->timeout_s;
    e.attr.ino = inode;
    e.attr.size = size;
    e.attr.blocks = (size + 511) >> 9;
    times_of(&e.attr, p->mtime_ns);
    e.attr.mode = p->mode;
    e.attr.nlink = 1;
    e.attr.uid = p->uid;
    e.attr.gid = p->gid;
    e.attr.blksize = r->blksize;
    struct known *k = slot_of(r, inode);
    pthread_mutex_lock(&r->table_lock);
    *k = (struct known){inode, offset, size, pack_id, r->epoch, (uint64_t)i};
    pthread_mutex_unlock(&r->table_lock);
    reply(fd, in->unique, &e, sizeof(e));
    __atomic_add_fetch(&r->lookups, 1, __ATOMIC_RELAXED);
    return 1;
}

static int
read_object(RequestPath *r, const struct fuse_in_header *in, const struct fuse_read_in *rd, int fd)
{
    pthread_mutex_lock(&r->table_lock);
    struct known k = *slot_of(r, in->nodeid);
    pthread_mutex_unlock(&r->table_lock);
    if (k.inode != in->nodeid || k.epoch != r->epoch || rd->fh != 0 || k.size > r->inline_max)
        return 0;
    const uint8_t *data;
    uint64_t size;
    int kind;
    void *handle;
    if (engine->read(r->cache, r->packs[k.pack].pack, k.offset, &data, &size, &kind, &handle))
        return 0;
    if (size != k.size) {  /* cannot be, as both come from the same checked bytes: Python says why */
        engine->release(handle);
        return 0;
    }
    uint64_t at = rd->offset < size ? rd->offset : size;
    uint64_t n = size - at < rd->size ? size - at : rd->size;
    reply(fd, in->unique, data + at, (size_t)n);
    engine->release(handle);
    __atomic_add_fetch(&r->reads, 1, __ATOMIC_RELAXED);
    return 1;
}

/* The position of the one id of the index whose natural inode this is, if it keeps it (as
   inode_is_unique says), else -1: what Python's prefix search (ObjectInodes.oid_of) finds. */
static int64_t
find_by_inode(const RequestPath *r, uint64_t inode)
{
    if (inode < r->first_object_inode || inode >> 63)
        return -1;
    uint8_t prefix[8];
    uint64_t want = inode << 1;
    for (int k = 0; k < 8; k++)
        prefix[k] = (uint8_t)(want >> (56 - 8 * k));
    const uint32_t *fanout = r->fanout.buf;
    uint64_t lo = prefix[0] ? fanout[prefix[0] - 1] : 0, hi = fanout[prefix[0]];
    if (hi > r->count || lo > hi)
        return -1;
    const uint8_t *ids = (const uint8_t *)r->midx.buf + r->oidl_at;
    while (lo < hi) {  /* the first id at or after the prefix */
        uint64_t mid = lo + (hi - lo) / 2;
        if (memcmp(ids + mid * (uint64_t)r->raw_len, prefix, 8) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= r->count || natural_inode(ids + lo * (uint64_t)r->raw_len) != inode
        || !inode_is_unique(r, lo, inode))
        return -1;
    return (int64_t)lo;
}

static const char *const KIND_NAMES[] = {NULL, "commit", "tree", "blob", "tag"};

/* GETXATTR: ENOTSUP for any name outside user.* (gitfs/view/xattrs.py says why), and
   user.git.type of an object of the index, from its entry headers. */
static int
getxattr(RequestPath *r, const struct fuse_in_header *in, const struct fuse_getxattr_in *gx, const char *name,
         size_t room, int fd)
{
    if (memchr(name, '\0', room) == NULL)
        return 0;
    if (strncmp(name, "user.", 5) != 0) {
        reply_error(fd, in->unique, ENOTSUP);
        __atomic_add_fetch(&r->xattrs, 1, __ATOMIC_RELAXED);
        return 1;
    }
    if (strcmp(name, "user.git.type") != 0)
        return 0;
    int64_t i = find_by_inode(r, in->nodeid);
    uint32_t pack_id;
    uint64_t offset, size;
    int kind;
    if (i < 0 || !midx_entry(r, (uint64_t)i, &pack_id, &offset))
        return 0;
    const struct pack_slot *p = &r->packs[pack_id];
    if (p->pack == NULL || !(offset >= 12 && offset < p->end) || engine->header(p->pack, offset, &kind, &size)
        || kind < 1 || kind > 4)
        return 0;
    const char *value = KIND_NAMES[kind];
    uint32_t n = (uint32_t)strlen(value);
    if (gx->size == 0) {
        struct fuse_getxattr_out out = {n, 0};
        reply(fd, in->unique, &out, sizeof(out));
    }
    else if (gx->size < n)
        reply_error(fd, in->unique, ERANGE);
    else
        reply(fd, in->unique, value, n);
    __atomic_add_fetch(&r->xattrs, 1, __ATOMIC_RELAXED);
    return 1;
}

/* The fast path's entry (pyfuse3.set_fast_path): 1 when the request was answered here. */
static int
handle(void *ctx, const void *request, size_t length, int fd)
{
    RequestPath *r = ctx;
    const struct fuse_in_header *in = request;
    if (length < sizeof(*in) || in->len != length || in->total_extlen != 0
        || (in->opcode != FUSE_LOOKUP && in->opcode != FUSE_READ && in->opcode != FUSE_GETXATTR))
        return 0;
    if (pthread_rwlock_tryrdlock(&r->snapshot) != 0) {  /* a renewal in progress: Python answers */
        __atomic_add_fetch(&r->declined, 1, __ATOMIC_RELAXED);
        return 0;
    }
    int done = 0;
    if (r->ready && !__atomic_load_n(&r->stale, __ATOMIC_ACQUIRE)) {
        if (in->opcode == FUSE_LOOKUP)
            done = lookup(r, in, (const char *)request + sizeof(*in), length - sizeof(*in), fd);
        else if (in->opcode == FUSE_READ && length >= sizeof(*in) + sizeof(struct fuse_read_in))
            done = read_object(r, in, (const struct fuse_read_in *)((const char *)request + sizeof(*in)), fd);
        else if (in->opcode == FUSE_GETXATTR && length > sizeof(*in) + sizeof(struct fuse_getxattr_in)) {
            const char *at = (const char *)request + sizeof(*in);
            done = getxattr(r, in, (const struct fuse_getxattr_in *)at, at + sizeof(struct fuse_getxattr_in),
                            length - sizeof(*in) - sizeof(struct fuse_getxattr_in), fd);
        }
    }
    pthread_rwlock_unlock(&r->snapshot);
    if (!done)
        __atomic_add_fetch(&r->declined, 1, __ATOMIC_RELAXED);
    return done;
}

/* ---- the Python type ---------------------------------------------------------------------- */

static void
drop_snapshot(RequestPath *r)
{
    r->ready = 0;
    for (uint32_t k = 0; k < r->npacks; k++)
        engine->pack_close(r->packs[k].pack);
    PyMem_Free(r->packs);
    r->packs = NULL;
    r->npacks = 0;
    if (r->have_midx)
        PyBuffer_Release(&r->midx);
    if (r->have_fanout)
        PyBuffer_Release(&r->fanout);
    if (r->have_outside)
        PyBuffer_Release(&r->outside);
    if (r->have_retired)
        PyBuffer_Release(&r->retired);
    r->have_midx = r->have_fanout = r->have_outside = r->have_retired = 0;
    Py_CLEAR(r->keep);
}

/* drop_snapshot under the write lock, waited for without the GIL (a request in C may hold the
   read side for the length of an object's read). */
static void
write_lock(RequestPath *r)
{
    if (pthread_rwlock_trywrlock(&r->snapshot) == 0)
        return;
    Py_BEGIN_ALLOW_THREADS
    pthread_rwlock_wrlock(&r->snapshot);
    Py_END_ALLOW_THREADS
}

static void
locked_drop(RequestPath *r)
{
    write_lock(r);
    drop_snapshot(r);
    r->epoch++;
    pthread_rwlock_unlock(&r->snapshot);
}

static int
RequestPath_init(RequestPath *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"cache", "bucket_inode", "first_object_inode", "inline_max", "timeout", "blksize",
                            NULL};
    PyObject *cache;
    unsigned long long bucket_inode, first_object_inode, inline_max, timeout;
    unsigned int blksize;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKKKI", names, &cache, &bucket_inode, &first_object_inode,
                                     &inline_max, &timeout, &blksize))
        return -1;
    if (!PyObject_IsInstance(cache, cache_type)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "cache: an odb._engine.Cache");
        return -1;
    }
    if (!self->locks_made) {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        /* A renewal waiting keeps new requests out (they go to Python), or it could wait for ever. */
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&self->snapshot, &attr);
        pthread_rwlockattr_destroy(&attr);
        pthread_mutex_init(&self->table_lock, NULL);
        self->locks_made = 1;
    }
    locked_drop(self);
    Py_INCREF(cache);
    Py_XSETREF(self->cache, cache);
    self->bucket_inode = bucket_inode;
    self->first_object_inode = first_object_inode;
    self->inline_max = inline_max;
    self->timeout_s = timeout;
    self->blksize = blksize;
    return 0;
}

static void
RequestPath_dealloc(RequestPath *self)
{
    drop_snapshot(self);  /* nothing can be answering: the capsule holds a reference while installed */
    if (self->locks_made) {
        pthread_rwlock_destroy(&self->snapshot);
        pthread_mutex_destroy(&self->table_lock);
    }
    Py_CLEAR(self->cache);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
sorted_u64(PyObject *obj, Py_buffer *b, int *have)
{
    if (PyObject_GetBuffer(obj, b, PyBUF_SIMPLE) < 0)
        return -1;
    *have = 1;
    if ((size_t)b->len % sizeof(uint64_t) || (b->len && (uintptr_t)b->buf % sizeof(uint64_t))) {
        PyErr_SetString(PyExc_ValueError, "want an aligned array of uint64 (array('Q'))");
        return -1;
    }
    return 0;
}

/* One pack of the index: None, or (bytes, end, fd, limits, key, mode, uid, gid, mtime_ns). */
static int
open_pack(struct pack_slot *slot, PyObject *item)
{
    if (item == Py_None)
        return 0;
    PyObject *bytes, *limits;
    unsigned long long end, key, mtime_ns;
    int fd;
    unsigned int mode, uid, gid;
    if (!PyArg_ParseTuple(item, "OKiOKIIIK", &bytes, &end, &fd, &limits, &key, &mode, &uid, &gid, &mtime_ns))
        return -1;
    slot->pack = engine->pack_open(bytes, end, fd, limits, key);
    if (slot->pack == NULL)
        return -1;
    slot->end = end;
    slot->mode = mode;
    slot->uid = uid;
    slot->gid = gid;
    slot->mtime_ns = mtime_ns;
    return 0;
}

/* RequestPath_renew's work, under the write lock: 0, or -1 with an exception and no snapshot. */
static int
renew_locked(RequestPath *self, PyObject *midx, PyObject *fanout, unsigned long long oidl, unsigned long long ooff,
             unsigned long long loff, long long n_large, unsigned long long count, int raw_len, PyObject *packs,
             PyObject *outside, PyObject *retired, PyObject *keep)
{
    drop_snapshot(self);
    self->epoch++;
    if (raw_len < 1 || raw_len > MAX_RAW) {
        PyErr_SetString(PyExc_ValueError, "bad id length");
        return -1;
    }
    if (PyObject_GetBuffer(midx, &self->midx, PyBUF_SIMPLE) < 0)
        return -1;
    self->have_midx = 1;
    if (PyObject_GetBuffer(fanout, &self->fanout, PyBUF_SIMPLE) < 0) {
        drop_snapshot(self);
        return -1;
    }
    self->have_fanout = 1;
    const uint32_t *f = self->fanout.buf;
    if (self->fanout.len != 256 * sizeof(uint32_t) || (uintptr_t)f % sizeof(uint32_t) || f[255] != count) {
        drop_snapshot(self);
        PyErr_SetString(PyExc_ValueError, "fanout: want array('I') of 256, ending at count");
        return -1;
    }
    uint64_t len = (uint64_t)self->midx.len;
    /* Python parsed and checked the index; these bounds are what this code relies on. */
    if (count > len || oidl + count * (uint64_t)raw_len > len || ooff + 8 * count > len
        || (n_large >= 0 && loff + 8 * (uint64_t)n_large > len)) {
        drop_snapshot(self);
        PyErr_SetString(PyExc_ValueError, "index chunks outside the index");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(packs);
    self->packs = PyMem_Calloc(n ? (size_t)n : 1, sizeof(struct pack_slot));
    if (self->packs == NULL) {
        drop_snapshot(self);
        PyErr_NoMemory();
        return -1;
    }
    self->npacks = (uint32_t)n;
    self->all_packs = 1;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (open_pack(&self->packs[k], PyList_GET_ITEM(packs, k)) < 0) {
            drop_snapshot(self);
            return -1;
        }
        if (self->packs[k].pack == NULL)
            self->all_packs = 0;
    }
    if (sorted_u64(outside, &self->outside, &self->have_outside) < 0
        || sorted_u64(retired, &self->retired, &self->have_retired) < 0) {
        drop_snapshot(self);
        return -1;
    }
    self->oidl_at = oidl;
    self->ooff_at = ooff;
    self->loff_at = loff;
    self->n_large = n_large;
    self->count = count;
    self->raw_len = raw_len;
    Py_INCREF(keep);
    self->keep = keep;
    __atomic_store_n(&self->stale, 0, __ATOMIC_RELEASE);
    self->ready = 1;
    return 0;
}


static PyObject *
RequestPath_renew(RequestPath *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"midx", "fanout", "oidl", "ooff", "loff", "n_large", "count", "raw_len", "packs",
                            "outside", "retired", "keep", NULL};
    PyObject *midx, *fanout, *packs, *outside, *retired, *keep;
    unsigned long long oidl, ooff, loff, count;
    long long n_large;
    int raw_len;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOKKKLKiO!OOO", names, &midx, &fanout, &oidl, &ooff, &loff,
                                     &n_large, &count, &raw_len, &PyList_Type, &packs, &outside, &retired, &keep))
        return NULL;
    write_lock(self);
    int rc = renew_locked(self, midx, fanout, oidl, ooff, loff, n_large, count, raw_len, packs, outside, retired,
                          keep);
    pthread_rwlock_unlock(&self->snapshot);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
RequestPath_disable(RequestPath *self, PyObject *unused)
{
    (void)unused;
    locked_drop(self);
    Py_RETURN_NONE;
}

/* set_root(mode, uid, gid, mtime_ns, dir_timeout, dir_blksize): what a bucket directory shows. */
static PyObject *
RequestPath_set_root(RequestPath *self, PyObject *args)
{
    unsigned int mode, uid, gid, blksize;
    unsigned long long mtime_ns;
    double timeout;
    if (!PyArg_ParseTuple(args, "IIIKdI", &mode, &uid, &gid, &mtime_ns, &timeout, &blksize))
        return NULL;
    if (!(timeout >= 0 && timeout < 1e12)) {
        PyErr_SetString(PyExc_ValueError, "bad timeout");
        return NULL;
    }
    write_lock(self);
    self->root_mode = mode;
    self->root_uid = uid;
    self->root_gid = gid;
    self->root_mtime_ns = mtime_ns;
    self->dir_timeout_s = (uint64_t)timeout;
    self->dir_timeout_ns = (uint32_t)((timeout - (double)(uint64_t)timeout) * 1e9);
    self->dir_blksize = blksize;
    self->have_root = 1;
    pthread_rwlock_unlock(&self->snapshot);
    Py_RETURN_NONE;
}

static PyObject *
RequestPath_mark_stale(RequestPath *self, PyObject *unused)
{
    (void)unused;
    __atomic_store_n(&self->stale, 1, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

/* oid_of(inode): the id that a LOOKUP answered here gave this inode, else the one id of the index
   that keeps it as its natural inode (find_by_inode); None if neither. What Python's prefix search
   would find, without building its tables of the bucket (their pages count in the mount's RSS). */
static PyObject *
RequestPath_oid_of(RequestPath *self, PyObject *arg)
{
    unsigned long long inode = PyLong_AsUnsignedLongLong(arg);
    if (inode == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    uint8_t raw[MAX_RAW];
    int found = 0, len = 0;
    if (pthread_rwlock_tryrdlock(&self->snapshot) != 0)
        Py_RETURN_NONE;  /* a renewal in progress: Python searches itself */
    if (self->ready && !__atomic_load_n(&self->stale, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&self->table_lock);
        struct known k = *slot_of(self, inode);
        pthread_mutex_unlock(&self->table_lock);
        int64_t i = k.inode == inode && k.epoch == self->epoch ? (int64_t)k.position : find_by_inode(self, inode);
        if (i >= 0 && (uint64_t)i < self->count) {
            len = self->raw_len;
            memcpy(raw, (const uint8_t *)self->midx.buf + self->oidl_at + (uint64_t)i * (uint64_t)len, (size_t)len);
            found = natural_inode(raw) == inode;
        }
    }
    pthread_rwlock_unlock(&self->snapshot);
    if (!found)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)raw, len);
}

/* touched(k, reset): the windows of pack k that reads marked since the last call (Pack.touched). */
static PyObject *
RequestPath_touched(RequestPath *self, PyObject *args)
{
    unsigned int k;
    int reset;
    if (!PyArg_ParseTuple(args, "Ip", &k, &reset))
        return NULL;
    if (!self->ready || k >= self->npacks || self->packs[k].pack == NULL)
        return PyLong_FromLong(0);
    return PyLong_FromUnsignedLongLong(engine->pack_touched(self->packs[k].pack, reset));
}

static PyObject *
RequestPath_counts(RequestPath *self, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("{sKsKsKsKsK}", "lookups", (unsigned long long)self->lookups, "buckets",
                         (unsigned long long)self->buckets, "reads", (unsigned long long)self->reads, "xattrs",
                         (unsigned long long)self->xattrs, "declined", (unsigned long long)self->declined);
}

/* handle(request, fd): what the session loop calls, for tests: True if answered on fd. */
static PyObject *
RequestPath_handle(RequestPath *self, PyObject *args)
{
    Py_buffer req;
    int fd, done;
    if (!PyArg_ParseTuple(args, "y*i", &req, &fd))
        return NULL;
    /* A copy aligned as the session loop's buffer is. */
    void *copy = PyMem_Malloc(req.len ? (size_t)req.len : 1);
    if (copy == NULL) {
        PyBuffer_Release(&req);
        return PyErr_NoMemory();
    }
    memcpy(copy, req.buf, (size_t)req.len);
    Py_BEGIN_ALLOW_THREADS
    done = handle(self, copy, (size_t)req.len, fd);
    Py_END_ALLOW_THREADS
    PyMem_Free(copy);
    PyBuffer_Release(&req);
    return PyBool_FromLong(done);
}

struct fast_path {
    int (*handle)(void *ctx, const void *request, size_t length, int fd);
    void *ctx;
    unsigned long long opcodes;  /* which requests the session loop offers (1 << opcode) */
};

static void
capsule_gone(PyObject *capsule)
{
    struct fast_path *fp = PyCapsule_GetPointer(capsule, "pyfuse3.fast_path");
    if (fp != NULL) {
        Py_DECREF((PyObject *)fp->ctx);
        PyMem_Free(fp);
    }
}

static PyObject *
RequestPath_capsule(RequestPath *self, PyObject *unused)
{
    (void)unused;
    struct fast_path *fp = PyMem_Malloc(sizeof(*fp));
    if (fp == NULL)
        return PyErr_NoMemory();
    fp->handle = handle;
    fp->ctx = self;
    fp->opcodes = 1ull << FUSE_LOOKUP | 1ull << FUSE_READ | 1ull << FUSE_GETXATTR;
    PyObject *capsule = PyCapsule_New(fp, "pyfuse3.fast_path", capsule_gone);
    if (capsule == NULL) {
        PyMem_Free(fp);
        return NULL;
    }
    Py_INCREF(self);
    return capsule;
}

static PyMethodDef RequestPath_methods[] = {
    {"renew", (PyCFunction)(void (*)(void))RequestPath_renew, METH_VARARGS | METH_KEYWORDS,
     "renew(midx, fanout, oidl, ooff, loff, n_large, count, raw_len, packs, outside, retired, keep)\n\n"
     "A new snapshot: the index's bytes, its fanout (array('I')) and where its other chunks start; per pack id None or (bytes, end,\n"
     "fd, limits, key, mode, uid, gid, mtime_ns); the natural inodes not to answer (sorted\n"
     "array('Q')); keep holds what must stay open meanwhile (descriptors). The session loop's thread only."},
    {"disable", (PyCFunction)RequestPath_disable, METH_NOARGS, "Declines every request until renew()."},
    {"set_root", (PyCFunction)RequestPath_set_root, METH_VARARGS,
     "set_root(mode, uid, gid, mtime_ns, dir_timeout, dir_blksize): what a bucket directory shows\n"
     "(mode with its type bits); until called, buckets are looked up in Python. Any thread."},
    {"mark_stale", (PyCFunction)RequestPath_mark_stale, METH_NOARGS,
     "Declines every request until renew(); any thread."},
    {"touched", (PyCFunction)RequestPath_touched, METH_VARARGS,
     "touched(k, reset) -> the windows of pack k that reads marked since the last call (for\n"
     "Pack.touched); reset clears the marks first. The session loop's thread only."},
    {"counts", (PyCFunction)RequestPath_counts, METH_NOARGS, "Requests answered here, and declined."},
    {"oid_of", (PyCFunction)RequestPath_oid_of, METH_O,
     "oid_of(inode) -> the raw id this inode shows, as Python's prefix search finds it, or None."},
    {"handle", (PyCFunction)RequestPath_handle, METH_VARARGS,
     "handle(request, fd) -> whether the request was answered (its reply written to fd)."},
    {"capsule", (PyCFunction)RequestPath_capsule, METH_NOARGS, "What pyfuse3.set_fast_path() installs."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RequestPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gitfs.fuse._request_path.RequestPath",
    .tp_basicsize = sizeof(RequestPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "LOOKUP and READ of the buckets' object files, answered in C (see the module's source).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RequestPath_init,
    .tp_dealloc = (destructor)RequestPath_dealloc,
    .tp_methods = RequestPath_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "gitfs.fuse._request_path",
    "The compiled request path: LOOKUP and READ of the buckets' object files, answered in C.",
    0,
    NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__request_path(void)
{
    engine = PyCapsule_Import(ODB_ENGINE_API_CAPSULE, 0);
    if (engine == NULL)
        return NULL;
    if (engine->version != ODB_ENGINE_API_VERSION) {
        PyErr_SetString(PyExc_ImportError, "odb._engine offers another version of its API");
        return NULL;
    }
    PyObject *engine_module = PyImport_ImportModule("odb._engine");
    if (engine_module == NULL)
        return NULL;
    cache_type = PyObject_GetAttrString(engine_module, "Cache");
    Py_DECREF(engine_module);
    if (cache_type == NULL)
        return NULL;
    if (PyType_Ready(&RequestPathType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&RequestPathType);
    if (PyModule_AddObject(m, "RequestPath", (PyObject *)&RequestPathType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
