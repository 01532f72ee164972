/*
 * wal.c - reading SQLite's write-ahead log.
 *
 * THE WAL FILE FORMAT (SQLite 3.7.0 and later; see SQLite's src/wal.c)
 *
 * A WAL file is a 32-byte header followed by zero or more frames. All
 * integers are big-endian.
 *
 *   Header
 *   offset size  field
 *        0    4  magic: 0x377f0682 or 0x377f0683; the low bit says whether the
 *                checksum words below are read little-endian (0) or big-endian (1)
 *        4    4  format version, 3007000
 *        8    4  database page size
 *       12    4  checkpoint sequence number
 *       16    4  salt-1, incremented at every WAL restart
 *       20    4  salt-2, a fresh random value at every WAL restart
 *       24    4  checksum-1 over header bytes 0..23
 *       28    4  checksum-2
 *
 *   Frame: a 24-byte frame header, then one page
 *        0    4  page number
 *        4    4  for a commit frame, the database size in pages after the
 *                commit; 0 for every other frame
 *        8    4  salt-1, copied from the header
 *       12    4  salt-2, copied from the header
 *       16    4  checksum-1: cumulative over the header and every frame so far
 *       20    4  checksum-2
 *
 * The checksum. Take the bytes as 32-bit words x[0..n) in the byte order the
 * magic gives, start from (s0, s1) and for each pair of words:
 *       s0 += x[i] + s1;  s1 += x[i+1] + s0;      (mod 2^32)
 * The header's checksum starts from (0,0) over its first 24 bytes. Frame k
 * continues from frame k-1's checksum (the header's for the first frame) over
 * the first 8 bytes of its frame header, then over the page.
 *
 * Validity. A frame is valid when its salts equal the header's and its
 * checksum matches the running checksum; the valid frames are the longest run
 * of such frames from the start. Of those, only frames up to and including the
 * last commit frame hold committed data: frames after it belong to a
 * transaction that has not committed (or never will), and SQLite writes the
 * next transaction over them. When SQLite restarts the WAL it writes a new
 * header (salt-1 + 1, new salt-2, checkpoint sequence + 1) and new frames from
 * the start; old frames left further on fail the salt test.
 *
 * The WAL holds the newest version of a page: a reader that sees frames up to
 * N uses, for each page, the last frame <= N that holds it, and the database
 * file for pages in no such frame.
 *
 * THE WAL-INDEX HEADER (first 136 bytes of the -shm file; SQLite's walformat)
 *
 * Integers here are in the machine's native byte order.
 *   offset size  field
 *        0    4  iVersion, 3007000
 *        8    4  iChange, incremented by every transaction
 *       12    1  isInit, 1 once the index is built
 *       13    1  bigEndCksum: the WAL's checksum byte order
 *       14    2  page size (1 for 65536)
 *       16    4  mxFrame: the last valid commit frame; readers see up to here
 *       20    4  nPage: database size in pages
 *       24    8  checksum of the last frame
 *       32    8  the WAL header's salts, bytes as in the WAL header
 *       40    8  checksum (native order, from 0,0) of bytes 0..39
 *       48   48  a second copy of bytes 0..47; writers update copy 2 then
 *                copy 1, readers trust them only when both are equal
 *       96    4  nBackfill: frames already written back to the database file
 * A frame beyond mxFrame may carry valid checksums (a writer that died between
 * writing its commit frame and publishing it here): SQLite does not consider
 * it committed, so neither does litesafe when the index is available.
 */
#include "wal.h"

#include "fsutil.h"

#include <stdlib.h>
#include <string.h>

void ls_wal_checksum(int bigend, const uint8_t *data, size_t n, uint32_t s[2])
{
    uint32_t s0 = s[0], s1 = s[1];
    const uint8_t *end = data + n;
    if (bigend) {
        for (; data < end; data += 8) {
            s0 += ls_get32be(data) + s1;
            s1 += ls_get32be(data + 4) + s0;
        }
    } else {
        for (; data < end; data += 8) {
            uint32_t x0, x1;
            x0 = (uint32_t)data[0] | ((uint32_t)data[1] << 8) | ((uint32_t)data[2] << 16) |
                 ((uint32_t)data[3] << 24);
            x1 = (uint32_t)data[4] | ((uint32_t)data[5] << 8) | ((uint32_t)data[6] << 16) |
                 ((uint32_t)data[7] << 24);
            s0 += x0 + s1;
            s1 += x1 + s0;
        }
    }
    s[0] = s0;
    s[1] = s1;
}

