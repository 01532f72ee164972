/*
 * test_stream.c - LZ4 frame pipelines and the plain readers/writers:
 * roundtrips at block boundaries with odd chunk sizes on both sides, the
 * exact FLG/BD bytes we write, interop with the lz4 command-line tool in
 * both directions (4 MiB blocks, linked blocks, content size, block
 * checksums, no content checksum), and every failure: truncation, checksum
 * mismatch, bad magic, empty input, trailing garbage, failing source/sink;
 * the growing buffer (io.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "io.h"
#include "stream.h"
#include "unit_files.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LZ4_CLI "/usr/bin/lz4"

typedef struct fixture {
    char dir[64]; /* temp directory for files shared with the lz4 tool */
    ls_ctx *ctx;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/ls-unit-stream-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ls_ctx_new(&f->ctx), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    ls_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* ---- data and helpers ---- */

/* n bytes: runs of text (compressible) mixed with xorshift noise when `noisy`. */
static uint8_t *make_data(size_t n, int noisy, uint32_t seed)
{
    static const char text[] = "INSERT INTO t VALUES(42, 'litesafe keeps SQLite safe'); ";
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = noisy && (i / 4096) % 2 ? (uint8_t)x : (uint8_t)text[i % (sizeof(text) - 1)];
    }
    return p;
}

/* Chunk sizes cycled by the odd readers and writers below. */
static const size_t odd_sizes[] = {1, 7, 4093, 65536, 3, 100000, 65535, 17};
#define N_ODD (sizeof(odd_sizes) / sizeof(odd_sizes[0]))

/* A reader over memory that returns odd-sized pieces. */
typedef struct odd_src {
    const uint8_t *p;
    size_t n, pos, turn;
} odd_src;

static int64_t odd_read(void *ud, uint8_t *buf, size_t n)
{
    odd_src *s = ud;
    size_t k = odd_sizes[s->turn++ % N_ODD];
    if (k > n)
        k = n;
    if (k > s->n - s->pos)
        k = s->n - s->pos;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    return (int64_t)k;
}

/* A sink that collects into an ls_buf and records the largest chunk. */
typedef struct sink {
    ls_buf b;
    size_t max_chunk;
    int fail_code; /* nonzero: fail every write with this */
} sink;

static int sink_write(void *ud, const uint8_t *p, size_t n)
{
    sink *k = ud;
    ls_writer w;
    if (k->fail_code)
        return k->fail_code;
    if (n > k->max_chunk)
        k->max_chunk = n;
    ls_writer_buf(&w, &k->b);
    return w.write(w.ud, p, n);
}

/* Compress with the streaming reader, pulling with odd request sizes. */
static void compress_stream(ls_ctx *ctx, const uint8_t *in, size_t n, ls_buf *out)
{
    odd_src src = {in, n, 0, 0};
    ls_reader r = {odd_read, &src, (int64_t)n}, zr;
    ls_lz4_reader *z = NULL;
    uint8_t buf[100001];
    size_t turn = 3;
    assert_int_equal(ls_lz4_reader_new(ctx, &r, &z, &zr), 0);
    assert_int_equal(zr.size, -1);
    for (;;) {
        size_t want = odd_sizes[turn++ % N_ODD];
        int64_t got = zr.read(zr.ud, buf, want);
        assert_true(got >= 0 && (size_t)got <= want);
        if (got == 0)
            break;
        ls_writer w;
        ls_writer_buf(&w, out);
        assert_int_equal(w.write(w.ud, buf, (size_t)got), 0);
    }
    /* After the end, reads keep returning 0. */
    assert_int_equal(zr.read(zr.ud, buf, 10), 0);
    ls_lz4_reader_free(z);
}

/*
 * Decompress by feeding the writer odd-sized chunks; returns the code of
 * the first failing call (write or finish). The output lands in k.
 */
