/*
 * cmd_status.c - `litesafe status`: how far behind each replica of a running
 * `litesafe replicate` is, asked over its control socket (control.h).
 *
 *   litesafe status [-config PATH] [-socket PATH] [DB]
 *
 * Text: per database one line (generation, spool position, sizes), then a
 * table of its replicas: position, lag in time and bytes, last upload, next
 * snapshot and retention, requests per second, last error. --json: the
 * daemon's answer as one object. Without a running daemon it says so on
 * stderr, shows what the replicas alone tell (newest generation, its newest
 * segment, age of the newest object) and exits 1.
 */
#include "control.h"
#include "table.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE[] = "status [-config PATH] [-socket PATH] [DB]";

/* A byte count for people: "812 B", "4.0 KiB", "12.5 MiB". */
static const char *human(char *buf, size_t n, json_int_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double d = (double)v;
    size_t u = 0;
    while (d >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%lld B", (long long)v);
    else
        snprintf(buf, n, "%.1f %s", d, units[u]);
    return buf;
}

static const char *str_or_dash(json_t *v)
{
    const char *s = json_string_value(v);
    return s && *s ? s : "-";
}

static json_int_t num(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* "<gen>/<index>:<offset>" of an object with generation, index and offset. */
static void position(char *buf, size_t n, json_t *o)
{
    const char *gen = json_string_value(json_object_get(o, "generation"));
    if (!gen || !*gen)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%s/%08llx:%lld", gen, (unsigned long long)num(o, "index"),
                 (long long)num(o, "offset"));
}

static void print_replica(cli_table *t, json_t *r)
{
    char pos[96], lag[32], lagb[32], rps[32], cost[32], err[600];
    json_t *e = json_object_get(r, "last_error");
    position(pos, sizeof(pos), r);
    snprintf(lag, sizeof(lag), "%.1fs", json_number_value(json_object_get(r, "lag_seconds")));
    human(lagb, sizeof(lagb), num(r, "lag_bytes"));
    snprintf(rps, sizeof(rps), "%.2f", json_number_value(json_object_get(r, "requests_per_second")));
    snprintf(cost, sizeof(cost), "%.2f",
             json_number_value(json_object_get(r, "monthly_request_cost")));
    if (json_is_object(e))
        snprintf(err, sizeof(err), "%s: %s", str_or_dash(json_object_get(e, "time")),
                 str_or_dash(json_object_get(e, "message")));
    else
        snprintf(err, sizeof(err), "-");
    const char *row[] = {json_string_value(json_object_get(r, "name")), pos, lag, lagb,
                         str_or_dash(json_object_get(r, "last_upload")),
                         str_or_dash(json_object_get(r, "next_snapshot")),
                         str_or_dash(json_object_get(r, "next_retention")), rps, cost, err};
    cli_table_add(t, row);
}

static void print_text(json_t *result)
{
    size_t i, j;
    json_t *db, *r;
    json_array_foreach(json_object_get(result, "databases"), i, db) {
        char pos[96], a[32], b[32], c[32];
        position(pos, sizeof(pos), db);
        printf("%s%s  position %s  db %s  wal %s  spool %s\n", i ? "\n" : "",
               json_string_value(json_object_get(db, "path")), pos,
               human(a, sizeof(a), num(db, "db_size")), human(b, sizeof(b), num(db, "wal_size")),
               human(c, sizeof(c), num(db, "spool_size")));
        cli_table t;
        const char *hdr[] = {"replica", "position", "lag", "lag_bytes", "last_upload",
                             "next_snapshot", "next_retention", "req/s", "cost/month",
                             "last_error"};
        cli_table_init(&t, 10, hdr);
        json_array_foreach(json_object_get(db, "replicas"), j, r)
            print_replica(&t, r);
        cli_table_print(&t);
    }
    fflush(stdout);
}

/* Newest generation of replica i of t, its end position and the age of its newest object. */
static void offline_replica(cli_env *env, ls_target *t, size_t i, cli_table *tab, json_t *arr)
{
    ls_replica_listing *l = NULL;
    const char *name = ls_target_replica_name(t, i);
    char pos[96] = "-", age[32] = "-", when[40] = "-";
    int rc = ls_target_list(env->ctx, t, i, NULL, &l);
    const ls_generation_info *g = NULL;
    for (size_t k = 0; !rc && k < l->n; k++)
        if (!g || l->generations[k].end_ms > g->end_ms)
            g = &l->generations[k];
    uint32_t index = 0;
    uint64_t offset = 0;
    if (g) {
        for (size_t k = 0; k < g->nsegments; k++) {
            const ls_object_info *o = &g->segments[k];
            if (o->index > index || (o->index == index && o->offset >= offset)) {
                index = o->index;
                offset = o->offset;
            }
        }
        for (size_t k = 0; k < g->nsnapshots; k++)
            if (g->snapshots[k].index > index) {
                index = g->snapshots[k].index;
                offset = 0;
            }
        snprintf(pos, sizeof(pos), "%s/%08x:%llu", g->name, index, (unsigned long long)offset);
        int64_t secs = ((int64_t)time(NULL) * 1000 - g->end_ms) / 1000;
        snprintf(age, sizeof(age), "%llds", (long long)(secs < 0 ? 0 : secs));
        cli_rfc3339(g->end_ms, when, sizeof(when));
    }
    const char *err = rc ? ls_errmsg(env->ctx) : "";
    const char *row[] = {ls_target_database(t), name, pos, when, age, rc ? err : "-"};
    cli_table_add(tab, row);
    json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "database",
                                         ls_target_database(t), "replica", name,
                                         "newest_segment", pos, "newest_object", when, "error",
                                         err));
    ls_replica_listing_free(l);
}