static int page_size_ok(uint32_t sz)
{
    return sz >= 512 && sz <= 65536 && (sz & (sz - 1)) == 0;
}

int ls_wal_hdr_decode(const uint8_t buf[LS_WAL_HDRSIZE], ls_wal_hdr *hdr)
{
    memset(hdr, 0, sizeof(*hdr));
    hdr->magic = ls_get32be(buf);
    if (hdr->magic != LS_WAL_MAGIC_LE && hdr->magic != LS_WAL_MAGIC_BE)
        return LS_ECORRUPT;
    hdr->bigend = (int)(hdr->magic & 1);
    hdr->version = ls_get32be(buf + 4);
    hdr->page_size = ls_get32be(buf + 8);
    hdr->ckpt_seq = ls_get32be(buf + 12);
    hdr->salt1 = ls_get32be(buf + 16);
    hdr->salt2 = ls_get32be(buf + 20);
    hdr->cksum[0] = ls_get32be(buf + 24);
    hdr->cksum[1] = ls_get32be(buf + 28);
    if (hdr->version != LS_WAL_VERSION || !page_size_ok(hdr->page_size))
        return LS_ECORRUPT;
    uint32_t s[2] = {0, 0};
    ls_wal_checksum(hdr->bigend, buf, 24, s);
    if (s[0] != hdr->cksum[0] || s[1] != hdr->cksum[1])
        return LS_ECORRUPT;
    return 0;
}

void ls_wal_hdr_encode(const ls_wal_hdr *hdr, uint8_t buf[LS_WAL_HDRSIZE])
{
    ls_put32be(buf, hdr->magic);
    ls_put32be(buf + 4, hdr->version);
    ls_put32be(buf + 8, hdr->page_size);
    ls_put32be(buf + 12, hdr->ckpt_seq);
    ls_put32be(buf + 16, hdr->salt1);
    ls_put32be(buf + 20, hdr->salt2);
    uint32_t s[2] = {0, 0};
    ls_wal_checksum((int)(hdr->magic & 1), buf, 24, s);
    ls_put32be(buf + 24, s[0]);
    ls_put32be(buf + 28, s[1]);
}

void ls_wal_frame_hdr_decode(const uint8_t buf[LS_WAL_FRAME_HDRSIZE], ls_wal_frame_hdr *fh)
{
    fh->pgno = ls_get32be(buf);
    fh->commit = ls_get32be(buf + 4);
    fh->salt1 = ls_get32be(buf + 8);
    fh->salt2 = ls_get32be(buf + 12);
    fh->cksum[0] = ls_get32be(buf + 16);
    fh->cksum[1] = ls_get32be(buf + 20);
}

int ls_wal_frame_check(const ls_wal_hdr *hdr, const uint8_t *frame, uint32_t ck[2])
{
    ls_wal_frame_hdr fh;
    ls_wal_frame_hdr_decode(frame, &fh);
    if (fh.pgno == 0 || fh.salt1 != hdr->salt1 || fh.salt2 != hdr->salt2)
        return 0;
    uint32_t s[2] = {ck[0], ck[1]};
    ls_wal_checksum(hdr->bigend, frame, 8, s);
    ls_wal_checksum(hdr->bigend, frame + LS_WAL_FRAME_HDRSIZE, hdr->page_size, s);
    if (s[0] != fh.cksum[0] || s[1] != fh.cksum[1])
        return 0;
    ck[0] = s[0];
    ck[1] = s[1];
    return 1;
}

/* ---- page map: open addressing on the page number ---- */

static size_t map_slot(uint32_t pgno, size_t cap)
{
    return (size_t)((pgno * 2654435761u) & (uint32_t)(cap - 1));
}