static int decompress_stream(ls_ctx *ctx, const uint8_t *in, size_t n, sink *k)
{
    ls_writer dst = {sink_write, k}, zw;
    ls_lz4_writer *z = NULL;
    size_t pos = 0, turn = 0;
    int rc = 0;
    assert_int_equal(ls_lz4_writer_new(ctx, &dst, &z, &zw), 0);
    while (pos < n && !rc) {
        size_t c = odd_sizes[turn++ % N_ODD];
        if (c > n - pos)
            c = n - pos;
        rc = zw.write(zw.ud, in + pos, c);
        pos += c;
    }
    if (!rc)
        rc = ls_lz4_writer_finish(z);
    ls_lz4_writer_free(z);
    return rc;
}

static void run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

/* ---- tests ---- */

static void test_frame_header_bits(void **state)
{
    fixture *f = *state;
    uint8_t *data = make_data(200000, 1, 7);
    ls_buf z = {0};
    compress_stream(f->ctx, data, 200000, &z);
    assert_true(z.n > 7);
    /* magic 0x184D2204, little-endian */
    assert_int_equal(z.p[0], 0x04);
    assert_int_equal(z.p[1], 0x22);
    assert_int_equal(z.p[2], 0x4d);
    assert_int_equal(z.p[3], 0x18);
    uint8_t flg = z.p[4], bd = z.p[5];
    assert_int_equal(flg >> 6, 1);       /* version 01 */
    assert_int_equal((flg >> 5) & 1, 0); /* linked blocks: a 64 KiB window across blocks */
    assert_int_equal((flg >> 4) & 1, 0); /* no block checksum (Litestream refuses it) */
    assert_int_equal((flg >> 3) & 1, 0); /* no content size */
    assert_int_equal((flg >> 2) & 1, 1); /* content checksum */
    assert_int_equal((flg >> 1) & 1, 0); /* reserved */
    assert_int_equal(flg & 1, 0);        /* no dictionary id */
    assert_int_equal(flg, 0x44);
    assert_int_equal((bd >> 4) & 7, 4); /* 64 KiB blocks */
    assert_int_equal(bd & 0x8f, 0);     /* reserved bits */
    assert_int_equal(bd, 0x40);
    /* Ends with an end mark (4 zero bytes) and the 4-byte content checksum. */
    assert_memory_equal(z.p + z.n - 8, "\0\0\0\0", 4);
    ls_buf_free(&z);
    free(data);
}

static void test_roundtrip_sizes(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {0, 1, 100, 65535, 65536, 65537, 200000, (1 << 20) + 1};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int noisy = 0; noisy < 2; noisy++) {
            size_t n = sizes[i];
            uint8_t *data = make_data(n, noisy, (uint32_t)(i + 1));
            ls_buf z = {0};
            sink out = {0};
            compress_stream(f->ctx, data, n, &z);
            if (decompress_stream(f->ctx, z.p, z.n, &out) != 0)
                fail_msg("size %zu noisy %d: %s", n, noisy, ls_errmsg(f->ctx));
            assert_int_equal(out.b.n, n);
            if (n)
                assert_memory_equal(out.b.p, data, n);
            assert_true(out.max_chunk <= 65536);
            ls_buf_free(&z);
            ls_buf_free(&out.b);
            free(data);
        }
    }
}

static void test_lz4_cli_reads_ours(void **state)
{
    fixture *f = *state;
    size_t n = 3 * (1 << 20) + 1, got = 0;
    uint8_t *data = make_data(n, 1, 99), *zp = NULL, *back;
    size_t zn = 0;
    char in[128], out[128], cmd[400];
    assert_int_equal(ls_lz4_compress_buf(f->ctx, data, n, &zp, &zn), 0);
    snprintf(in, sizeof(in), "%s/ours.lz4", f->dir);
    snprintf(out, sizeof(out), "%s/ours.out", f->dir);
    write_file(in, zp, zn);
    snprintf(cmd, sizeof(cmd), LZ4_CLI " -d -q -c %s > %s", in, out);
    run(cmd);
    back = read_file(out, &got);
    assert_int_equal(got, n);
    assert_memory_equal(back, data, n);
    /* The tool's own integrity test (content checksum) passes too. */
    snprintf(cmd, sizeof(cmd), LZ4_CLI " -t -q %s", in);
    run(cmd);
    free(back);
    free(zp);
    free(data);
}

