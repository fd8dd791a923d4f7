/* reloc: the relocation engine: one home moving from its datastore (the
 * source, B) to another (the destination, D) while in use, through the
 * phases of DESIGN.md: prepare, copy, converge, cutover, cleanup; or a
 * rollback that makes the source current again. */
#ifndef RELOCFS_RELOC_H
#define RELOCFS_RELOC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

enum reloc_phase {
	RELOC_PREPARE,
	RELOC_COPY,
	RELOC_CONVERGE,
	RELOC_READY,		/* converged, waiting for a manual cutover */
	RELOC_VERIFY,		/* comparing D with the source view (--verify) */
	RELOC_CUTOVER,
	RELOC_CLEANUP,
	RELOC_DONE,
	RELOC_FAILED,		/* rolled back after an error */
	RELOC_ABORTED,		/* rolled back on request */
};

const char *reloc_phase_name(enum reloc_phase phase);

struct reloc_opts {
	uint64_t rate_bps;		/* copy rate limit, 0: none */
	uint64_t busy_rate_bps;		/* ... while the application reads, 0: none */
	unsigned pause_budget_ms;
	unsigned copy_threads;
	uint64_t journal_max_bytes;	/* journal size that fails the relocation, 0: none */
	bool keep_source;
	bool manual_cutover;
	bool verify;			/* D against the source view before the cutover */
};

struct reloc;
struct rfile;
struct inomap_pairs;

/* What the engine asks of the FUSE layer. Every call is made from the
 * relocation's own thread; the ones marked (quiesced) only between
 * quiesce and resume. */
struct reloc_host {
	/* New operations on the home wait, in-flight ones finish. */
	void (*quiesce)(void *home);
	void (*resume)(void *home);
	/* (quiesced) Route the home's files through the engine. */
	void (*attach)(void *home, struct reloc *r);
	/* (quiesced) Serve the home from the destination: every inode and open
	 * handle is moved to its counterpart, placement is flipped. */
	int (*flip)(void *home, struct reloc *r);
	/* After the flip and the destination's flush, before the source copy
	 * may go: the placement that names the destination is durable (the
	 * flip goes on when only its flush failed). 0 when it is. */
	int (*placement_sync)(void *home);
	/* After the flip: the destination is durable (err 0), and operations
	 * that wait for that (fsync, synchronous writes, namespace changes)
	 * go on; or it could not be made so, and they, and every other change
	 * to the home, fail with err. */
	void (*durable)(void *home, int err);
	/* (quiesced) Serve the home from the source again, bypassing the
	 * engine. */
	void (*detach)(void *home, struct reloc *r);
	/* The relocation reached a final phase; the host may drop it. */
	void (*finished)(void *home, struct reloc *r);
};

struct reloc_params {
	uint64_t id;
	const char *home;		/* name in the mount */
	const char *src_ds;		/* canonical datastore roots */
	const char *dst_ds;
	int state_dirfd;		/* the mount's state dir (not O_PATH) */
	struct reloc_opts opts;
	const struct reloc_host *host;
	void *host_home;
};

struct reloc_status {
	uint64_t id;
	char home[256];
	char from[4096];
	char to[4096];
	enum reloc_phase phase;
	uint64_t bytes_total;
	uint64_t bytes_copied;
	uint64_t rate_bps;
	uint64_t eta_s;
	uint64_t journal_bytes;
	unsigned rounds;
	double pause_ms;
	double pause_at;		/* the pause's start, epoch seconds; 0: none yet */
	bool yielding;			/* the copy is slowed for the application's reads */
	double yield_s;			/* time it spent so */
	char error[512];
};

/* Starts a relocation thread. The home's source tree must exist and the
 * destination must not hold an entry of the home's name. */
int reloc_start(struct reloc **rp, const struct reloc_params *params);
/* Asks a relocation to roll back (before cutover) or, when it waits in
 * READY, to cut over. -EINVAL when it is past that point. */
int reloc_abort(struct reloc *r);
int reloc_cutover(struct reloc *r);
void reloc_get_status(struct reloc *r, struct reloc_status *st);
/* True from a failure (a destination or journal error) until the rollback
 * has ended: an operation the journal could not take may then be retried
 * on the source. */
bool reloc_failing(struct reloc *r);
/* Waits for the relocation thread and frees it (after finished). */
void reloc_free(struct reloc *r);

/* --- data path, called by the FUSE layer with the home's gate held --- */

/* The engine's state of the regular file (dev, ino) of the source tree, or
 * NULL when it has none (not a regular file of this home). */
struct rfile *reloc_file_find(struct reloc *r, dev_t dev, ino_t ino);
ssize_t reloc_file_read(struct reloc *r, struct rfile *f, char *buf, size_t size, off_t off);
ssize_t reloc_file_write(struct reloc *r, struct rfile *f, const char *buf, size_t size,
			 off_t off, bool append, bool sync);
int reloc_file_truncate(struct reloc *r, struct rfile *f, off_t size);
int reloc_file_fallocate(struct reloc *r, struct rfile *f, int mode, off_t off, off_t len);
int reloc_file_sync(struct reloc *r, struct rfile *f);
/* Size, mtime and blocks as the application must see them. */
void reloc_file_stat(struct reloc *r, struct rfile *f, struct stat *st);
off_t reloc_file_seek(struct reloc *r, struct rfile *f, off_t off, int whence);
/* An explicit utimens through the mount: the source now holds the times. */
void reloc_file_times_set(struct reloc *r, struct rfile *f);
/* Descriptor of the file's destination copy, for the cutover flip. */
int reloc_file_dest_fd(struct rfile *f);
/* Each source object of the home and its destination copy, for the flip
 * to carry inode numbers over (quiesced). */
struct inomap_pairs *reloc_ino_pairs(struct reloc *r);

/* --- namespace, called after the operation succeeded on the source --- */

enum reloc_ns_op {
	RELOC_NS_CREATE,	/* a new object name in parent (any type) */
	RELOC_NS_LINK,		/* name in parent links obj */
	RELOC_NS_UNLINK,
	RELOC_NS_RMDIR,
	RELOC_NS_RENAME,	/* name in parent -> name2 in parent2, flags */
	RELOC_NS_ATTR,		/* obj's mode, owner, times or xattrs changed */
};

struct reloc_ns {
	enum reloc_ns_op op;
	int parent_fd;		/* source O_PATH descriptors */
	const char *name;
	int parent2_fd;
	const char *name2;
	unsigned flags;
	int obj_fd;		/* RELOC_NS_LINK, RELOC_NS_ATTR */
};

/* Mirrors a namespace change onto the destination. A failure there fails
 * the relocation (it rolls back); the application's operation, already
 * done on the source, stands. */
void reloc_ns_mirror(struct reloc *r, const struct reloc_ns *ns);

/* Path of a source descriptor relative to the home's root ("" for the root
 * itself). -ENOENT when it is not (or no longer) under it. */
int reloc_rel_path(struct reloc *r, int src_fd, char *buf, size_t len);
/* O_PATH descriptor of the destination counterpart of a relative path. */
int reloc_dest_open(struct reloc *r, const char *rel);

#endif
