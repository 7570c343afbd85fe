/* The offsets table of a pack index or a multi-pack-index, read in C: odb/_sizes.c reads many
 * entries at once, gitfs/fuse/_request_path.c one per request. MultiPackIndex.entry_at and
 * PackIndex.offset_at in Python, check for check. */
#ifndef ODB_INDEX_ENTRIES_H
#define ODB_INDEX_ENTRIES_H

#include <stdint.h>

static inline uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* The entry at `at` of the table in buf (a pack id first when with_pack, then a 32-bit offset):
 * 1 with its pack id (0 without) and offset, 0 for a broken entry. Bit 31 of the offset indexes
 * the large offsets (n_large of them at large_at, already checked to lie in buf) only where that
 * table exists (n_large >= 0); an index past it is the broken entry. */
static inline int
index_entry(const uint8_t *buf, uint64_t at, int with_pack, uint64_t large_at, int64_t n_large, uint32_t *id,
            uint64_t *offset)
{
    *id = with_pack ? be32(buf + at) : 0;
    uint64_t off = be32(buf + at + (with_pack ? 4 : 0));
    if (off & 0x80000000u && n_large >= 0) {
        uint64_t j = off & 0x7fffffffu;
        if (j >= (uint64_t)n_large)
            return 0;
        off = be64(buf + large_at + 8 * j);
    }
    *offset = off;
    return 1;
}

#endif
