/*
 * layout.h - the replica layout, shared with Litestream 0.3: the only code
 * that builds or parses object keys. The format is described in layout.c.
 */
#ifndef LS_LAYOUT_H
#define LS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define LS_GEN_LEN 16
/* Room for any key built here ("generations/<16>/wal/<8>_<8>.wal.lz4" is 58). */
#define LS_LAYOUT_KEY_MAX 64
/* Room for a position string ("<16>/<8>:<20 digits>" is 46). */
#define LS_LAYOUT_POS_MAX 48

typedef enum {
    LS_KEY_OTHER = 0,   /* not part of the layout: ignored */
    LS_KEY_SNAPSHOT,    /* generations/<gen>/snapshots/<index>.snapshot.lz4 */
    LS_KEY_WAL          /* generations/<gen>/wal/<index>_<offset>.wal.lz4 */
} ls_key_kind;

/* A parsed key. */
typedef struct ls_key {
    ls_key_kind kind;
    char gen[LS_GEN_LEN + 1]; /* 16 lowercase hex characters */
    uint32_t index;           /* WAL index */
    uint32_t offset;          /* byte offset in that index's WAL (WAL keys only) */
} ls_key;

/* A new random generation name (16 lowercase hex). Returns 0 or LS_EIO. */
int ls_layout_gen_new(char gen[LS_GEN_LEN + 1]);
/* 1 if s is exactly 16 lowercase hex characters. */
int ls_layout_is_gen(const char *s);
/* "generations/" */
const char *ls_layout_root_prefix(void);
/* "generations/<gen>/" */
void ls_layout_gen_prefix(char *out, size_t n, const char *gen);
/* "generations/<gen>/snapshots/" and "generations/<gen>/wal/" (list prefixes). */
void ls_layout_snapshots_prefix(char *out, size_t n, const char *gen);
void ls_layout_wal_prefix(char *out, size_t n, const char *gen);
void ls_layout_snapshot_key(char *out, size_t n, const char *gen, uint32_t index);
void ls_layout_wal_key(char *out, size_t n, const char *gen, uint32_t index, uint32_t offset);
/*
 * Parse a key relative to the replica root. Anything else is LS_KEY_OTHER
 * (and *out, which may be NULL, is zeroed).
 */
ls_key_kind ls_layout_parse(const char *key, ls_key *out);
/* "<gen>/<index %08x>:<offset>" as Litestream prints positions. */
void ls_layout_pos_str(char *out, size_t n, const char *gen, uint32_t index, uint64_t offset);

#endif
