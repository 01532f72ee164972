/*
 * db.h - the source side: opening a live database without disturbing it, and
 * reading a consistent image of it page by page while writers keep writing.
 */
#ifndef LS_DB_H
#define LS_DB_H

#include "internal.h"
#include "wal.h"

#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>

/* What the first 100 bytes of a database file say. */
typedef struct ls_db_hdr {
    uint32_t page_size;      /* bytes per page (65536 decoded) */
    uint32_t page_count;     /* in-header database size (offset 28) */
    uint32_t freelist_count; /* offset 36 */
    uint32_t schema_cookie;  /* offset 40 */
    uint32_t text_encoding;  /* offset 56 */
    int wal;                 /* read/write versions (offsets 18,19) are 2 */
    int size_valid;          /* offset 92 (version-valid-for) equals the change counter */
} ls_db_hdr;

/*
 * Check that `path` is a regular, non-empty SQLite database file and decode its
 * header. Returns 0, LS_ENOENT (missing), LS_ENOTDB (empty, a directory, or
 * not SQLite; for the last the message has SQLite's own words "file is not a
 * database"), or an I/O error. Never creates anything.
 *
 * POSIX LOCKS: closing any descriptor of a file drops every fcntl lock the
 * process holds on it, including the locks of SQLite connections (the read
 * marks that protect a snapshot, the SHARED lock that stops another process
 * from checkpointing and deleting the WAL on close). So litesafe never
 * open()s and close()s a database or -shm file itself: it reads them through
 * SQLite's own file handle (ls_db_file), which SQLite's VFS keeps open for as
 * long as any connection of the process holds a lock. This probe, too, reads
 * the header through a short-lived SQLite connection. The -wal file is not
 * locked by SQLite and may be opened directly. The one descriptor of a
 * database file litesafe opens itself (ls_db_fd_acquire) is closed only when
 * that cannot drop a lock.
 */
int ls_db_probe(ls_ctx *ctx, const char *path, ls_db_hdr *hdr);
/*
 * A database a user named as the source of a copy: its absolute path into
 * abs (ls_abspath), checked with ls_db_probe, and its stat in *st.
 */
int ls_db_resolve(ls_ctx *ctx, const char *path, char *abs, size_t abssz, struct stat *st);

/*
 * A read-only descriptor of the database file at `path`, for
 * copy_file_range() and mmap(), which need a descriptor of their own; give it
 * back with ls_db_fd_release(). Shared per file and closed only when no SQLite
 * connection of this process can hold a lock on the file (see ls_db_probe and
 * "THE DESCRIPTORS OF ls_db_fd_acquire" in db.c), so it is safe next to the
 * application's connections and nothing runs out in a long-lived process.
 * Acquire it while a connection (a reader) has the file open, release it
 * after that connection closed. Returns -1 with the error set.
 */
int ls_db_fd_acquire(ls_ctx *ctx, const char *path);
/* Give back a descriptor of ls_db_fd_acquire (-1 is a no-op); it is closed when safe. */
void ls_db_fd_release(int fd);

/* SQLite's handle on the main database file of a connection (borrowed). */
sqlite3_file *ls_db_file(sqlite3 *db);
/* Read n bytes at off through a SQLite file handle; *got is what the file held. */
int ls_db_file_read(ls_ctx *ctx, sqlite3_file *f, void *buf, size_t n, uint64_t off, size_t *got,
                    const char *what);
/*
 * The wal-index header as the connection maps it (the connection must be in
 * WAL mode and have read at least once). LS_ENOENT when there is no mapping,
 * LS_EBUSY when a writer is updating it, LS_ECORRUPT when it is invalid.
 */
int ls_db_shm_info(sqlite3 *db, ls_shm_info *out);
/* Decode a 100-byte database header; 0 or LS_ENOTDB. */
int ls_db_hdr_decode(const uint8_t *buf, ls_db_hdr *hdr);

/*
 * Open a connection to an existing database for litesafe's own use: no
 * create, a busy timeout, and no checkpoint when it closes (closing the last
 * connection must not rewrite or delete the application's WAL).
 */
int ls_db_open(ls_ctx *ctx, const char *path, int readonly, int busy_ms, sqlite3 **out);
/* State of a fast busy handler (see ls_db_fast_busy). */
typedef struct ls_fast_busy {
    uint64_t deadline_ms;   /* give up after this (monotonic ms) */
    uint32_t seed;          /* jitter */
} ls_fast_busy;
/*
 * Make db retry a busy lock every 100-400 us for up to ms, instead of
 * SQLite's sleeping handler that a back-to-back writer always beats. `b` must
 * live as long as the handler is installed.
 */
void ls_db_fast_busy(sqlite3 *db, ls_fast_busy *b, int ms);

/* Run SQL that returns no rows; message names `path` on failure. */
int ls_db_exec(ls_ctx *ctx, sqlite3 *db, const char *path, const char *sql);
/* Map a SQLite result code to an LS_E* code. */
int ls_db_code(int sqlite_rc);

/*
 * A consistent reader. ls_dbread_open() pins one committed state of the
 * database (a read transaction) and learns which pages of that state live in
 * the WAL; ls_dbread_pages() then reads them straight from the files, which is
 * as fast as a plain copy. Writers are held off only while the snapshot is
 * pinned (a few milliseconds: the WAL frames committed since the pre-scan are
 * scanned under the write lock); after that they run freely, the WAL cannot be
 * restarted under the reader, and checkpoints cannot pass its snapshot.
 * Every page read from the WAL is re-verified against its frame checksum, so a
 * WAL rewritten behind our back is detected (LS_EBUSY: start over).
 */
typedef struct ls_dbread {
    ls_ctx *ctx;
    char path[4096];     /* database path */
    sqlite3 *rd;         /* connection holding the read transaction */
    sqlite3_file *file;  /* SQLite's handle on the database file (see ls_db_probe) */
    int wal_fd;          /* the -wal file, -1 when the snapshot needs none */
    ls_wal_scan scan;    /* pages of the snapshot that live in the WAL */
    int use_wal;         /* overlay WAL pages (0: the database file is complete) */
    int wal_mode;        /* database is in WAL mode */
    uint32_t page_size;  /* bytes per page */
    uint64_t page_count; /* pages in the snapshot */
    uint64_t snap_frame; /* last WAL frame of the snapshot (0: none) */
    uint8_t *frame;      /* scratch for one WAL frame */
} ls_dbread;

int ls_dbread_open(ls_ctx *ctx, const char *path, int busy_ms, ls_dbread **out);
/* Read pages [pgno, pgno+n) of the snapshot into buf (n * page_size bytes). */
int ls_dbread_pages(ls_dbread *r, uint64_t pgno, uint32_t n, uint8_t *buf);
/* End the read transaction and close everything; NULL is a no-op. */
void ls_dbread_close(ls_dbread *r);

#endif
