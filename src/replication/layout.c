/*
 * layout.c - the replica layout: the only code that builds or parses object
 * keys. It is Litestream 0.3's layout, so either tool can read what the other
 * wrote (Litestream 0.5.7+ restores it too).
 *
 * Keys are relative to the replica root (a directory, a bucket prefix) and
 * always use '/' as separator:
 *
 *   generations/<gen>/snapshots/<index>.snapshot.lz4
 *   generations/<gen>/wal/<index>_<offset>.wal.lz4
 *
 *   <gen>     exactly 16 lowercase hex digits: 8 random bytes (getrandom(2))
 *             naming one unbroken lineage of the database.
 *   <index>   exactly 8 lowercase hex digits (printf "%08x"): the WAL index,
 *             +1 each time the real WAL restarts with new salts. Litestream
 *             never writes an index above 0x7fffffff; any 8 digits parse.
 *   <offset>  exactly 8 lowercase hex digits: byte offset of the segment's
 *             first byte in that index's WAL, the 32-byte header included.
 *
 * Each object is one LZ4 frame (stream.c) holding, for a snapshot, the raw
 * database file at a consistent point and, for a WAL segment, the raw WAL
 * bytes [offset, end of a committed transaction).
 *
 * Parsing is exact, like Litestream's anchored regexes: anything that is not
 * one of the two shapes above is LS_KEY_OTHER and must be ignored by callers.
 * So are uppercase hex, a generation of 15 or 17 digits, a 7- or 9-digit
 * index or offset (an offset >= 4 GiB formats to 9 digits and would be
 * skipped by Litestream as well), an extra suffix such as ".tmp", a leading
 * '/', or a snapshot name under wal/ and the reverse.
 *
 * Positions print as "<gen>/<index %08x>:<offset decimal>", as Litestream
 * logs them (e.g. "d4f874b2c77394b2/00000000:16512").
 */
#define _GNU_SOURCE
#include "layout.h"
#include "litesafe.h"
#include "random.h"

#include <stdio.h>
#include <string.h>

#define ROOT_PREFIX "generations/"
#define SNAP_DIR "/snapshots/"
#define SNAP_SUFFIX ".snapshot.lz4"
#define WAL_DIR "/wal/"
#define WAL_SUFFIX ".wal.lz4"

/* 1 if c is a lowercase hex digit (the only digits the layout uses). */
static int is_lhex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/*
 * Parse exactly `n` lowercase hex digits at *p into *out and advance *p.
 * Returns 1, or 0 when a digit is missing or not lowercase hex. The caller
 * checks what follows, which is how 9-digit numbers are refused.
 */
static int take_hex(const char **p, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (*p)[i];
        if (!is_lhex(c))
            return 0;
        v = (v << 4) | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    *out = v;
    *p += n;
    return 1;
}

/* If s starts with lit, advance s past it and return 1. */
static int take_lit(const char **s, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n) != 0)
        return 0;
    *s += n;
    return 1;
}

int ls_layout_gen_new(char gen[LS_GEN_LEN + 1])
{
    return ls_random_hex(gen, LS_GEN_LEN / 2);
}

int ls_layout_is_gen(const char *s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < LS_GEN_LEN; i++) {
        if (!is_lhex(s[i]))
            return 0;
    }
    return s[LS_GEN_LEN] == '\0';
}

const char *ls_layout_root_prefix(void)
{
    return ROOT_PREFIX;
}

void ls_layout_gen_prefix(char *out, size_t n, const char *gen)
{
    snprintf(out, n, ROOT_PREFIX "%s/", gen);
}

void ls_layout_snapshots_prefix(char *out, size_t n, const char *gen)
{
    snprintf(out, n, ROOT_PREFIX "%s" SNAP_DIR, gen);
}

void ls_layout_wal_prefix(char *out, size_t n, const char *gen)
{
    snprintf(out, n, ROOT_PREFIX "%s" WAL_DIR, gen);
}

void ls_layout_snapshot_key(char *out, size_t n, const char *gen, uint32_t index)
{
    snprintf(out, n, ROOT_PREFIX "%s" SNAP_DIR "%08x" SNAP_SUFFIX, gen, index);
}

void ls_layout_wal_key(char *out, size_t n, const char *gen, uint32_t index, uint32_t offset)
{
    snprintf(out, n, ROOT_PREFIX "%s" WAL_DIR "%08x_%08x" WAL_SUFFIX, gen, index, offset);
}

/*
 * Parse a key relative to the replica root. Returns its kind; `out` (may be
 * NULL) is filled for the two layout kinds and zeroed for LS_KEY_OTHER.
 * Steps: "generations/", 16 hex + '/', then either the snapshot or the WAL
 * shape, each of which must reach the end of the string exactly.
 */
ls_key_kind ls_layout_parse(const char *key, ls_key *out)
{
    ls_key k;
    memset(&k, 0, sizeof(k));
    const char *p = key;

    if (!p || !take_lit(&p, ROOT_PREFIX))
        goto other;
    for (size_t i = 0; i < LS_GEN_LEN; i++) {
        if (!is_lhex(p[i]))
            goto other;
    }
    memcpy(k.gen, p, LS_GEN_LEN);
    k.gen[LS_GEN_LEN] = '\0';
    p += LS_GEN_LEN;

    if (take_lit(&p, SNAP_DIR)) {
        if (!take_hex(&p, 8, &k.index) || strcmp(p, SNAP_SUFFIX) != 0)
            goto other;
        k.kind = LS_KEY_SNAPSHOT;
    } else if (take_lit(&p, WAL_DIR)) {
        if (!take_hex(&p, 8, &k.index) || !take_lit(&p, "_") || !take_hex(&p, 8, &k.offset) ||
            strcmp(p, WAL_SUFFIX) != 0)
            goto other;
        k.kind = LS_KEY_WAL;
    } else {
        goto other;
    }
    if (out)
        *out = k;
    return k.kind;

other:
    if (out)
        memset(out, 0, sizeof(*out));
    return LS_KEY_OTHER;
}

void ls_layout_pos_str(char *out, size_t n, const char *gen, uint32_t index, uint64_t offset)
{
    snprintf(out, n, "%s/%08x:%llu", gen, index, (unsigned long long)offset);
}