/* Frames made by the lz4 tool, each checked for the header feature it must have. */
static void test_we_read_lz4_cli_frames(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *flags; /* lz4 options */
        uint8_t flg_mask;  /* FLG bits that must ... */
        uint8_t flg_want;  /* ... have these values */
        uint8_t bd;        /* expected BD */
    } cases[] = {
        {"-B7", 0xff, 0x64, 0x70},                /* exactly Litestream's header */
        {"-B7 --content-size", 0x08, 0x08, 0x70}, /* content size field */
        {"-B4 -BD", 0x20, 0x00, 0x40},            /* linked blocks */
        {"-B5 -BX", 0x10, 0x10, 0x50},            /* block checksums */
        {"-B6 --no-frame-crc", 0x04, 0x00, 0x60}, /* no content checksum */
        {"-B7 -BD -BX --content-size -9", 0x3c, 0x1c, 0x70},
    };
    size_t n = 5 * (1 << 20) + 17;
    uint8_t *data = make_data(n, 1, 5);
    char in[128], out[128], cmd[512];
    snprintf(in, sizeof(in), "%s/data", f->dir);
    write_file(in, data, n);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t zn = 0;
        sink dec = {0};
        snprintf(out, sizeof(out), "%s/cli%zu.lz4", f->dir, i);
        snprintf(cmd, sizeof(cmd), LZ4_CLI " -q -f %s -c %s > %s", cases[i].flags, in, out);
        run(cmd);
        uint8_t *z = read_file(out, &zn);
        assert_true(zn > 7);
        if ((z[4] & cases[i].flg_mask) != cases[i].flg_want || z[5] != cases[i].bd)
            fail_msg("lz4 %s: FLG 0x%02x BD 0x%02x", cases[i].flags, z[4], z[5]);
        int rc = decompress_stream(f->ctx, z, zn, &dec);
        if (rc)
            fail_msg("lz4 %s: %s", cases[i].flags, ls_errmsg(f->ctx));
        assert_int_equal(dec.b.n, n);
        assert_memory_equal(dec.b.p, data, n);
        assert_true(dec.max_chunk <= 65536);
        /* The one-shot helper reads it too. */
        uint8_t *p = NULL;
        size_t pn = 0;
        assert_int_equal(ls_lz4_decompress_buf(f->ctx, z, zn, &p, &pn), 0);
        assert_int_equal(pn, n);
        free(p);
        ls_buf_free(&dec.b);
        free(z);
    }
    free(data);
}

static void test_concatenated_frames(void **state)
{
    fixture *f = *state;
    uint8_t *a = make_data(70000, 1, 1), *b = make_data(1000, 0, 2);
    ls_buf z = {0};
    sink out = {0};
    compress_stream(f->ctx, a, 70000, &z);
    compress_stream(f->ctx, b, 1000, &z);
    assert_int_equal(decompress_stream(f->ctx, z.p, z.n, &out), 0);
    assert_int_equal(out.b.n, 71000);
    assert_memory_equal(out.b.p, a, 70000);
    assert_memory_equal(out.b.p + 70000, b, 1000);
    ls_buf_free(&z);
    ls_buf_free(&out.b);
    free(a);
    free(b);
}

static void test_truncated(void **state)
{
    fixture *f = *state;
    uint8_t *data = make_data(3000, 1, 3), *z = NULL;
    size_t zn = 0;
    assert_int_equal(ls_lz4_compress_buf(f->ctx, data, 3000, &z, &zn), 0);
    for (size_t cut = 1; cut < zn; cut++) {
        sink out = {0};
        int rc = decompress_stream(f->ctx, z, cut, &out);
        if (rc != LS_ECORRUPT || !strstr(ls_errmsg(f->ctx), "truncated LZ4 frame"))
            fail_msg("cut at %zu of %zu: rc %d: %s", cut, zn, rc, ls_errmsg(f->ctx));
        ls_buf_free(&out.b);
    }
    free(z);
    free(data);
}

