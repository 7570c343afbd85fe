/* What odb._engine offers compiled callers outside odb, through the capsule odb._engine._api.
 *
 * gitfs's compiled request path (gitfs/fuse/_request_path.c) answers READs with it without the
 * GIL. odb knows nothing of FUSE: this is a pack reader, the same one odb's Python calls.
 * Every check on the pack's bytes is the engine's own (odb/_engine.c); a caller gets "Python
 * must answer" (nonzero) for anything but a clean read, and leaves the request to the Python path,
 * which reports damage as odb always does.
 */
#ifndef ODB_ENGINE_API_H
#define ODB_ENGINE_API_H

#include <Python.h>
#include <stdint.h>

#define ODB_ENGINE_API_CAPSULE "odb._engine._api"
#define ODB_ENGINE_API_VERSION 1

typedef struct odb_engine_pack odb_engine_pack;  /* one pack's bytes as the engine reads them */

struct odb_engine_api {
    unsigned version;
    /* With the GIL: a pack's source from what Pack.engine_source() gives (its bytes and where the
     * entries end), its descriptor (-1: none; headers are then read from the bytes) and
     * engine_limits(); it holds a buffer of the bytes until pack_close. The windows of the pack that
     * its reads touch are marked in marks of its own (Pack._windows is Python's). NULL with an
     * exception set on failure. */
    odb_engine_pack *(*pack_open)(PyObject *bytes, unsigned long long end, int fd, PyObject *limits,
                                  uint64_t key);
    void (*pack_close)(odb_engine_pack *pack);                   /* with the GIL */
    /* The windows newly marked since the last call (what Pack.touched wants); reset clears the
     * marks first (after Python gave the pack's pages back, they count again). Same thread as reads. */
    uint64_t (*pack_touched)(odb_engine_pack *pack, int reset);
    /* Without the GIL: the object's type and size from headers (0), nonzero if Python must answer. */
    int (*header)(odb_engine_pack *pack, uint64_t offset, int *kind, uint64_t *size);
    /* Without the GIL: the object's size alone (0), as delta_chain.packed_size gives it: a delta's
     * from its own first bytes, its chain not walked; nonzero if Python must answer. */
    int (*size)(odb_engine_pack *pack, uint64_t offset, uint64_t *size);
    /* Without the GIL: the object's bytes, through the shared delta-base cache (an odb._engine.Cache),
     * held by *handle until release(); nonzero if Python must answer (a REF_DELTA on the chain,
     * damage, no memory). */
    int (*read)(PyObject *cache, odb_engine_pack *pack, uint64_t offset, const uint8_t **data,
                uint64_t *size, int *kind, void **handle);
    void (*release)(void *handle);                               /* GIL or not */
};

#endif
