/*
 * table.c - aligned text tables (see table.h).
 */
#include "table.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_table_init(cli_table *t, size_t ncol, const char *const *header)
{
    memset(t, 0, sizeof(*t));
    t->ncol = ncol;
    return cli_table_add(t, header);
}

int cli_table_add(cli_table *t, const char *const *row)
{
    if (t->nrow == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **n = realloc(t->cells, ncap * t->ncol * sizeof(*n));
        if (!n)
            return -1;
        t->cells = n;
        t->cap = ncap;
    }
    for (size_t c = 0; c < t->ncol; c++)
        t->cells[t->nrow * t->ncol + c] = strdup(row[c] ? row[c] : "");
    t->nrow++;
    return 0;
}

void cli_table_print(cli_table *t)
{
    size_t *w = calloc(t->ncol, sizeof(*w));
    if (!w) {
        cli_table_free(t);
        return;
    }
    for (size_t r = 0; r < t->nrow; r++)
        for (size_t c = 0; c < t->ncol; c++) {
            const char *s = t->cells[r * t->ncol + c];
            size_t len = s ? strlen(s) : 0;
            if (len > w[c])
                w[c] = len;
        }
    for (size_t r = 0; r < t->nrow; r++) {
        for (size_t c = 0; c < t->ncol; c++) {
            const char *s = t->cells[r * t->ncol + c];
            if (c + 1 == t->ncol)
                printf("%s\n", s ? s : "");
            else
                printf("%-*s  ", (int)w[c], s ? s : "");
        }
    }
    free(w);
    cli_table_free(t);
}

void cli_table_free(cli_table *t)
{
    for (size_t i = 0; i < t->nrow * t->ncol; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

void cli_table_finish(struct cli_env *env, cli_table *t)
{
    if (env->json) {
        out_arr_end(env);
        out_end(env);
        cli_table_free(t);
    } else {
        cli_table_print(t);
    }
}