static void test_content_checksum_mismatch(void **state)
{
    fixture *f = *state;
    /* Noise does not compress: the block is stored raw, so a flipped byte
     * still decodes and only the content checksum can catch it. */
    size_t n = 10000, zn = 0;
    uint8_t *data = malloc(n), *z = NULL;
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 16);
    }
    assert_int_equal(ls_lz4_compress_buf(f->ctx, data, n, &z, &zn), 0);
    assert_true(z[7 + 3] & 0x80); /* block size word, high bit: stored uncompressed */
    z[7 + 4 + 5000] ^= 0x01;
    sink out = {0};
    assert_int_equal(decompress_stream(f->ctx, z, zn, &out), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "content checksum"));
    ls_buf_free(&out.b);
    free(z);
    free(data);
}

static void test_corrupt_block_and_header(void **state)
{
    fixture *f = *state;
    uint8_t *data = make_data(50000, 0, 4), *z = NULL;
    size_t zn = 0;
    assert_int_equal(ls_lz4_compress_buf(f->ctx, data, 50000, &z, &zn), 0);
    uint8_t *bad = malloc(zn);

    /* Compressed block bytes overwritten. */
    memcpy(bad, z, zn);
    memset(bad + 11, 0xff, zn - 11 - 16 > 64 ? 64 : zn - 11 - 16);
    sink out = {0};
    assert_int_equal(decompress_stream(f->ctx, bad, zn, &out), LS_ECORRUPT);
    ls_buf_free(&out.b);

    /* Header checksum byte. */
    memcpy(bad, z, zn);
    bad[6] ^= 0x40;
    assert_int_equal(decompress_stream(f->ctx, bad, zn, &out), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "header checksum"));
    ls_buf_free(&out.b);

    free(bad);
    free(z);
    free(data);
}

static void test_bad_magic_and_garbage(void **state)
{
    fixture *f = *state;
    static const char *inputs[] = {
        "this is not an LZ4 frame at all",
        "age-encryption.org/v1\n-> X25519 abc\n", /* an encrypted object */
        "SQLite format 3",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        sink out = {0};
        assert_int_equal(
            decompress_stream(f->ctx, (const uint8_t *)inputs[i], strlen(inputs[i]), &out),
            LS_ECORRUPT);
        assert_non_null(strstr(ls_errmsg(f->ctx), "bad magic"));
        assert_int_equal(out.b.n, 0);
    }
    /* The one-shot helper fails the same way and returns nothing. */
    uint8_t *p = (uint8_t *)"x";
    size_t pn = 9;
    assert_int_equal(ls_lz4_decompress_buf(f->ctx, inputs[0], strlen(inputs[0]), &p, &pn),
                     LS_ECORRUPT);
    assert_null(p);
    assert_int_equal(pn, 0);
}

static void test_empty_input_and_trailing_garbage(void **state)
{
    fixture *f = *state;
    sink out = {0};
    uint8_t *z = NULL;
    size_t zn = 0;

    assert_int_equal(decompress_stream(f->ctx, NULL, 0, &out), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "no frame"));

    /* An empty frame is fine: it decodes to nothing. */
    assert_int_equal(ls_lz4_compress_buf(f->ctx, "", 0, &z, &zn), 0);
    assert_true(zn >= 11);
    assert_int_equal(decompress_stream(f->ctx, z, zn, &out), 0);
    assert_int_equal(out.b.n, 0);

    /* A frame, then bytes that are no frame. */
    uint8_t *more = malloc(zn + 8);
    memcpy(more, z, zn);
    memcpy(more + zn, "garbage!", 8);
    assert_int_equal(decompress_stream(f->ctx, more, zn + 8, &out), LS_ECORRUPT);
    /* ... or the start of a frame that never comes. */
    assert_int_equal(decompress_stream(f->ctx, more, zn + 2, &out), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "truncated"));
    free(more);
    free(z);
    ls_buf_free(&out.b);
}

