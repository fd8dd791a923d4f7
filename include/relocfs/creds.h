/* creds: run a backing syscall as the FUSE caller, so that objects created
 * through the mount belong to their creator exactly as on the datastore. */
#ifndef RELOCFS_CREDS_H
#define RELOCFS_CREDS_H

#include <fuse_lowlevel.h>

struct creds_saved {
	int switched;
};

/* Switches this thread's fsuid, fsgid and supplementary groups to the
 * caller's. Nothing to undo for a root caller. Returns 0 or -errno. */
int creds_enter(fuse_req_t req, struct creds_saved *saved);
void creds_leave(struct creds_saved *saved);

#define CREDS_GROUPS_BUF 64	/* groups a caller's buffer usually holds */

/* All of the caller's supplementary groups: in buf (size entries) when
 * they fit, else in memory *groups the caller frees (*groups != buf).
 * Returns their count or -errno (caller gone, out of memory), with
 * *groups == buf then. */
int creds_groups(fuse_req_t req, gid_t *buf, int size, gid_t **groups);

#endif
