/* Git delta instructions in C: the checks and the copy loop shared by odb/_delta.c and odb/_engine.c. */

/*
 * One copy of the loop, so that the two accelerators cannot drift from each other; each check
 * mirrors odb/objects/delta.py's pure-Python apply_delta, and describe_failure() gives its messages.
 * Nothing here touches Python objects: it runs without the GIL.
 */

#ifndef ODB_DELTA_APPLY_H
#define ODB_DELTA_APPLY_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum failure_kind {
    OK = 0,
    TRUNCATED_COPY,
    TRUNCATED_INSERT,
    OPCODE_ZERO,
    COPY_PAST_BASE,
    PAST_RESULT,
    RESULT_SHORT,
};

/* What went wrong, recorded without the GIL and turned into a message afterwards. */
struct failure {
    enum failure_kind kind;
    uint64_t a, b, c;
};

/* Reads one size varint of at most max_bytes bytes; returns 0, or -1 truncated, or -2 longer. */
static int
read_varint(const uint8_t *d, size_t n, size_t *pos, uint64_t *value, int max_bytes)
{
    uint64_t v = 0;
    size_t i = *pos;
    for (int k = 0; k < max_bytes; k++) {
        if (i >= n)
            return -1;
        uint8_t byte = d[i++];
        if (7 * k < 64)
            v |= (uint64_t)(byte & 0x7f) << (7 * k);
        if (!(byte & 0x80)) {
            *pos = i;
            *value = v;
            return 0;
        }
    }
    return -2;
}

/* odb/objects/delta.py's messages for a varint that read_varint refused. */
static void
describe_varint(int rc, const char *what, int max_bytes, char *msg, size_t len)
{
    if (rc == -1)
        snprintf(msg, len, "delta truncated in its %s size", what);
    else
        snprintf(msg, len, "delta %s size is longer than %d bytes", what, max_bytes);
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

/* The messages match odb/objects/delta.py's pure-Python implementation. */
static void
describe_failure(const struct failure *f, char *msg, size_t len)
{
    switch (f->kind) {
    case TRUNCATED_COPY:
        snprintf(msg, len, "delta truncated inside a copy instruction");
        break;
    case TRUNCATED_INSERT:
        snprintf(msg, len, "delta truncated inside an insert instruction");
        break;
    case OPCODE_ZERO:
        snprintf(msg, len, "delta opcode 0x00 at delta offset %llu", (unsigned long long)f->a);
        break;
    case COPY_PAST_BASE:
        snprintf(msg, len, "delta copies %llu bytes at base offset %llu, past the base end (%llu)",
                 (unsigned long long)f->a, (unsigned long long)f->b, (unsigned long long)f->c);
        break;
    case PAST_RESULT:
        snprintf(msg, len, "delta writes past its result size %llu", (unsigned long long)f->a);
        break;
    case RESULT_SHORT:
        snprintf(msg, len, "delta produced %llu bytes but declares %llu",
                 (unsigned long long)f->a, (unsigned long long)f->b);
        break;
    case OK:
        msg[0] = 0;
        break;
    }
}

#endif