static void test_errors_are_sticky(void **state)
{
    fixture *f = *state;
    sink out = {0};
    ls_writer dst = {sink_write, &out}, zw;
    ls_lz4_writer *z = NULL;
    uint8_t *frame = NULL;
    size_t fn = 0;
    assert_int_equal(ls_lz4_compress_buf(f->ctx, "hello", 5, &frame, &fn), 0);

    assert_int_equal(ls_lz4_writer_new(f->ctx, &dst, &z, &zw), 0);
    assert_int_equal(zw.write(zw.ud, (const uint8_t *)"nope, no frame", 14), LS_ECORRUPT);
    /* A valid frame afterwards does not revive the stream. */
    assert_int_equal(zw.write(zw.ud, frame, fn), LS_ECORRUPT);
    assert_int_equal(ls_lz4_writer_finish(z), LS_ECORRUPT);
    assert_int_equal(out.b.n, 0);
    ls_lz4_writer_free(z);

    /* A failing sink's code comes back, and stays. */
    out.fail_code = LS_ENOSPC;
    assert_int_equal(ls_lz4_writer_new(f->ctx, &dst, &z, &zw), 0);
    assert_int_equal(zw.write(zw.ud, frame, fn), LS_ENOSPC);
    assert_int_equal(ls_lz4_writer_finish(z), LS_ENOSPC);
    ls_lz4_writer_free(z);
    free(frame);
    ls_buf_free(&out.b);
}

/* A source that yields 100000 bytes, then fails with LS_EIO. */
static int64_t failing_read(void *ud, uint8_t *buf, size_t n)
{
    size_t *left = ud;
    if (*left == 0)
        return LS_EIO;
    if (n > *left)
        n = *left;
    memset(buf, 'a', n);
    *left -= n;
    return (int64_t)n;
}

static void test_source_failure(void **state)
{
    fixture *f = *state;
    size_t left = 100000;
    ls_reader src = {failing_read, &left, -1}, zr;
    ls_lz4_reader *z = NULL;
    ls_buf b = {0};
    ls_writer w;
    ls_writer_buf(&w, &b);
    assert_int_equal(ls_lz4_reader_new(f->ctx, &src, &z, &zr), 0);
    assert_int_equal(ls_copy(f->ctx, &zr, &w, NULL), LS_EIO);
    assert_non_null(strstr(ls_errmsg(f->ctx), "read failed"));
    uint8_t buf[16];
    assert_int_equal(zr.read(zr.ud, buf, sizeof(buf)), LS_EIO);
    ls_lz4_reader_free(z);
    ls_buf_free(&b);
}

static void test_fd_range_reader(void **state)
{
    fixture *f = *state;
    char path[128];
    uint8_t *data = make_data(10000, 1, 8);
    snprintf(path, sizeof(path), "%s/range", f->dir);
    write_file(path, data, 10000);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);

    ls_fd_range st;
    ls_reader r;
    ls_buf b = {0};
    ls_writer w;
    uint64_t copied = 0;
    ls_writer_buf(&w, &b);
    ls_reader_fd_range(&r, &st, f->ctx, fd, 100, 5000);
    assert_int_equal(r.size, 4900);
    assert_int_equal(ls_copy(f->ctx, &r, &w, &copied), 0);
    assert_int_equal(copied, 4900);
    assert_int_equal(b.n, 4900);
    assert_memory_equal(b.p, data + 100, 4900);

    /* Empty range. */
    ls_reader_fd_range(&r, &st, f->ctx, fd, 300, 300);
    assert_int_equal(ls_copy(f->ctx, &r, &w, &copied), 0);
    assert_int_equal(copied, 0);

    /* The file ends before the range does. */
    ls_reader_fd_range(&r, &st, f->ctx, fd, 9000, 12000);
    st.what = path;
    assert_int_equal(ls_copy(f->ctx, &r, &w, &copied), LS_EIO);
    assert_int_equal(copied, 1000);
    assert_non_null(strstr(ls_errmsg(f->ctx), "unexpected end of file"));
    assert_non_null(strstr(ls_errmsg(f->ctx), path));

    close(fd);
    ls_buf_free(&b);
    free(data);
}

