/*
 * table.h - aligned text tables for the listing commands (text mode), in the
 * shape of Litestream's tabwriter output: a header row, columns padded by
 * two spaces.
 */
#ifndef LS_CLI_TABLE_H
#define LS_CLI_TABLE_H

#include <stddef.h>

typedef struct cli_table {
    size_t ncol;        /* columns */
    char **cells;       /* rows * ncol strings, row-major (malloc'd) */
    size_t nrow;        /* rows, header included */
    size_t cap;         /* rows allocated */
} cli_table;

/* Start a table with its header (ncol strings). */
int cli_table_init(cli_table *t, size_t ncol, const char *const *header);
/* Add a row of ncol strings (copied). */
int cli_table_add(cli_table *t, const char *const *row);
/* Print to stdout and free. */
void cli_table_print(cli_table *t);
void cli_table_free(cli_table *t);

struct cli_env;
/*
 * End a listing command's output: with --json, close the array and the
 * object opened for it (the rows went out as JSON items); otherwise print
 * the table. The table is freed either way.
 */
void cli_table_finish(struct cli_env *env, cli_table *t);

#endif
