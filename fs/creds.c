/* creds: owns the per-thread switch to the caller's filesystem identity.
 *
 * Invariants: the switch is per thread (raw syscalls: glibc's setgroups
 * would broadcast to every thread); it is always undone before the worker
 * thread takes the next request; a root caller is never switched, which is
 * the common case of a hypervisor and costs nothing. Permission checks are
 * made by the kernel (default_permissions is always on); the switch exists
 * for ownership, setgid directories and default ACLs of new objects, and for
 * datastores that check again (NFS). */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "relocfs/creds.h"

#define CREDS_MAX_GROUPS 64

int creds_enter(fuse_req_t req, struct creds_saved *saved)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[CREDS_MAX_GROUPS];
	int n;

	saved->switched = 0;
	/* Only root can switch; a daemon run by a user serves that user. */
	if ((ctx->uid == 0 && ctx->gid == 0) || geteuid() != 0)
		return 0;
	n = fuse_req_getgroups(req, CREDS_MAX_GROUPS, groups);
	if (n < 0 || n > CREDS_MAX_GROUPS) {
		/* Caller gone or too many groups: its primary group only. */
		groups[0] = ctx->gid;
		n = 1;
	}
	if (syscall(SYS_setgroups, (size_t)n, groups) < 0)
		return -errno;
	syscall(SYS_setfsgid, ctx->gid);
	syscall(SYS_setfsuid, ctx->uid);
	/* setfsuid reports the old value, not errors: check it took. */
	if ((uid_t)syscall(SYS_setfsuid, -1) != ctx->uid ||
	    (gid_t)syscall(SYS_setfsgid, -1) != ctx->gid) {
		saved->switched = 1;
		creds_leave(saved);
		return -EPERM;
	}
	saved->switched = 1;
	return 0;
}

void creds_leave(struct creds_saved *saved)
{
	gid_t root = 0;

	if (!saved->switched)
		return;
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	syscall(SYS_setgroups, (size_t)1, &root);
	saved->switched = 0;
}