static void test_writer_fd_and_mem_reader(void **state)
{
    fixture *f = *state;
    char path[128];
    size_t n = 300001, got = 0;
    uint8_t *data = make_data(n, 1, 9);
    snprintf(path, sizeof(path), "%s/out", f->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    ls_mem_src ms;
    ls_reader r;
    ls_writer w;
    ls_reader_mem(&r, &ms, data, n);
    assert_int_equal(r.size, (int64_t)n);
    ls_writer_fd(&w, &fd);
    assert_int_equal(ls_copy(f->ctx, &r, &w, NULL), 0);
    close(fd);
    uint8_t *back = read_file(path, &got);
    assert_int_equal(got, n);
    assert_memory_equal(back, data, n);
    free(back);

    /* A writer on a closed descriptor fails with a code. */
    int bad = -1;
    ls_reader_mem(&r, &ms, data, 10);
    ls_writer_fd(&w, &bad);
    assert_int_equal(ls_copy(f->ctx, &r, &w, NULL), LS_EIO);
    assert_non_null(strstr(ls_errmsg(f->ctx), "write failed"));
    free(data);
}

static void test_copy_cancel(void **state)
{
    fixture *f = *state;
    ls_mem_src ms;
    ls_reader r;
    ls_buf b = {0};
    ls_writer w;
    ls_reader_mem(&r, &ms, "abc", 3);
    ls_writer_buf(&w, &b);
    ls_ctx_cancel(f->ctx);
    assert_int_equal(ls_copy(f->ctx, &r, &w, NULL), LS_ECANCEL);
    assert_int_equal(b.n, 0);
}

static void test_oneshot(void **state)
{
    fixture *f = *state;
    size_t n = 500000, zn = 0, bn = 0;
    uint8_t *data = make_data(n, 1, 10), *z = NULL, *back = NULL;
    assert_int_equal(ls_lz4_compress_buf(f->ctx, data, n, &z, &zn), 0);
    assert_true(zn < n);
    assert_int_equal(z[4], 0x44);
    assert_int_equal(z[5], 0x40);
    assert_int_equal(ls_lz4_decompress_buf(f->ctx, z, zn, &back, &bn), 0);
    assert_int_equal(bn, n);
    assert_memory_equal(back, data, n);
    free(back);
    free(z);
    free(data);
}

/* ls_buf_add keeps a NUL after the bytes; the writer leaves an empty buffer unallocated. */
static void test_buf_add(void **state)
{
    (void)state;
    ls_buf b = {0};
    ls_writer w;
    ls_writer_buf(&w, &b);
    assert_int_equal(w.write(w.ud, (const uint8_t *)"", 0), 0);
    assert_null(b.p); /* an empty object stays NULL (ls_storage_get_buf) */
    assert_int_equal(ls_buf_add(&b, "", 0), 0);
    assert_non_null(b.p);
    assert_string_equal((char *)b.p, "");
    for (int i = 0; i < 1000; i++) /* across several doublings */
        assert_int_equal(ls_buf_add(&b, "abc", 3), 0);
    assert_int_equal(b.n, 3000);
    assert_true(b.cap > b.n);
    assert_int_equal(b.p[b.n], '\0');
    assert_int_equal(strlen((char *)b.p), 3000);
    assert_int_equal(w.write(w.ud, (const uint8_t *)"xy", 2), 0);
    assert_string_equal((char *)b.p + 2998, "bcxy");
    ls_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.n, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_frame_header_bits),
        T(test_roundtrip_sizes),
        T(test_lz4_cli_reads_ours),
        T(test_we_read_lz4_cli_frames),
        T(test_concatenated_frames),
        T(test_truncated),
        T(test_content_checksum_mismatch),
        T(test_corrupt_block_and_header),
        T(test_bad_magic_and_garbage),
        T(test_empty_input_and_trailing_garbage),
        T(test_errors_are_sticky),
        T(test_source_failure),
        T(test_fd_range_reader),
        T(test_writer_fd_and_mem_reader),
        T(test_copy_cancel),
        T(test_oneshot),
        cmocka_unit_test(test_buf_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
