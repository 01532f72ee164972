/*
 * wal.h - the SQLite WAL file format: header and frame parsing, the checksum,
 * and an incremental scanner that finds the committed, checksum-valid frames.
 * The format itself is described at the top of wal.c.
 */
#ifndef LS_WAL_H
#define LS_WAL_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

#define LS_WAL_HDRSIZE 32
#define LS_WAL_FRAME_HDRSIZE 24
#define LS_WAL_MAGIC_LE 0x377f0682u
#define LS_WAL_MAGIC_BE 0x377f0683u
#define LS_WAL_VERSION 3007000u

/* The 32-byte WAL header, decoded. */
typedef struct ls_wal_hdr {
    uint32_t magic;      /* LS_WAL_MAGIC_LE or LS_WAL_MAGIC_BE */
    uint32_t version;    /* always 3007000 */
    uint32_t page_size;  /* bytes per page (the 65536 case is stored as 1) */
    uint32_t ckpt_seq;   /* checkpoint sequence number */
    uint32_t salt1;      /* salt-1: +1 at every WAL restart */
    uint32_t salt2;      /* salt-2: random at every WAL restart */
    uint32_t cksum[2];   /* checksum of the first 24 header bytes */
    int bigend;          /* checksum words are big-endian (magic & 1) */
} ls_wal_hdr;

/* A decoded 24-byte frame header. */
typedef struct ls_wal_frame_hdr {
    uint32_t pgno;       /* page number this frame holds */
    uint32_t commit;     /* database size in pages after commit, 0 if not a commit frame */
    uint32_t salt1, salt2;
    uint32_t cksum[2];   /* cumulative checksum through this frame */
} ls_wal_frame_hdr;

static inline uint32_t ls_get32be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void ls_put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * Continue SQLite's WAL checksum over `n` bytes (a multiple of 8) from s[0],s[1].
 * `bigend` selects the byte order of the 32-bit words.
 */
void ls_wal_checksum(int bigend, const uint8_t *data, size_t n, uint32_t s[2]);

/* Decode and validate a WAL header (magic, version, page size, checksum). 0 or LS_ECORRUPT. */
int ls_wal_hdr_decode(const uint8_t buf[LS_WAL_HDRSIZE], ls_wal_hdr *hdr);
/* Encode a header (the checksum is computed). */
void ls_wal_hdr_encode(const ls_wal_hdr *hdr, uint8_t buf[LS_WAL_HDRSIZE]);
void ls_wal_frame_hdr_decode(const uint8_t buf[LS_WAL_FRAME_HDRSIZE], ls_wal_frame_hdr *fh);

/*
 * Check one frame (header + page) against the running checksum `ck` (the
 * checksum after the previous frame, or the header's for the first frame) and
 * the header salts. On success `ck` advances to this frame's checksum and 1 is
 * returned; 0 means the frame is not part of this WAL (salt or checksum break).
 */
int ls_wal_frame_check(const ls_wal_hdr *hdr, const uint8_t *frame, uint32_t ck[2]);

/* Byte offset of frame number `iFrame` (1-based). */
static inline uint64_t ls_wal_frame_offset(uint32_t page_size, uint64_t iFrame)
{
    return LS_WAL_HDRSIZE + (iFrame - 1) * (uint64_t)(LS_WAL_FRAME_HDRSIZE + page_size);
}

/* One page's newest committed frame, as the scanner's page map keeps it. */
typedef struct ls_wal_page {
    uint32_t pgno;       /* page number (0: empty slot) */
    uint32_t frame;      /* 1-based frame number of the newest committed version */
    uint32_t prev_ck[2]; /* running checksum before that frame, to re-verify it on read */
} ls_wal_page;

/*
 * Incremental scanner. Call ls_wal_scan_fd() as often as wanted; each call
 * continues after the last commit frame seen so far. Only frames up to the
 * last commit frame count; the uncommitted tail is re-read next time, because
 * SQLite may overwrite it.
 */
typedef struct ls_wal_scan {
    ls_wal_hdr hdr;         /* header of the WAL being scanned */
    int have_hdr;           /* hdr is valid */
    uint32_t commit_ck[2];  /* running checksum after the last commit frame */
    uint64_t commit_frame;  /* 1-based number of the last commit frame, 0 if none */
    uint32_t commit_dbsize; /* database size in pages after that commit */
    uint64_t commits;       /* commit frames seen */
    uint32_t page1_frame;   /* newest committed frame of page 1 (map mode), 0 if none */
    int restarted;          /* set by scan_fd: the header on disk changed since last call */
    int want_map;           /* keep the page map below */
    uint64_t limit;         /* ignore frames after this one (0: no limit) */
    ls_wal_page *map;       /* open-addressing table of pages, NULL unless want_map */
    size_t map_cap;         /* slots in map (power of two) */
    size_t map_len;         /* used slots */
    ls_wal_page *pend;      /* frames of the transaction being read, not yet committed */
    size_t pend_len, pend_cap;
    uint8_t *buf;           /* read buffer */
    size_t buf_cap;
} ls_wal_scan;

void ls_wal_scan_init(ls_wal_scan *s, int want_map);
void ls_wal_scan_free(ls_wal_scan *s);
/* Forget everything (a new WAL), keeping the buffers. */
void ls_wal_scan_reset(ls_wal_scan *s);

/*
 * Read the WAL at `fd` from the last commit onward. A header that differs from
 * the one scanned before (a restart) resets the scan and sets s->restarted.
 * A file shorter than a header, or with an invalid header, leaves have_hdr 0.
 * Returns 0 or an I/O error.
 */
int ls_wal_scan_fd(ls_ctx *ctx, ls_wal_scan *s, int fd, const char *what);

/* Newest committed frame of `pgno`, or NULL. */
const ls_wal_page *ls_wal_scan_lookup(const ls_wal_scan *s, uint32_t pgno);

/*
 * The wal-index header at the start of the -shm file (see wal.c): what SQLite
 * itself takes as the end of the committed WAL.
 */
typedef struct ls_shm_info {
    uint32_t mx_frame;   /* last valid commit frame SQLite knows of */
    uint32_t n_page;     /* database size in pages at that frame */
    uint32_t n_backfill; /* frames already copied back into the database file */
    uint32_t page_size;  /* bytes per page */
    uint8_t salt[8];     /* the WAL header's salts, as bytes 16..23 of that header */
} ls_shm_info;

#define LS_SHM_HDRSIZE 136

/* Check and decode the first LS_SHM_HDRSIZE bytes of a wal-index (codes as below). */
int ls_shm_decode(const uint8_t buf[LS_SHM_HDRSIZE], ls_shm_info *out);

/*
 * Read and check the wal-index header from an open -shm file. Never use this
 * on a -shm that SQLite connections of this process have open: closing any
 * descriptor of a file drops every POSIX lock the process holds on it (see
 * ls_db_shm_info() in db.h instead). Returns 0,
 * LS_EBUSY when the two copies differ (a writer is updating it: read again
 * under a lock), LS_ECORRUPT when it is not initialised or fails its checksum.
 */
int ls_shm_read(ls_ctx *ctx, int fd, ls_shm_info *out);

#endif
