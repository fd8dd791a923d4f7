/* creds: owns the per-thread switch to the caller's filesystem identity.
 *
 * Invariants: the switch is per thread (raw syscalls: glibc's setgroups
 * would broadcast to every thread); it is always undone before the worker
 * thread takes the next request; a root caller is never switched, which is
 * the common case of a hypervisor and costs nothing. Permission checks are
 * made by the kernel (default_permissions is always on); the switch exists
 * for ownership, setgid directories and default ACLs of new objects, and for
 * datastores that check again (NFS). All of the caller's supplementary
 * groups are taken, however many: losing one would refuse what the
 * datastore allows the caller. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "relocfs/creds.h"

int creds_groups(fuse_req_t req, gid_t *buf, int size, gid_t **groups)
{
	gid_t *v = buf;
	int n;

	*groups = buf;
	n = fuse_req_getgroups(req, size, buf);
	/* The count is of all of them: again with room for all, until the
	 * caller stops growing its list meanwhile. */
	while (n > size) {
		gid_t *p = realloc(v == buf ? NULL : v, (size_t)n * sizeof(gid_t));

		if (p == NULL) {
			n = -ENOMEM;
			break;
		}
		v = p;
		size = n;
		n = fuse_req_getgroups(req, size, v);
	}
	if (n < 0 && v != buf)
		free(v);
	else
		*groups = v;
	return n;
}

int creds_enter(fuse_req_t req, struct creds_saved *saved)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t buf[CREDS_GROUPS_BUF], *groups;
	int n, ret = 0;

	saved->switched = 0;
	/* Only root can switch; a daemon run by a user serves that user. */
	if ((ctx->uid == 0 && ctx->gid == 0) || geteuid() != 0)
		return 0;
	n = creds_groups(req, buf, CREDS_GROUPS_BUF, &groups);
	if (n == -ENOMEM)
		return n;
	if (n < 0) {
		/* Caller gone: its primary group only. */
		buf[0] = ctx->gid;
		n = 1;
	}
	if (syscall(SYS_setgroups, (size_t)n, groups) < 0) {
		ret = -errno;
		goto out;
	}
	syscall(SYS_setfsgid, ctx->gid);
	syscall(SYS_setfsuid, ctx->uid);
	saved->switched = 1;
	/* setfsuid reports the old value, not errors: check it took. */
	if ((uid_t)syscall(SYS_setfsuid, -1) != ctx->uid ||
	    (gid_t)syscall(SYS_setfsgid, -1) != ctx->gid) {
		creds_leave(saved);
		ret = -EPERM;
	}
out:
	if (groups != buf)
		free(groups);
	return ret;
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