/* No daemon: what the replicas of cfg (only db, when given) show. */
static int offline(cli_env *env, ls_config *cfg, const char *db, const char *why)
{
    fprintf(stderr, "litesafe: status: %s\n", why);
    if (!cfg) {
        fprintf(stderr, "litesafe: status: no configuration lists the database: nothing more "
                        "to show (give -config)\n");
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "litesafe: status: showing what the replicas hold\n");
    cli_table tab;
    const char *hdr[] = {"database", "replica", "newest_segment", "newest_object", "age", "error"};
    cli_table_init(&tab, 6, hdr);
    json_t *arr = json_array();
    for (size_t i = 0; i < ls_config_db_count(cfg); i++) {
        const char *path = ls_config_db_path(cfg, i);
        ls_target *t = NULL;
        if (db && ls_config_db_index(cfg, db) != (long)i)
            continue;
        if (ls_target_open_config(env->ctx, cfg, path, NULL, &t) != 0)
            continue;
        for (size_t j = 0; j < ls_target_replica_count(t); j++)
            offline_replica(env, t, j, &tab, arr);
        ls_target_free(t);
    }
    if (env->json) {
        json_t *o = json_pack("{s:s, s:b, s:s, s:o}", "command", "status", "running", 0,
                              "reason", why, "replicas", arr);
        char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
        cli_table_free(&tab);
    } else {
        json_decref(arr);
        cli_table_print(&tab);
    }
    return EXIT_RUNTIME;
}

int cmd_status(cli_env *env, int argc, char **argv)
{
    const char *config = NULL, *sock = NULL;
    int no_expand = 0;
    const cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, "PATH", "configuration file (finds the socket)"},
        {"no-expand-env", 0, OPT_FLAG, &no_expand, NULL, "do not expand $VAR in the config"},
        {"socket", 0, OPT_STR, &sock, "PATH", "the control socket of the replicate to ask"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1], path[PATH_MAX];
    int npos, rc;
    ls_config *cfg = NULL;
    json_t *result = NULL;
    if ((rc = cli_parse(env, USAGE,
                        "Show how far behind each replica of a running `litesafe replicate` is:\n"
                        "positions, lag (time and bytes), last upload, sizes, next snapshot and "
                        "retention,\nrequests per second, last error. Without a running "
                        "replicate, says so, shows what\nthe replicas hold, and exits 1.",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    char dbabs[PATH_MAX];
    const char *db = NULL;
    if (npos == 1) {
        if (!realpath(pos[0], dbabs) && snprintf(dbabs, sizeof(dbabs), "%s", pos[0]) < 0)
            return EXIT_RUNTIME;
        db = dbabs;
    }
    if ((rc = cli_control_path(env, sock, config, no_expand, db, path, sizeof(path), &cfg)) >= 0)
        return rc;
    json_t *params = db ? json_pack("{s:s}", "db", db) : NULL;
    rc = cli_control_call(env->ctx, path, "status", params, 10000, &result);
    json_decref(params);
    if (rc == LS_ENOENT && strstr(ls_errmsg(env->ctx), "no litesafe replicate listens")) {
        char why[PATH_MAX + 128];
        snprintf(why, sizeof(why), "%s", ls_errmsg(env->ctx));
        rc = offline(env, cfg, db, why);
        ls_config_free(cfg);
        return rc;
    }
    ls_config_free(cfg);
    if (rc)
        return cli_fail_lib(env, rc);
    if (env->json) {
        json_t *o = json_pack("{s:s, s:b, s:s, s:O}", "command", "status", "running", 1,
                              "socket", path, "databases", json_object_get(result, "databases"));
        char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
    } else {
        print_text(result);
    }
    json_decref(result);
    return 0;
}
