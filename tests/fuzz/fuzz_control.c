/*
 * fuzz_control.c - the control socket's protocol on any bytes, without a
 * socket: each line of the input (cut at its newline, as the server cuts a
 * connection's bytes) is answered by cli_control_answer as `replicate`
 * answers it, and read by the client's cli_control_parse_answer, as is the
 * daemon's answer to it.
 *
 * The daemon is a stub (cli_daemon_* below; daemon.c is not linked): two
 * databases, three replicas, one with an error; sync knows those two and
 * fails on a negative timeout, as a barrier that ran out of time does.
 */
#include "fuzz_files.h"

#include "control.h"

#include <string.h>

#define SOCK "/run/litesafe/litesafe.sock"

int cli_daemon_status(cli_daemon *d, ls_ctx *ctx, cli_status_fn fn, void *ud)
{
    (void)d;
    (void)ctx;
    ls_replica_status st[3];
    memset(st, 0, sizeof(st));
    for (int i = 0; i < 3; i++) {
        st[i].database = i < 2 ? "/data/app.db" : "/data/other.db";
        st[i].name = i == 1 ? "s3" : "file";
        st[i].type = i == 1 ? "s3" : "file";
        snprintf(st[i].generation, sizeof(st[i].generation), "%016x", 0x1234u * (unsigned)i);
        memcpy(st[i].local_generation, st[i].generation, sizeof(st[i].generation));
        st[i].index = (uint32_t)i;
        st[i].lag_ms = 1500 * i;
        st[i].last_success_ms = i ? 1780000000000 : 0;
        st[i].last_error_message = "";
        st[i].requests_per_sec = 0.25 * i;
    }
    st[1].last_error = LS_ENET;
    st[1].last_error_message = "s3: connection refused";
    st[1].last_error_ms = 1780000001000;
    fn(ud, st, 2);
    fn(ud, st + 2, 1);
    return 0;
}

int cli_daemon_sync(cli_daemon *d, ls_ctx *ctx, const char *db, unsigned flags, int64_t timeout_ms)
{
    (void)d;
    (void)flags;
    if (db && strcmp(db, "/data/app.db") != 0 && strcmp(db, "/data/other.db") != 0)
        return ls_ctx_set_error(ctx, LS_ENOENT, "%s is not a database of this replicate", db);
    if (timeout_ms < 0)
        return ls_ctx_set_error(ctx, LS_EBUSY, "sync: not on the replicas within %lld ms",
                                (long long)timeout_ms);
    return 0;
}

const char *cli_daemon_config_path(const cli_daemon *d)
{
    (void)d;
    return "/etc/litesafe.yml";
}

int64_t cli_daemon_started_ms(const cli_daemon *d)
{
    (void)d;
    return 1780000000000;
}

/* The client's reading of one line (a copy without its newline). */
static void client_reads(ls_ctx *ctx, const char *line)
{
    json_t *result = NULL;
    if (cli_control_parse_answer(ctx, SOCK, line, &result) == 0)
        json_decref(result);
    ls_err_clear(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_ctx *ctx = fuzz_ctx();
    if (!ctx)
        return 0;

    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (char *line = buf; line < buf + size;) {
        char *nl = memchr(line, '\n', (size_t)(buf + size - line));
        if (nl)
            *nl = '\0';
        char *ans = cli_control_answer(NULL, ctx, SOCK, line);
        if (ans) {
            ans[strcspn(ans, "\n")] = '\0';
            client_reads(ctx, ans);
        }
        free(ans);
        client_reads(ctx, line);
        if (!nl)
            break;
        line = nl + 1;
    }
    free(buf);
    return 0;
}
