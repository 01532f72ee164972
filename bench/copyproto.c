/*
 * bench/copyproto.c - an experiment, not part of litesafe: how fast can a
 * copy + SHA-256 + fdatasync of a file go on this machine, by three methods?
 *
 *   A  pread + pwrite of 1 MiB chunks, a second thread hashing each chunk
 *      (what src/backup.c does today: two copies through user space);
 *   B  copy_file_range of 8 MiB chunks (one copy, inside the kernel), a
 *      second thread hashing the same range from a read-only mmap of the
 *      source;
 *   C  pwrite straight from a read-only mmap of the source (one copy), the
 *      second thread hashing from the mapping.
 * All three start writeback every 32 MiB (sync_file_range) and end with
 * fdatasync, as src/backup.c does. The source must not change meanwhile (it
 * is a plain file here; litesafe's snapshot guarantees that for the pages it
 * takes from the database file, and WAL pages would be written over them).
 *
 * Build: cc -O2 -o copyproto bench/copyproto.c -lcrypto -lpthread
 * Run:   copyproto A|B|C SRC DST        (DST must not exist)
 * Prints the copy+hash time, the fdatasync time and the first hash bytes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SMALL (1u << 20) /* method A's chunk */
#define BIG (8u << 20)   /* methods B and C */
#define NBUF 4
#define WRITEBACK (32u << 20)

static int mode;
static size_t size;
static const unsigned char *map;      /* B, C: the source, mapped */
static unsigned char *buf[NBUF];       /* A: chunk buffers */
static size_t len[NBUF];
static unsigned long produced, consumed;
static size_t ready;                   /* B, C: bytes copied so far */
static int done;
static unsigned char digest[32];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void *hasher(void *arg)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    if (mode == 'A') {
        for (;;) {
            pthread_mutex_lock(&mu);
            while (consumed == produced && !done)
                pthread_cond_wait(&cv, &mu);
            if (consumed == produced) {
                pthread_mutex_unlock(&mu);
                break;
            }
            int i = (int)(consumed % NBUF);
            pthread_mutex_unlock(&mu);
            EVP_DigestUpdate(c, buf[i], len[i]);
            pthread_mutex_lock(&mu);
            consumed++;
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
        }
    } else {
        size_t at = 0;
        while (at < size) {
            pthread_mutex_lock(&mu);
            while (ready == at)
                pthread_cond_wait(&cv, &mu);
            size_t r = ready;
            pthread_mutex_unlock(&mu);
            EVP_DigestUpdate(c, map + at, r - at);
            at = r;
        }
    }
    unsigned n;
    EVP_DigestFinal_ex(c, digest, &n);
    EVP_MD_CTX_free(c);
    return arg;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4 || !strchr("ABC", argv[1][0])) {
        fprintf(stderr, "usage: copyproto A|B|C SRC DST\n");
        return 2;
    }
    mode = argv[1][0];
    int in = open(argv[2], O_RDONLY);
    int out = open(argv[3], O_RDWR | O_CREAT | O_EXCL, 0600);
    struct stat st;
    if (in < 0 || out < 0 || fstat(in, &st) != 0) {
        perror("open");
        return 1;
    }
    size = (size_t)st.st_size;
    double t0 = now();
    if (mode != 'A') {
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, in, 0);
        if (map == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        madvise((void *)map, size, MADV_SEQUENTIAL);
    } else {
        for (int i = 0; i < NBUF; i++)
            buf[i] = malloc(SMALL);
    }
    pthread_t th;
    pthread_create(&th, NULL, hasher, NULL);
    size_t off = 0, wb = 0;
    while (off < size) {
        size_t n;
        if (mode == 'A') {
            pthread_mutex_lock(&mu);
            while (produced - consumed >= NBUF)
                pthread_cond_wait(&cv, &mu);
            int i = (int)(produced % NBUF);
            pthread_mutex_unlock(&mu);
            n = size - off < SMALL ? size - off : SMALL;
            if (pread(in, buf[i], n, (off_t)off) != (ssize_t)n ||
                pwrite(out, buf[i], n, (off_t)off) != (ssize_t)n) {
                perror("copy");
                return 1;
            }
            pthread_mutex_lock(&mu);
            len[i] = n;
            produced++;
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
        } else {
            n = size - off < BIG ? size - off : BIG;
            if (mode == 'B') {
                loff_t a = (loff_t)off, b = (loff_t)off;
                for (size_t left = n; left;) {
                    ssize_t r = copy_file_range(in, &a, out, &b, left, 0);
                    if (r <= 0) {
                        perror("copy_file_range");
                        return 1;
                    }
                    left -= (size_t)r;
                }
            } else if (pwrite(out, map + off, n, (off_t)off) != (ssize_t)n) {
                perror("pwrite");
                return 1;
            }
            pthread_mutex_lock(&mu);
            ready = off + n;
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
        }
        off += n;
        if (off - wb >= WRITEBACK) {
            sync_file_range(out, (off_t)wb, (off_t)(off - wb), SYNC_FILE_RANGE_WRITE);
            wb = off;
        }
    }
    pthread_mutex_lock(&mu);
    done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(th, NULL);
    double t1 = now();
    fdatasync(out);
    double t2 = now();
    printf("%c copy+hash %.2f s, fdatasync %.2f s, total %.2f s, sha256 %02x%02x%02x%02x...\n",
           mode, t1 - t0, t2 - t1, t2 - t0, digest[0], digest[1], digest[2], digest[3]);
    return 0;
}