static int map_grow(ls_wal_scan *s)
{
    size_t ncap = s->map_cap ? s->map_cap * 2 : 1024;
    ls_wal_page *nmap = calloc(ncap, sizeof(*nmap));
    if (!nmap)
        return LS_ENOMEM;
    for (size_t i = 0; i < s->map_cap; i++) {
        if (!s->map[i].pgno)
            continue;
        size_t j = map_slot(s->map[i].pgno, ncap);
        while (nmap[j].pgno)
            j = (j + 1) & (ncap - 1);
        nmap[j] = s->map[i];
    }
    free(s->map);
    s->map = nmap;
    s->map_cap = ncap;
    return 0;
}

static int map_put(ls_wal_scan *s, const ls_wal_page *pg)
{
    if ((s->map_len + 1) * 2 > s->map_cap) {
        int rc = map_grow(s);
        if (rc)
            return rc;
    }
    size_t j = map_slot(pg->pgno, s->map_cap);
    while (s->map[j].pgno && s->map[j].pgno != pg->pgno)
        j = (j + 1) & (s->map_cap - 1);
    if (!s->map[j].pgno)
        s->map_len++;
    s->map[j] = *pg;
    return 0;
}

const ls_wal_page *ls_wal_scan_lookup(const ls_wal_scan *s, uint32_t pgno)
{
    if (!s->map_cap)
        return NULL;
    size_t j = map_slot(pgno, s->map_cap);
    while (s->map[j].pgno) {
        if (s->map[j].pgno == pgno)
            return &s->map[j];
        j = (j + 1) & (s->map_cap - 1);
    }
    return NULL;
}

/* ---- scanner ---- */

void ls_wal_scan_init(ls_wal_scan *s, int want_map)
{
    memset(s, 0, sizeof(*s));
    s->want_map = want_map;
}

