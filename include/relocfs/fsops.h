/* fsops: the FUSE low-level operations of a relocfs mount, passed through to
 * the datastore each home lives on with descriptor-relative syscalls, or to
 * the relocation engine while the home relocates. */
#ifndef RELOCFS_FSOPS_H
#define RELOCFS_FSOPS_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <fuse_lowlevel.h>

#include "relocfs/config.h"
#include "relocfs/home.h"
#include "relocfs/inode.h"
#include "relocfs/inomap.h"
#include "relocfs/placement.h"

struct reloc_entry;

struct fs {
	struct inode_table inodes;
	struct inomap inomap;		/* the inode numbers shown */
	double attr_timeout;
	double entry_timeout;
	double negative_timeout;
	bool keep_cache;
	bool writeback_cache;
	bool dont_mask;			/* FUSE_CAP_DONT_MASK: umask is ours */
	size_t max_request;		/* bytes, for max_write and read buffers */
	/* Backing mounts seen (unique mount IDs), and whether close(2) on
	 * them can report anything; entries below nquiet are written before
	 * it grows. */
	pthread_mutex_t quiet_lock;
	struct fs_quiet_mnt {
		uint64_t mnt;
		bool quiet;
	} quiet_mnts[16];
	unsigned nquiet;
	pthread_mutex_t iomode_lock;	/* inode direct_opens, cached_opens */
	const struct config *cfg;
	struct fuse_session *se;	/* for notifications to the kernel */

	char source[PATH_MAX];		/* canonical source datastore */
	char mountpoint[PATH_MAX];
	int state_dirfd;		/* the source's state dir (not owned) */

	pthread_mutex_t homes_lock;	/* homes, datastores, placement, relocs */
	struct home *homes[HOME_BUCKETS];	/* hashed by name */
	size_t nhomes;
	struct fs_datastore *datastores;
	struct placement placement;
	bool placement_unflushed;	/* on disk, maybe not durable */
	struct reloc_entry *relocs;	/* newest first, finished ones kept */
	uint64_t next_reloc_id;
};

/* O_PATH root of a datastore (the source's is the inode table's root fd),
 * opened once; -errno when it cannot be opened. */
int fs_datastore_fd(struct fs *fs, const char *path);

/* Takes ownership of root_fd (O_PATH on the source root). */
int fs_init(struct fs *fs, const struct config *cfg, int root_fd,
	    const char *source, const char *mountpoint, int state_dirfd);
void fs_destroy(struct fs *fs);

extern const struct fuse_lowlevel_ops fs_ops;

/* For the engine host in home.c, with the home quiesced. */
void fsops_attach(struct fs *fs, struct home *h, struct reloc *r);
int fsops_flip(struct fs *fs, struct home *h, struct reloc *r, int dst_ds_fd,
	       int (*commit_placement)(struct fs *, struct home *, struct reloc *));

#endif
