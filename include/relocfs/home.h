/* home: the homes of a mount (the top-level entries of the virtual
 * datastore), the datastore each lives on, the gate that quiesces a home,
 * and the relocations of homes: the FUSE layer's side of the engine. */
#ifndef RELOCFS_HOME_H
#define RELOCFS_HOME_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "relocfs/reloc.h"

struct fs;
struct open_file;

struct home {
	struct home *next;		/* fs->homes bucket, under fs->homes_lock */
	struct fs *fs;
	char name[NAME_MAX + 1];	/* under fs->homes_lock */
	/* Every operation on the home holds it shared; quiesce holds it
	 * exclusively (writer-preferring, so a cutover is not starved). */
	pthread_rwlock_t gate;
	int ds_fd;			/* O_PATH root of its datastore, not owned */
	struct reloc *reloc;		/* attached relocation, changed quiesced */
	pthread_mutex_t files_lock;
	struct open_file *files;	/* open regular files, for the flip */
	/* Between a flip and the destination being durable: fsync,
	 * synchronous writes and namespace changes wait on flush_cond. If it
	 * could not be made durable, every change to the home fails with
	 * durable_err until the next mount (whose recovery finishes the
	 * move). */
	bool flushing;
	int durable_err;		/* negative errno, or 0 */
	pthread_cond_t flush_cond;	/* with files_lock */
};

#define HOME_BUCKETS 1024	/* fs->homes: hundreds of VMs stay short chains */

/* The home called name, created on first use: only for a root entry that
 * exists or is being made. Never freed while mounted. NULL: out of memory. */
struct home *home_get(struct fs *fs, const char *name);
/* The home called name if it has one (or the placement names it), else
 * NULL, allocating nothing: for names that may not exist. */
struct home *home_find(struct fs *fs, const char *name);
/* Homes allocated so far (for status). */
/* The home of root entry name: known or placed, else made once the name is
 * found on the source, so that looking up missing names allocates nothing.
 * 0, or -errno: -ENOENT (or the source's error) when it is not there. */
int home_lookup(struct fs *fs, const char *name, struct home **hp);
size_t home_count(struct fs *fs);
/* Root-level rename of two homes on one datastore: they swap names. */
void home_swap_names(struct fs *fs, struct home *a, struct home *b);
/* A home's entry was removed from its datastore: it is on the source again. */
int home_removed(struct fs *fs, struct home *h);

int homes_init(struct fs *fs);
void homes_destroy(struct fs *fs);

/* Admin requests; err receives one line for the admin on failure. */
struct migrate_req {
	const char *home;
	const char *datastore;
	struct reloc_opts opts;
};
int home_migrate(struct fs *fs, const struct migrate_req *req, uint64_t *id,
		 char *err, size_t errlen);
int home_abort(struct fs *fs, const char *home, char *err, size_t errlen);
int home_cutover(struct fs *fs, const char *home, char *err, size_t errlen);
/* JSON (json=true) or a table of the homes and relocations, optionally of
 * one home only. */
int home_status(struct fs *fs, const char *home, bool json, FILE *out);
/* One line of a relocation's progress, tab-separated, for relocctl --wait. */
int home_progress(struct fs *fs, uint64_t id, FILE *out, char *err, size_t errlen);

#endif
