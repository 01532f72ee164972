/*
 * pget.c - one large object fetched with parallel ranged gets and handed to
 * the caller's writer in order, while later parts still download (restore's
 * snapshot: the LZ4 decoder and the page writer run while the next parts
 * arrive).
 *
 * The object is cut into parts of `part` bytes; up to n worker threads each
 * fetch one part at a time into one of n slots (part k goes to slot k % n),
 * and the calling thread hands part after part to the writer. A worker takes
 * part k only when part k - n has been handed on, so at most n parts are in
 * memory. A failed get is retried and resumed by the storage handle
 * (retry.c); a failure that stays, or the writer's, stops the workers. A part
 * shorter than asked for (the object is shorter than listed: it changed since,
 * or the listing is wrong) is LS_ECORRUPT.
 */
#include "storage.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

typedef struct pg_slot {
    uint8_t *buf;           /* part bytes (allocated once, `part` long) */
    size_t want, got;       /* asked for, received */
    int state;              /* SLOT_* */
} pg_slot;

typedef struct pg_job {
    ls_storage *s;
    ls_ctx *ctx;            /* the caller's (its log settings; messages are copied to it) */
    const char *key;
    uint64_t size;          /* object size, as listed */
    size_t part;
    uint64_t nparts;
    uint64_t next;          /* next part a worker takes */
    uint64_t head;          /* next part handed to the writer */
    int nslots;
    pg_slot *slots;
    int stop;               /* a failure, or the writer is done: take no more work */
    int rc;                 /* the first worker failure */
    char msg[1024];         /* its message */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pg_job;

/* A writer into one slot's buffer; more than asked for is a protocol error. */
typedef struct pg_sink {
    pg_slot *slot;
    ls_ctx *ctx;
} pg_sink;

static int pg_write(void *ud, const uint8_t *buf, size_t n)
{
    pg_sink *k = ud;
    if (n > k->slot->want - k->slot->got)
        return ls_err(k->ctx, LS_ECORRUPT, "the server sent more than the range asked for");
    memcpy(k->slot->buf + k->slot->got, buf, n);
    k->slot->got += n;
    return 0;
}

/* Fetch part k into its slot (not under the lock). */
static int fetch_part(pg_job *j, ls_ctx *ctx, uint64_t k, pg_slot *sl)
{
    uint64_t off = k * j->part;
    sl->want = (size_t)(j->size - off < j->part ? j->size - off : j->part);
    sl->got = 0;
    if (!sl->buf && !(sl->buf = malloc(j->part)))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    pg_sink sink = {sl, ctx};
    ls_writer w = {pg_write, &sink};
    int rc = j->s->get(j->s, ctx, j->key, off, (int64_t)sl->want, &w);
    if (!rc && sl->got != sl->want)
        rc = ls_storage_err(j->s, ctx, LS_ECORRUPT, "get", j->key,
                            "object is shorter than listed: %llu of %llu bytes at offset %llu",
                            (unsigned long long)sl->got, (unsigned long long)sl->want,
                            (unsigned long long)off);
    return rc;
}

static void *pg_worker(void *arg)
{
    pg_job *j = arg;
    ls_ctx *ctx = NULL;
    if (ls_ctx_new_child(j->ctx, &ctx) != 0) { /* retries show; the caller's cancel reaches it */
        pthread_mutex_lock(&j->mu);
        if (!j->rc) {
            j->rc = LS_ENOMEM;
            ls_strlcpy(j->msg, "out of memory", sizeof(j->msg));
        }
        j->stop = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        return NULL;
    }
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stop && j->next < j->nparts && j->next >= j->head + (uint64_t)j->nslots)
            pthread_cond_wait(&j->cv, &j->mu);
        if (j->stop || j->next >= j->nparts || ls_cancelled(j->ctx))
            break;
        uint64_t k = j->next++;
        pg_slot *sl = &j->slots[k % (uint64_t)j->nslots];
        sl->state = SLOT_BUSY;
        pthread_mutex_unlock(&j->mu);
        int rc = fetch_part(j, ctx, k, sl);
        pthread_mutex_lock(&j->mu);
        sl->state = SLOT_READY;
        if (rc && !j->rc) {
            j->rc = rc;
            ls_strlcpy(j->msg, ls_errmsg(ctx), sizeof(j->msg));
        }
        if (rc)
            j->stop = 1;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    ls_ctx_free(ctx);
    return NULL;
}

/* The calling thread: hand the parts to w in order. */
static int pg_deliver(pg_job *j, ls_writer *w)
{
    int rc = 0;
    for (uint64_t k = 0; k < j->nparts && !rc; k++) {
        pg_slot *sl = &j->slots[k % (uint64_t)j->nslots];
        pthread_mutex_lock(&j->mu);
        while (!j->rc && !(j->next > k && sl->state == SLOT_READY))
            pthread_cond_wait(&j->cv, &j->mu);
        rc = j->rc;
        pthread_mutex_unlock(&j->mu);
        if (rc)
            return ls_err(j->ctx, rc, "%s", j->msg);
        if (ls_cancelled(j->ctx))
            return ls_err(j->ctx, LS_ECANCEL, "cancelled");
        rc = w->write(w->ud, sl->buf, sl->got);
        pthread_mutex_lock(&j->mu);
        sl->state = SLOT_FREE;
        j->head = k + 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    return rc;
}

int ls_storage_get_parallel(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t size,
                            size_t part, int n, ls_writer *w)
{
    if (!ls_storage_ranged(s) || n <= 1 || part == 0 || size <= part)
        return s->get(s, ctx, key, 0, -1, w);
    pg_job j = {.s = s, .ctx = ctx, .key = key, .size = size, .part = part};
    j.nparts = (size + part - 1) / part;
    j.nslots = n > 64 ? 64 : n;
    if ((uint64_t)j.nslots > j.nparts)
        j.nslots = (int)j.nparts;
    if (!(j.slots = calloc((size_t)j.nslots, sizeof(*j.slots))))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_t th[64];
    int started = 0, rc;
    for (int i = 0; i < j.nslots; i++)
        if (pthread_create(&th[started], NULL, pg_worker, &j) == 0)
            started++;
    if (started == 0)
        rc = s->get(s, ctx, key, 0, -1, w);
    else
        rc = pg_deliver(&j, w);
    pthread_mutex_lock(&j.mu);
    j.stop = 1; /* done, or failed: the workers take nothing more */
    pthread_cond_broadcast(&j.cv);
    pthread_mutex_unlock(&j.mu);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < j.nslots; i++)
        free(j.slots[i].buf);
    free(j.slots);
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    return rc;
}

int ls_storage_ranged(const ls_storage *s)
{
    return s->version < 2 || !(s->caps & LS_STORAGE_CAP_WHOLE_GETS);
}
