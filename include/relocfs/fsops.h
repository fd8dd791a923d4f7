/* fsops: the FUSE low-level operations of a relocfs mount, passed through to
 * the backing datastore with descriptor-relative syscalls. */
#ifndef RELOCFS_FSOPS_H
#define RELOCFS_FSOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <fuse_lowlevel.h>

#include "relocfs/config.h"
#include "relocfs/inode.h"

struct fs {
	struct inode_table inodes;
	double attr_timeout;
	double entry_timeout;
	double negative_timeout;
	bool keep_cache;
	bool writeback_cache;
	size_t max_request;	/* bytes, for max_write and read buffers */
};

/* Takes ownership of root_fd (O_PATH on the source root). */
int fs_init(struct fs *fs, const struct config *cfg, int root_fd);
void fs_destroy(struct fs *fs);

extern const struct fuse_lowlevel_ops fs_ops;

#endif