void ls_wal_scan_free(ls_wal_scan *s)
{
    free(s->map);
    free(s->pend);
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

void ls_wal_scan_reset(ls_wal_scan *s)
{
    memset(&s->hdr, 0, sizeof(s->hdr));
    s->have_hdr = 0;
    s->commit_ck[0] = s->commit_ck[1] = 0;
    s->commit_frame = 0;
    s->commit_dbsize = 0;
    s->commits = 0;
    s->page1_frame = 0;
    if (s->map)
        memset(s->map, 0, s->map_cap * sizeof(*s->map));
    s->map_len = 0;
    s->pend_len = 0;
}

static int pend_add(ls_wal_scan *s, uint32_t pgno, uint32_t frame, const uint32_t prev[2])
{
    if (s->pend_len == s->pend_cap) {
        size_t ncap = s->pend_cap ? s->pend_cap * 2 : 256;
        ls_wal_page *n = realloc(s->pend, ncap * sizeof(*n));
        if (!n)
            return LS_ENOMEM;
        s->pend = n;
        s->pend_cap = ncap;
    }
    ls_wal_page *p = &s->pend[s->pend_len++];
    p->pgno = pgno;
    p->frame = frame;
    p->prev_ck[0] = prev[0];
    p->prev_ck[1] = prev[1];
    return 0;
}

static int hdr_same(const ls_wal_hdr *a, const ls_wal_hdr *b)
{
    return a->magic == b->magic && a->page_size == b->page_size && a->ckpt_seq == b->ckpt_seq &&
           a->salt1 == b->salt1 && a->salt2 == b->salt2 && a->cksum[0] == b->cksum[0] &&
           a->cksum[1] == b->cksum[1];
}

int ls_wal_scan_fd(ls_ctx *ctx, ls_wal_scan *s, int fd, const char *what)
{
    uint8_t hbuf[LS_WAL_HDRSIZE];
    size_t got = 0;
    ls_wal_hdr hdr;
    int rc;

    s->restarted = 0;
    s->pend_len = 0;
    rc = ls_pread_full(ctx, fd, hbuf, sizeof(hbuf), 0, &got, what);
    if (rc)
        return rc;
    if (got < sizeof(hbuf) || ls_wal_hdr_decode(hbuf, &hdr) != 0) {
        if (s->have_hdr)
            s->restarted = 1;
        ls_wal_scan_reset(s);
        return 0;
    }
    if (s->have_hdr && !hdr_same(&s->hdr, &hdr)) {
        s->restarted = 1;
        ls_wal_scan_reset(s);
    }
    if (!s->have_hdr) {
        s->hdr = hdr;
        s->have_hdr = 1;
        s->commit_ck[0] = hdr.cksum[0];
        s->commit_ck[1] = hdr.cksum[1];
    }

    /* 1. Read whole frames in chunks of about 1 MiB, from after the last commit. */
    const size_t szFrame = LS_WAL_FRAME_HDRSIZE + s->hdr.page_size;
    size_t nPer = (1u << 20) / szFrame;
    if (nPer < 1)
        nPer = 1;
    if (s->buf_cap < nPer * szFrame) {
        free(s->buf);
        s->buf = malloc(nPer * szFrame);
        if (!s->buf) {
            s->buf_cap = 0;
            return ls_err(ctx, LS_ENOMEM, "out of memory");
        }
        s->buf_cap = nPer * szFrame;
    }
    uint32_t ck[2] = {s->commit_ck[0], s->commit_ck[1]};
    uint64_t iFrame = s->commit_frame + 1;
    for (;;) {
        off_t off = (off_t)ls_wal_frame_offset(s->hdr.page_size, iFrame);
        rc = ls_pread_full(ctx, fd, s->buf, nPer * szFrame, off, &got, what);
        if (rc)
            return rc;
        size_t nFrames = got / szFrame;
        size_t i;
        /* 2. Check each frame; stop at the first that breaks the chain. */
        for (i = 0; i < nFrames; i++, iFrame++) {
            const uint8_t *f = s->buf + i * szFrame;
            uint32_t prev[2] = {ck[0], ck[1]};
            if (!ls_wal_frame_check(&s->hdr, f, ck))
                return 0;
            if (iFrame > UINT32_MAX || (s->limit && iFrame > s->limit))
                return 0; /* SQLite's own frame limit is far lower than 2^32 */
            if (s->want_map && (rc = pend_add(s, ls_get32be(f), (uint32_t)iFrame, prev)) != 0)
                return ls_err(ctx, rc, "out of memory");
            uint32_t commit = ls_get32be(f + 4);
            if (!commit)
                continue;
            /* 3. A commit frame: the transaction's frames become visible. */
            if (s->want_map) {
                for (size_t k = 0; k < s->pend_len; k++) {
                    if ((rc = map_put(s, &s->pend[k])) != 0)
                        return ls_err(ctx, rc, "out of memory");
                    if (s->pend[k].pgno == 1)
                        s->page1_frame = s->pend[k].frame;
                }
                s->pend_len = 0;
            }
            s->commit_frame = iFrame;
            s->commit_ck[0] = ck[0];
            s->commit_ck[1] = ck[1];
            s->commit_dbsize = commit;
            s->commits++;
        }
        if (nFrames < nPer)
            return 0;
    }
}

/* ---- the wal-index header ---- */

static uint32_t get32ne(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

int ls_shm_decode(const uint8_t buf[LS_SHM_HDRSIZE], ls_shm_info *out)
{
    if (memcmp(buf, buf + 48, 48) != 0)
        return LS_EBUSY;
    if (get32ne(buf) != LS_WAL_VERSION || buf[12] != 1)
        return LS_ECORRUPT;
    /* The index checksum runs over native-order words. */
    uint32_t s0 = 0, s1 = 0;
    for (int i = 0; i < 40; i += 8) {
        s0 += get32ne(buf + i) + s1;
        s1 += get32ne(buf + i + 4) + s0;
    }
    if (s0 != get32ne(buf + 40) || s1 != get32ne(buf + 44))
        return LS_ECORRUPT;
    uint16_t sz;
    memcpy(&sz, buf + 14, 2);
    out->page_size = sz == 1 ? 65536u : sz;
    out->mx_frame = get32ne(buf + 16);
    out->n_page = get32ne(buf + 20);
    memcpy(out->salt, buf + 32, 8);
    out->n_backfill = get32ne(buf + 96);
    return 0;
}

int ls_shm_read(ls_ctx *ctx, int fd, ls_shm_info *out)
{
    uint8_t buf[LS_SHM_HDRSIZE];
    size_t got = 0;
    int rc = ls_pread_full(ctx, fd, buf, sizeof(buf), 0, &got, "wal-index");
    if (rc)
        return rc;
    if (got < sizeof(buf))
        return LS_ECORRUPT;
    return ls_shm_decode(buf, out);
}
