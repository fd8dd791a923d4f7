/* fsops: owns the FUSE request handlers: lookups into the inode table, file
 * and directory handles, and the translation of each request into a syscall
 * relative to an O_PATH descriptor of the backing tree, or into a call of
 * the relocation engine while the file's home relocates.
 *
 * Invariants:
 * - No backing path is ever resolved from a datastore root: every syscall
 *   is relative to a held descriptor, with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW,
 *   or through /proc/self/fd/N, which names the held object itself. A
 *   symlink in the tree is never followed by relocfs.
 * - Errors are the backing syscall's errno, unchanged.
 * - Every request on an object of a home holds the home's gate shared, so a
 *   cutover (which holds it exclusively) sees no request in flight, and
 *   inode->rfile and home->reloc do not change under a request.
 * - A namespace change inside a relocating home is made on the source first
 *   (it stays a complete rollback target), then mirrored to the destination.
 * - The data path (read, write_buf) allocates nothing: reads land in a
 *   per-thread buffer sized for the largest request, writes go straight from
 *   libfuse's receive buffer to the backing descriptor or the journal. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "relocfs/creds.h"
#include "relocfs/fsops.h"
#include "relocfs/log.h"
#include "relocfs/ring.h"
#include "relocfs/treeutil.h"
#include "relocfs/wire.h"

#define PROC_PATH_MAX 64
#define XATTR_CAPS "security.capability"

struct open_file {
	int fd;
	int flags;			/* as the application opened it */
	gid_t *groups;			/* a writing user's gid and groups, */
	int ngroups;			/* for the setgid rule; NULL for root */
	struct inode *inode;
	struct open_file *prev, *next;	/* home->files, regular files only */
	enum { IOMODE_NONE, IOMODE_DIRECT, IOMODE_CACHED } iomode;	/* counted as */
};

struct dir_ent {
	char *name;
	ino_t ino;
	unsigned char type;
};

/* Directory handles serve a snapshot taken at offset 0, so a cutover can
 * move the directory under them without invalidating offsets. */
struct dir_handle {
	struct inode *inode;
	struct dir_ent *ents;
	size_t n;
	char *names;
};

static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;

static void read_buf_key_init(void)
{
	pthread_key_create(&read_buf_key, free);
}

/* The calling worker's read buffer, allocated once per thread. */
static char *read_buf(const struct fs *fs)
{
	void *buf = ring_reply_buffer(fs->max_request);

	if (buf != NULL)
		return buf;
	buf = pthread_getspecific(read_buf_key);

	if (buf == NULL) {
		if (posix_memalign(&buf, 4096, fs->max_request) != 0)
			return NULL;
		pthread_setspecific(read_buf_key, buf);
	}
	return buf;
}

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct inode *inode_of(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs_of(req)->inodes.root;
	return (struct inode *)(uintptr_t)ino;
}

static fuse_ino_t nodeid_of(struct fs *fs, struct inode *inode)
{
	if (inode == &fs->inodes.root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)inode;
}

static struct open_file *of_of(const struct fuse_file_info *fi)
{
	return (struct open_file *)(uintptr_t)fi->fh;
}

static struct dir_handle *dh_of(const struct fuse_file_info *fi)
{
	return (struct dir_handle *)(uintptr_t)fi->fh;
}

static void proc_path(char *buf, int fd)
{
	snprintf(buf, PROC_PATH_MAX, "/proc/self/fd/%d", fd);
}

static bool is_root(struct fs *fs, const struct inode *inode)
{
	return inode == &fs->inodes.root;
}

/* ------------------------------------------------------------ gating */

static struct home *gate_enter(struct home *h)
{
	if (h != NULL)
		pthread_rwlock_rdlock(&h->gate);
	return h;
}

static void gate_leave(struct home *h)
{
	if (h != NULL)
		pthread_rwlock_unlock(&h->gate);
}

/* An engine operation failed while its relocation fails (the journal could
 * not take the data: its filesystem full or failing): wait, outside the
 * gate, for the rollback to make the source current, so the caller retries
 * there and the application never sees the relocation's error. False when
 * the error is the operation's own, or the rollback itself failed. Called
 * and returns with the gate held. */
static bool wait_rollback(struct home *h, const struct inode *inode)
{
	for (;;) {
		if (inode->rfile == NULL)
			return true;
		if (h->reloc == NULL || !reloc_failing(h->reloc))
			return false;
		gate_leave(h);
		usleep(5000);
		gate_enter(h);
	}
}

static bool is_flushing(const struct home *h)
{
	return h != NULL && __atomic_load_n(&h->flushing, __ATOMIC_ACQUIRE);
}

/* Changes that do not wait for the destination's flush (writes, truncation,
 * attributes) still fail once it has failed: the recovery at the next mount
 * would undo them too. */
static int durable_failed(const struct home *h)
{
	return h == NULL ? 0 : __atomic_load_n(&h->durable_err, __ATOMIC_RELAXED);
}

/* Right after a cutover, what must be durable waits until the destination
 * is (see flush_dest in src/reloc.c). Called with h's gate held shared, or
 * none: the flush needs no gate. If the destination could not be made
 * durable, the error: until recovery at the next mount has completed the
 * move (replaying the journal onto the destination, or rolling forward
 * from the source's names and attributes), nothing done there may be
 * acknowledged, as that recovery would undo it. */
static int wait_durable(struct home *h)
{
	int ret;

	if (!is_flushing(h))
		return durable_failed(h);
	pthread_mutex_lock(&h->files_lock);
	while (h->flushing)
		pthread_cond_wait(&h->flush_cond, &h->files_lock);
	ret = h->durable_err;
	pthread_mutex_unlock(&h->files_lock);
	return ret;
}

/* The home a child of dir named name belongs to, made if need be: for
 * requests that create the child, or act on one the kernel has looked up. */
static struct home *child_home(struct fs *fs, struct inode *dir, const char *name)
{
	return is_root(fs, dir) ? home_get(fs, name) : dir->home;
}

/* child_home for a name that may not exist (lookup): see home_lookup.
 * "." and ".." at the root are the root itself, of no home. -errno: the
 * entry is not there. */
static int lookup_home(struct fs *fs, struct inode *dir, const char *name, struct home **hp)
{
	*hp = NULL;
	if (!is_root(fs, dir)) {
		*hp = dir->home;
		return 0;
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	return home_lookup(fs, name, hp);
}

/* Descriptor in which dir's child name lives: at the root, the root of the
 * datastore the home is placed on. */
static int dir_fd_for(struct fs *fs, struct inode *dir, struct home *h)
{
	return is_root(fs, dir) && h != NULL ? h->ds_fd : dir->fd;
}

/* Attributes as the application must see them. */
static void fix_attr(struct inode *inode, struct stat *st)
{
	struct home *h = inode->home;

	if (inode->rfile != NULL && h != NULL && h->reloc != NULL)
		reloc_file_stat(h->reloc, inode->rfile, st);
	st->st_ino = inode->ino_shown;
}

static int stat_inode(struct inode *inode, struct stat *st)
{
	if (fstatat(inode->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	fix_attr(inode, st);
	return 0;
}

/* Resolves name in dir to an inode holding one more lookup. The caller
 * holds the gate of the child's home. */
static int do_lookup(struct fs *fs, struct inode *dir, struct home *h,
		     const char *name, struct fuse_entry_param *e)
{
	struct inode_new init = { 0 };
	struct inode *inode;
	int fd, ret, created;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = fs->attr_timeout;
	e->entry_timeout = fs->entry_timeout;
	/* The kernel resolves "." and ".." itself; never let ".." leave the tree. */
	if (strcmp(name, "..") == 0 && is_root(fs, dir))
		name = ".";
	fd = openat(dir_fd_for(fs, dir, h), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	/* All set before the inode is visible: a concurrent lookup of another
	 * link may find it at once. */
	init.type = e->attr.st_mode;
	init.home = h;
	init.shown = inomap_get(&fs->inomap, e->attr.st_dev, e->attr.st_ino);
	if (init.shown == 0) {
		close(fd);
		return -ENOMEM;
	}
	if (h != NULL && h->reloc != NULL && S_ISREG(e->attr.st_mode))
		init.rfile = reloc_file_find(h->reloc, e->attr.st_dev, e->attr.st_ino);
	inode = inode_table_get(&fs->inodes, e->attr.st_dev, e->attr.st_ino, fd, &init, &created);
	if (inode == NULL)
		return -errno;
	fix_attr(inode, &e->attr);
	e->ino = nodeid_of(fs, inode);
	return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	unsigned bg = (unsigned)fs->cfg->fuse.max_threads * 3 / 4;

	conn->max_write = (unsigned)fs->max_request;
	conn->max_readahead = (unsigned)fs->max_request;
	/* Asynchronous requests (readahead, AIO O_DIRECT) in flight at once:
	 * fewer than the worker threads, so that one VM's deep queue leaves
	 * some for the other homes. */
	conn->max_background = bg < 1 ? 1 : bg > 64 ? 64 : bg;
	conn->congestion_threshold = conn->max_background * 3 / 4;
	if (conn->congestion_threshold < 1)
		conn->congestion_threshold = 1;
	/* relocfs owns the tree: nothing changes it behind the kernel's back. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* The kernel clears setuid/setgid on a write or chown by a user, as a
	 * local filesystem does; relocfs writes as root and would keep them. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* ACLs of the datastore count in the kernel's permission checks. */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* The umask is relocfs's to apply: not beneath a default ACL. */
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	fs->dont_mask = (conn->want & FUSE_CAP_DONT_MASK) != 0;
	if (fs->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	fs->writeback_cache = (conn->want & FUSE_CAP_WRITEBACK_CACHE) != 0;
	log_debug("init: proto %u.%u, max_write %u, writeback_cache %d",
		  conn->proto_major, conn->proto_minor, conn->max_write,
		  fs->writeback_cache);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode *dir = inode_of(req, parent);
	struct fuse_entry_param e;
	struct home *h;
	int ret = lookup_home(fs, dir, name, &h);

	if (ret == 0) {
		gate_enter(h);
		ret = do_lookup(fs, dir, h, name, &e);
		gate_leave(h);
	}
	if (ret == -ENOENT && fs->negative_timeout > 0) {
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->negative_timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_table_forget(&fs_of(req)->inodes, inode_of(req, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		inode_table_forget(&fs_of(req)->inodes,
				   inode_of(req, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct inode *inode = inode_of(req, ino);
	struct home *h = gate_enter(inode->home);
	struct stat st;
	int ret;

	(void)fi;
	ret = stat_inode(inode, &st);
	gate_leave(h);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, fs_of(req)->attr_timeout);
}

static int set_times(const struct inode *inode, int fd, const struct stat *attr,
		     int valid)
{
	struct timespec tv[2];
	char path[PROC_PATH_MAX];

	tv[0].tv_sec = 0;
	tv[1].tv_sec = 0;
	tv[0].tv_nsec = UTIME_OMIT;
	tv[1].tv_nsec = UTIME_OMIT;
	if (valid & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (fd >= 0)
		return futimens(fd, tv) < 0 ? -errno : 0;
	if (S_ISLNK(inode->type))
		return utimensat(inode->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	proc_path(path, inode->fd);
	return utimensat(AT_FDCWD, path, tv, 0) < 0 ? -errno : 0;
}

static void mirror_attr(struct home *h, struct inode *inode)
{
	struct reloc_ns ns = { .op = RELOC_NS_ATTR, .obj_fd = inode->fd };

	if (h != NULL && h->reloc != NULL)
		reloc_ns_mirror(h->reloc, &ns);
}

/* Whether the caller is in group gid. groups are its groups, NULL to ask the
 * kernel (all of them; none if it cannot tell, which drops setgid more,
 * never less). */
static bool caller_in_group(fuse_req_t req, const gid_t *groups, int ngroups, gid_t gid)
{
	gid_t buf[CREDS_GROUPS_BUF], *all = buf;
	bool in = false;

	if (groups == NULL) {
		if (fuse_req_ctx(req)->gid == gid)
			return true;
		ngroups = creds_groups(req, buf, CREDS_GROUPS_BUF, &all);
		groups = all;
	}
	for (int i = 0; i < ngroups && !in; i++)
		in = groups[i] == gid;
	if (all != buf)
		free(all);
	return in;
}

/* The mode a chmod by the caller leaves: like a local filesystem, setgid
 * is dropped when a user outside the file's group sets a mode with it. The
 * kernel's kill-priv chmod on a user's write (without
 * FUSE_HANDLE_KILLPRIV_V2) relies on this too. */
static mode_t chmod_mode(fuse_req_t req, struct inode *inode, const struct stat *attr, int valid)
{
	mode_t mode = attr->st_mode;
	struct stat st;
	gid_t gid;

	if (fuse_req_ctx(req)->uid == 0 || !(mode & S_ISGID))
		return mode;
	if (valid & FUSE_SET_ATTR_GID)
		gid = attr->st_gid;
	else if (fstatat(inode->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0)
		gid = st.st_gid;
	else
		return mode;
	return caller_in_group(req, NULL, 0, gid) ? mode : mode & ~S_ISGID;
}

/* Drops setuid/setgid after a write or truncate by a caller without
 * CAP_FSETID, as the VFS does: setuid always, setgid from a group-executable
 * file or when the caller is outside the file's group. With
 * FUSE_HANDLE_KILLPRIV_V2 (all) the kernel leaves all of it to relocfs;
 * without, it sends the first two as a chmod and only the last is left.
 * groups are the caller's, NULL to ask the kernel. A changed mode makes the
 * kernel's cached one stale: inode ino is invalidated (0: the reply carries
 * the new attributes). */
static void kill_suidgid(fuse_req_t req, struct inode *inode, fuse_ino_t ino, int fd, bool all,
			 const gid_t *groups, int ngroups)
{
	char path[PROC_PATH_MAX];
	mode_t kill = 0;
	struct stat st;

	if ((fd >= 0 ? fstat(fd, &st) : fstatat(inode->fd, "", &st, AT_EMPTY_PATH)) < 0 ||
	    !S_ISREG(st.st_mode) || !(st.st_mode & (S_ISUID | S_ISGID)))
		return;
	if (all && (st.st_mode & S_ISUID))
		kill |= S_ISUID;
	if ((st.st_mode & S_ISGID) &&
	    ((st.st_mode & S_IXGRP) ? all : !caller_in_group(req, groups, ngroups, st.st_gid)))
		kill |= S_ISGID;
	if (kill == 0)
		return;
	proc_path(path, inode->fd);
	if (chmod(path, st.st_mode & 07777 & ~kill) < 0) {
		log_warning("dropping setuid/setgid of inode %llu: %s",
			    (unsigned long long)st.st_ino, strerror(errno));
		return;
	}
	mirror_attr(inode->home, inode);
	if (ino != 0)
		fuse_lowlevel_notify_inval_inode(fs_of(req)->se, ino, -1, 0);
}

/* fallocate and copy_file_range modify a file too, but their requests carry
 * no kill flag: a caller other than root is taken to lack CAP_FSETID. */
static void kill_suidgid_unflagged(fuse_req_t req, struct open_file *of, fuse_ino_t ino)
{
	if (wire_kill_priv_v2() && fuse_req_ctx(req)->uid != 0)
		kill_suidgid(req, of->inode, ino, of->fd, true, of->groups, of->ngroups);
}

/* Whether a chown by the caller must drop setgid beyond what the
 * datastore's chown as root drops (setuid, and setgid with group execute):
 * a caller without CAP_FSETID outside the file's group before the chown
 * loses it, as with the VFS's setattr_should_drop_sgid. Taken as CAP_FSETID:
 * root only. */
static bool chown_kills_sgid(fuse_req_t req, struct inode *inode)
{
	struct stat st;

	return fuse_req_ctx(req)->uid != 0 &&
	       fstatat(inode->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
	       !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) &&
	       (st.st_mode & (S_ISGID | S_IXGRP)) == S_ISGID &&
	       !caller_in_group(req, NULL, 0, st.st_gid);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int valid, struct fuse_file_info *fi)
{
	struct inode *inode = inode_of(req, ino);
	struct home *h = gate_enter(inode->home);
	struct rfile *rf = inode->rfile;
	int fd = fi != NULL ? of_of(fi)->fd : -1;
	char path[PROC_PATH_MAX];
	bool meta = false;
	struct stat st;
	int ret = durable_failed(h);

	if (ret < 0)
		goto out;
	proc_path(path, inode->fd);
	if (valid & FUSE_SET_ATTR_MODE) {
		mode_t mode = chmod_mode(req, inode, attr, valid);

		ret = fd >= 0 ? fchmod(fd, mode) : fchmodat(AT_FDCWD, path, mode, 0);
		if (ret < 0)
			goto out_errno;
		meta = true;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		bool kill_sgid = chown_kills_sgid(req, inode);

		if (fchownat(inode->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			goto out_errno;
		meta = true;
		if (kill_sgid && fstatat(inode->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
		    (st.st_mode & S_ISGID) && chmod(path, st.st_mode & 07777 & ~S_ISGID) < 0)
			goto out_errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		if (rf != NULL) {
			ret = reloc_file_truncate(h->reloc, rf, attr->st_size);
			if (ret < 0 && wait_rollback(h, inode)) {
				rf = NULL;	/* rolled back: on the source */
				ret = 0;
			}
		}
		if (rf == NULL &&
		    (fd >= 0 ? ftruncate(fd, attr->st_size) : truncate(path, attr->st_size)) < 0)
			ret = -errno;
		if (ret < 0)
			goto out;
		/* No notify: the reply's attributes carry the new mode. */
		if (wire_kill_priv_v2() && wire_kill_suidgid())
			kill_suidgid(req, inode, 0, fd, true, NULL, 0);
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		ret = set_times(inode, fd, attr, valid);
		if (ret < 0)
			goto out;
		if (rf != NULL && (valid & FUSE_SET_ATTR_MTIME))
			reloc_file_times_set(h->reloc, rf);
		meta = true;
	}
	if (meta)
		mirror_attr(h, inode);
	ret = stat_inode(inode, &st);
	goto out;
out_errno:
	ret = -errno;
out:
	gate_leave(h);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, fs_of(req)->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct inode *inode = inode_of(req, ino);
	struct home *h = gate_enter(inode->home);
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(inode->fd, "", buf, sizeof(buf));
	int err = errno;

	gate_leave(h);
	if (n < 0)
		fuse_reply_err(req, err);
	else if ((size_t)n >= sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

/* After a namespace change made on the source, the same on the destination. */
static void mirror(struct home *h, enum reloc_ns_op op, struct inode *dir,
		   const char *name, struct inode *dir2, const char *name2,
		   unsigned flags, struct inode *obj)
{
	struct reloc_ns ns = {
		.op = op, .parent_fd = dir->fd, .name = name,
		.parent2_fd = dir2 ? dir2->fd : -1, .name2 = name2,
		.flags = flags, .obj_fd = obj ? obj->fd : -1,
	};

	if (h != NULL && h->reloc != NULL && dir->home == h)
		reloc_ns_mirror(h->reloc, &ns);
}

/* The permission bits of a new object in directory dfd: the caller's umask
 * applies only where dfd has no default ACL (which gives the mode then), as
 * the VFS does. Without FUSE_CAP_DONT_MASK the kernel applied it already. */
static mode_t create_mode(fuse_req_t req, int dfd, mode_t mode)
{
	char path[PROC_PATH_MAX];

	if (!fs_of(req)->dont_mask)
		return mode;
	proc_path(path, dfd);
	if (getxattr(path, "system.posix_acl_default", NULL, 0) > 0)
		return mode;
	return mode & ~fuse_req_ctx(req)->umask;
}

/* mknod, mkdir and symlink: the new object is made as the caller. */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev, const char *link)
{
	struct fs *fs = fs_of(req);
	struct inode *dir = inode_of(req, parent);
	struct home *h = gate_enter(child_home(fs, dir, name));
	int dfd = dir_fd_for(fs, dir, h);
	struct fuse_entry_param e;
	struct creds_saved saved;
	int ret;

	ret = wait_durable(h);
	if (ret == 0)
		ret = creds_enter(req, &saved);
	if (ret < 0)
		goto out;
	if (link != NULL)
		ret = symlinkat(link, dfd, name);
	else if (S_ISDIR(mode))
		ret = mkdirat(dfd, name, create_mode(req, dfd, mode & ~S_IFMT));
	else
		ret = mknodat(dfd, name, (mode & S_IFMT) | create_mode(req, dfd, mode & ~S_IFMT), rdev);
	if (ret < 0)
		ret = -errno;
	creds_leave(&saved);
	if (ret < 0)
		goto out;
	mirror(h, RELOC_NS_CREATE, dir, name, NULL, NULL, 0, NULL);
	ret = do_lookup(fs, dir, h, name, &e);
out:
	gate_leave(h);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	make_node(req, parent, name, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	make_node(req, parent, name, S_IFLNK, 0, link);
}

/* Gates two homes in a fixed order (address), once if they are the same. */
static void gate_pair(struct home *a, struct home *b)
{
	if (a == b || b == NULL) {
		gate_enter(a);
	} else if (a == NULL) {
		gate_enter(b);
	} else if ((uintptr_t)a < (uintptr_t)b) {
		gate_enter(a);
		gate_enter(b);
	} else {
		gate_enter(b);
		gate_enter(a);
	}
}

static void ungate_pair(struct home *a, struct home *b)
{
	gate_leave(a);
	if (b != a)
		gate_leave(b);
}

/* gate_pair for a change that must wait for the homes' flushes: waits
 * outside the gates, since waiting for one home's flush while holding the
 * other's gate would hold up that other home's cutover pause. Returns with
 * both gates held, and the error of a home that could not be made durable. */
static int gate_pair_durable(struct home *a, struct home *b)
{
	for (;;) {
		int ret = wait_durable(a);

		if (ret == 0)
			ret = wait_durable(b);
		gate_pair(a, b);
		if (ret < 0 || (!is_flushing(a) && !is_flushing(b)))
			return ret;
		ungate_pair(a, b);	/* a flip came in between: again */
	}
}

/* Crossing homes while one relocates would leave data behind. */
static bool cross_relocating(struct home *a, struct home *b)
{
	return a != b && ((a != NULL && a->reloc != NULL) || (b != NULL && b->reloc != NULL));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct fs *fs = fs_of(req);
	struct inode *inode = inode_of(req, ino);
	struct inode *dir = inode_of(req, newparent);
	struct home *h = child_home(fs, dir, newname);
	struct fuse_entry_param e;
	char path[PROC_PATH_MAX];
	int ret;

	/* The object's home changes too (its link count). */
	ret = gate_pair_durable(inode->home, h);
	if (ret < 0)
		goto out;
	/* A link cannot span two datastores, nor a home while it moves. */
	if (cross_relocating(inode->home, h) ||
	    (inode->home != NULL && h != NULL && inode->home->ds_fd != h->ds_fd)) {
		ret = -EXDEV;
		goto out;
	}
	proc_path(path, inode->fd);
	if (linkat(AT_FDCWD, path, dir_fd_for(fs, dir, h), newname, AT_SYMLINK_FOLLOW) < 0) {
		ret = -errno;
		goto out;
	}
	mirror(h, RELOC_NS_LINK, dir, newname, NULL, NULL, 0, inode);
	ret = do_lookup(fs, dir, h, newname, &e);
out:
	ungate_pair(inode->home, h);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct fs *fs = fs_of(req);
	struct inode *dir = inode_of(req, parent);
	struct home *h = gate_enter(child_home(fs, dir, name));
	int ret = wait_durable(h);

	if (ret < 0)
		goto out;
	if (is_root(fs, dir) && h->reloc != NULL)
		ret = -EBUSY;
	else if (unlinkat(dir_fd_for(fs, dir, h), name, flags) < 0)
		ret = -errno;
	else if (is_root(fs, dir))
		home_removed(fs, h);
	else
		mirror(h, flags ? RELOC_NS_RMDIR : RELOC_NS_UNLINK, dir, name, NULL, NULL, 0, NULL);
out:
	gate_leave(h);
	fuse_reply_err(req, -ret);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, AT_REMOVEDIR);
}

/* Objects moved into another home belong to it from now on: the object at
 * dirfd/name and, for a directory, every known inode below it. */
static void rehome(struct fs *fs, int dirfd, const char *name, struct home *from, struct home *to)
{
	char proc[PROC_PATH_MAX], top[PATH_MAX + 1], path[PATH_MAX + 1];
	struct inode **inodes;
	size_t n;
	ssize_t k;
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	proc_path(proc, fd);
	k = readlink(proc, top, PATH_MAX);
	close(fd);
	if (k < 0 || inode_table_collect(&fs->inodes, from, &inodes, &n) < 0)
		return;
	top[k] = '\0';
	for (size_t i = 0; i < n; i++) {
		proc_path(proc, inodes[i]->fd);
		k = readlink(proc, path, PATH_MAX);
		if (k >= 0) {
			path[k] = '\0';
			if (strncmp(path, top, strlen(top)) == 0 &&
			    (path[strlen(top)] == '\0' || path[strlen(top)] == '/'))
				inodes[i]->home = to;
		}
		inode_table_forget(&fs->inodes, inodes[i], 1);
	}
	free(inodes);
}

/* A whiteout left by RENAME_WHITEOUT is a new object: made as the caller,
 * so it is the caller's (or the setgid directory's group). */
static int rename_as(fuse_req_t req, int fd1, const char *name, int fd2,
		     const char *newname, unsigned int flags)
{
	struct creds_saved saved = { 0 };
	int ret = 0;

	if (flags & RENAME_WHITEOUT)
		ret = creds_enter(req, &saved);
	if (ret == 0 && renameat2(fd1, name, fd2, newname, flags) < 0)
		ret = -errno;
	creds_leave(&saved);
	return ret;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct inode *d1 = inode_of(req, parent), *d2 = inode_of(req, newparent);
	struct home *h1 = child_home(fs, d1, name), *h2 = child_home(fs, d2, newname);
	bool both_root = is_root(fs, d1) && is_root(fs, d2);
	int fd1, fd2, ret = 0;

	ret = gate_pair_durable(h1, h2);
	if (ret < 0)
		goto out;
	fd1 = dir_fd_for(fs, d1, h1);
	fd2 = dir_fd_for(fs, d2, h2);
	if (cross_relocating(h1, h2) ||
	    ((is_root(fs, d1) || is_root(fs, d2)) && (h1->reloc != NULL || h2->reloc != NULL))) {
		ret = -EBUSY;
		goto out;
	}
	/* Homes on different datastores cannot take each other's entries. */
	if (h1 != h2 && h1->ds_fd != h2->ds_fd) {
		ret = -EXDEV;
		goto out;
	}
	ret = rename_as(req, fd1, name, fd2, newname, flags);
	if (ret < 0)
		goto out;
	if (both_root) {
		home_swap_names(fs, h1, h2);
	} else if (h1 == h2) {
		mirror(h1, RELOC_NS_RENAME, d1, name, d2, newname, flags, NULL);
	} else {
		/* Exchange: first move h2's object to h1, then h1's object to h2,
		 * each by its new path, which no longer overlap. */
		if (flags & RENAME_EXCHANGE)
			rehome(fs, fd1, name, h2, h1);
		rehome(fs, fd2, newname, h1, h2);
	}
out:
	ungate_pair(h1, h2);
	fuse_reply_err(req, -ret);
}

/* Backing open flags for a request's flags. O_DIRECT is honoured by the
 * kernel above relocfs (the request bypasses the mount's page cache); the
 * backing descriptor is buffered so that libfuse's unaligned buffers can be
 * written to any datastore, and fsync makes it durable as usual. */
static int backing_flags(const struct fs *fs, int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT);
	if (fs->writeback_cache) {
		/* The kernel reads around partial pages and keeps the size. */
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags | O_CLOEXEC;
}

static struct open_file *open_file_new(fuse_req_t req, struct inode *inode, int fd, int flags)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct open_file *of = calloc(1, sizeof(*of));
	struct home *h = inode->home;

	if (of == NULL)
		return NULL;
	if (ctx->uid != 0 && (flags & O_ACCMODE) != O_RDONLY && S_ISREG(inode->type)) {
		gid_t buf[CREDS_GROUPS_BUF], *groups;
		int n = creds_groups(req, buf, CREDS_GROUPS_BUF, &groups);

		n = n < 0 ? 0 : n;
		of->groups = malloc(((size_t)n + 1) * sizeof(gid_t));
		if (of->groups != NULL) {
			memcpy(of->groups, groups, (size_t)n * sizeof(gid_t));
			of->groups[n++] = ctx->gid;
			of->ngroups = n;
		}
		if (groups != buf)
			free(groups);
	}
	of->fd = fd;
	of->flags = flags;
	of->inode = inode;
	if (h != NULL && S_ISREG(inode->type)) {
		pthread_mutex_lock(&h->files_lock);
		of->next = h->files;
		if (h->files != NULL)
			h->files->prev = of;
		h->files = of;
		pthread_mutex_unlock(&h->files_lock);
	}
	return of;
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U	/* Linux 6.8: never reused */
#endif

/* Whether close(2) of a file on this backing filesystem can report nothing:
 * ext2/3/4, XFS, Btrfs and tmpfs have no flush operation, so a FLUSH
 * request (a round trip per close) would only close a duplicate for
 * nothing. NFS and the others report delayed write errors at close, so
 * their files keep it. Remembered per mount, by its unique ID (statx,
 * from the inode: statfs on NFS asks the server); a device number, or an
 * older mount ID, could pass to another filesystem once its own is gone. */
static bool backing_close_quiet(struct fs *fs, int fd)
{
	unsigned i, n = __atomic_load_n(&fs->nquiet, __ATOMIC_ACQUIRE);
	struct statx stx;
	struct statfs sfs;
	uint64_t mnt;
	bool quiet;

	/* Before 6.8 there is no such ID: the FLUSH stays. */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID_UNIQUE, &stx) < 0 ||
	    !(stx.stx_mask & STATX_MNT_ID_UNIQUE))
		return false;
	mnt = stx.stx_mnt_id;
	for (i = 0; i < n; i++)
		if (fs->quiet_mnts[i].mnt == mnt)
			return fs->quiet_mnts[i].quiet;
	if (fstatfs(fd, &sfs) < 0)
		return false;
	quiet = sfs.f_type == 0xEF53 ||		/* EXT4_SUPER_MAGIC, also ext2/3 */
		sfs.f_type == 0x58465342 ||	/* XFS_SUPER_MAGIC */
		sfs.f_type == 0x9123683E ||	/* BTRFS_SUPER_MAGIC */
		sfs.f_type == 0x01021994;	/* TMPFS_MAGIC */
	pthread_mutex_lock(&fs->quiet_lock);
	n = fs->nquiet;
	for (i = 0; i < n && fs->quiet_mnts[i].mnt != mnt; i++)
		;
	if (i == n && n < sizeof(fs->quiet_mnts) / sizeof(fs->quiet_mnts[0])) {
		fs->quiet_mnts[n].mnt = mnt;
		fs->quiet_mnts[n].quiet = quiet;
		__atomic_store_n(&fs->nquiet, n + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&fs->quiet_lock);
	return quiet;
}

/* An O_DIRECT open bypasses the mount's page cache either way; with
 * FOPEN_DIRECT_IO and FOPEN_PARALLEL_DIRECT_WRITES the kernel also lets
 * writers of one file run side by side (wire_parallel_direct_writes says
 * where). Such a write drops its range from the page cache before it is
 * sent, but not after, as O_DIRECT otherwise does: a read through the page
 * cache racing with it could leave the old data cached. So an O_DIRECT
 * open of a file another handle reads through the page cache keeps the
 * kernel's O_DIRECT (whose writes go one at a time there anyway), and
 * while a handle of a file has FOPEN_DIRECT_IO, every new handle of it
 * bypasses the page cache too. Pages cached meanwhile all the same (a
 * private mapping, readahead(2), an asynchronous O_DIRECT write beside a
 * cached handle, which the kernel does not drop after either) are dropped
 * at the first open that uses the page cache again. */
static void direct_open(struct fs *fs, struct open_file *of, struct fuse_file_info *fi)
{
	struct inode *in = of->inode;

	if (!S_ISREG(in->type) || !wire_parallel_direct_writes())
		return;
	pthread_mutex_lock(&fs->iomode_lock);
	if (in->direct_opens > 0 || ((fi->flags & O_DIRECT) && in->cached_opens == 0)) {
		of->iomode = IOMODE_DIRECT;
		in->direct_opens++;
		in->direct_used = true;
	} else {
		of->iomode = IOMODE_CACHED;
		in->cached_opens++;
		if (in->direct_used)
			fi->keep_cache = 0;
		in->direct_used = false;
	}
	log_debug("open of inode %llu%s: page cache %s (handles: %u bypassing it, %u using it)",
		  (unsigned long long)in->ino, (fi->flags & O_DIRECT) ? " with O_DIRECT" : "",
		  of->iomode == IOMODE_DIRECT ? "bypassed" : fi->keep_cache ? "used" : "dropped, then used",
		  in->direct_opens, in->cached_opens);
	pthread_mutex_unlock(&fs->iomode_lock);
	if (of->iomode == IOMODE_DIRECT) {
		fi->direct_io = 1;
		wire_reply_parallel_direct_writes();
	}
}

static void open_file_free(struct fs *fs, struct open_file *of)
{
	struct home *h = of->inode->home;

	if (of->iomode != IOMODE_NONE) {
		pthread_mutex_lock(&fs->iomode_lock);
		if (of->iomode == IOMODE_DIRECT)
			of->inode->direct_opens--;
		else
			of->inode->cached_opens--;
		pthread_mutex_unlock(&fs->iomode_lock);
	}

	if (h != NULL && S_ISREG(of->inode->type)) {
		pthread_mutex_lock(&h->files_lock);
		if (of->prev != NULL)
			of->prev->next = of->next;
		else if (h->files == of)
			h->files = of->next;
		if (of->next != NULL)
			of->next->prev = of->prev;
		pthread_mutex_unlock(&h->files_lock);
	}
	close(of->fd);
	free(of->groups);
	free(of);
}

/* The open was given up (interrupted, or the connection is gone) before
 * its reply reached the kernel: no RELEASE will come for this handle. */
static void open_abandoned(struct fs *fs, struct open_file *of, bool created)
{
	struct inode *in = of->inode;
	struct home *h = gate_enter(in->home);

	open_file_free(fs, of);
	gate_leave(h);
	if (created)
		inode_table_forget(&fs->inodes, in, 1);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *dir = inode_of(req, parent);
	struct home *h = gate_enter(child_home(fs, dir, name));
	struct fuse_entry_param e;
	struct creds_saved saved;
	struct open_file *of;
	int dfd, fd = -1, ret;

	ret = wait_durable(h);
	if (ret == 0)
		ret = creds_enter(req, &saved);
	if (ret < 0)
		goto out;
	dfd = dir_fd_for(fs, dir, h);
	fd = openat(dfd, name, backing_flags(fs, fi->flags) | O_CREAT | (fi->flags & O_EXCL) |
		    O_NOFOLLOW, create_mode(req, dfd, mode));
	if (fd < 0)
		ret = -errno;
	creds_leave(&saved);
	if (ret < 0)
		goto out;
	mirror(h, RELOC_NS_CREATE, dir, name, NULL, NULL, 0, NULL);
	ret = do_lookup(fs, dir, h, name, &e);
	if (ret < 0)
		goto out;
	of = open_file_new(req, inode_of(req, e.ino), fd, fi->flags);
	if (of == NULL) {
		inode_table_forget(&fs->inodes, inode_of(req, e.ino), 1);
		ret = -ENOMEM;
		goto out;
	}
	fd = -1;
	fi->fh = (uint64_t)(uintptr_t)of;
	fi->keep_cache = fs->keep_cache;
	fi->noflush = backing_close_quiet(fs, of->fd);
	direct_open(fs, of, fi);
out:
	gate_leave(h);
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else if (fuse_reply_create(req, &e, fi) == -ENOENT)
		open_abandoned(fs, of_of(fi), true);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *inode = inode_of(req, ino);
	struct home *h = gate_enter(inode->home);
	int flags = backing_flags(fs, fi->flags);
	char path[PROC_PATH_MAX];
	struct open_file *of;
	int fd, ret = (fi->flags & O_TRUNC) ? durable_failed(h) : 0;

	if (ret < 0)
		goto out;
	/* While relocating, the base stays frozen: truncation is journaled. */
	if (inode->rfile != NULL)
		flags &= ~O_TRUNC;
	proc_path(path, inode->fd);
	fd = open(path, flags);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	if (inode->rfile != NULL && (fi->flags & O_TRUNC)) {
		ret = reloc_file_truncate(h->reloc, inode->rfile, 0);
		if (ret < 0 && wait_rollback(h, inode))
			ret = ftruncate(fd, 0) < 0 ? -errno : 0;
		if (ret < 0) {
			close(fd);
			goto out;
		}
	}
	/* An atomic O_TRUNC is a truncate the kernel never turns into a chmod;
	 * it then refreshes only size and times. Without the kernel's flag
	 * (before Linux 5.11) a caller other than root is taken to lack
	 * CAP_FSETID. */
	if ((fi->flags & O_TRUNC) &&
	    (wire_kill_priv_v2() ? wire_kill_suidgid() : fuse_req_ctx(req)->uid != 0))
		kill_suidgid(req, inode, ino, fd, true, NULL, 0);
	of = open_file_new(req, inode, fd, fi->flags);
	if (of == NULL) {
		close(fd);
		ret = -ENOMEM;
		goto out;
	}
	fi->fh = (uint64_t)(uintptr_t)of;
	fi->keep_cache = fs->keep_cache;
	fi->noflush = backing_close_quiet(fs, fd);
	direct_open(fs, of, fi);
out:
	gate_leave(h);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else if (fuse_reply_open(req, fi) == -ENOENT)
		open_abandoned(fs, of_of(fi), false);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct open_file *of = of_of(fi);
	struct home *h = gate_enter(of->inode->home);
	char *buf = read_buf(fs);
	ssize_t done = 0;

	(void)ino;
	if (buf == NULL) {
		done = -ENOMEM;
		goto out;
	}
	if (size > fs->max_request)
		size = fs->max_request;
	if (of->inode->rfile != NULL) {
		done = reloc_file_read(h->reloc, of->inode->rfile, buf, size, off);
		goto out;
	}
	while ((size_t)done < size) {
		ssize_t n = pread(of->fd, buf + done, size - (size_t)done, off + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (done == 0)
				done = -errno;
			break;
		}
		if (n == 0)
			break;
		done += n;
	}
out:
	gate_leave(h);
	if (done < 0)
		fuse_reply_err(req, (int)-done);
	else
		fuse_reply_buf(req, buf, (size_t)done);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			 off_t off, struct fuse_file_info *fi)
{
	struct open_file *of = of_of(fi);
	struct home *h = gate_enter(of->inode->home);
	size_t size = fuse_buf_size(in);
	bool v2 = wire_kill_priv_v2();
	ssize_t n = 0;

	if (of->inode->rfile != NULL) {
		const char *data = in->buf[0].mem;

		/* Requests arrive in memory (no splice): one buffer. */
		if (in->count != 1 || (in->buf[0].flags & FUSE_BUF_IS_FD))
			n = -EIO;
		else
			n = reloc_file_write(h->reloc, of->inode->rfile, data, size, off,
					     (of->flags & O_APPEND) != 0,
					     (of->flags & (O_SYNC | O_DSYNC)) != 0);
		if (n >= 0 || !wait_rollback(h, of->inode))
			goto out;
		n = 0;	/* rolled back: on the source, below */
	}
	n = (of->flags & (O_SYNC | O_DSYNC)) ? wait_durable(h) : durable_failed(h);
	if (n < 0)
		goto out;
	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		n = pwrite(of->fd, in->buf[0].mem, size, off);
		if (n < 0)
			n = -errno;
	} else {
		struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);

		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = of->fd;
		out.buf[0].pos = off;
		n = fuse_buf_copy(&out, in, 0);
	}
out:
	if (n > 0 && (v2 ? wire_kill_suidgid() : of->groups != NULL))
		kill_suidgid(req, of->inode, ino, of->fd, v2, of->groups, of->ngroups);
	gate_leave(h);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct open_file *of = of_of(fi);
	struct home *h = gate_enter(of->inode->home);
	/* Closing a duplicate reports delayed write errors (NFS) at close(2). */
	int fd = dup(of->fd), err = 0;

	(void)ino;
	if (fd < 0 || close(fd) < 0)
		err = errno;
	gate_leave(h);
	fuse_reply_err(req, err);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct open_file *of = of_of(fi);
	struct home *h = gate_enter(of->inode->home);

	(void)ino;
	open_file_free(fs_of(req), of);
	gate_leave(h);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct open_file *of = of_of(fi);
	struct home *h = gate_enter(of->inode->home);
	int ret = 0;

	(void)ino;
	ret = wait_durable(h);
	if (ret < 0)
		goto out;
	if (of->inode->rfile != NULL) {
		ret = reloc_file_sync(h->reloc, of->inode->rfile);
		/* Rolled back: the source was restored and flushed; the
		 * fsync below covers the rest. */
		if (ret == 0 || !wait_rollback(h, of->inode))
			goto out;
		ret = 0;
	}
	if ((datasync ? fdatasync(of->fd) : fsync(of->fd)) < 0)
		ret = -errno;
out:
	gate_leave(h);
	fuse_reply_err(req, -ret);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->inode = inode_of(req, ino);
	fi->fh = (uint64_t)(uintptr_t)d;
	/* Every change to a directory goes through the mount, which tells the
	 * kernel, and a cutover changes no name, type or number: the kernel
	 * may keep listings across opens. */
	fi->cache_readdir = fs_of(req)->keep_cache;
	fi->keep_cache = fs_of(req)->keep_cache;
	fuse_reply_open(req, fi);
}

static void dir_clear(struct dir_handle *d)
{
	free(d->ents);
	free(d->names);
	d->ents = NULL;
	d->names = NULL;
	d->n = 0;
}

struct dir_builder {
	struct dir_ent *ents;
	size_t n, cap;
	char *names;
	size_t nlen, ncap;
};

static int dir_add(struct dir_builder *b, const char *name, ino_t ino, unsigned char type)
{
	size_t len = strlen(name) + 1;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct dir_ent *v = realloc(b->ents, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		b->ents = v;
		b->cap = cap;
	}
	if (b->nlen + len > b->ncap) {
		size_t cap = b->ncap ? b->ncap * 2 : 4096;
		char *p;

		while (cap < b->nlen + len)
			cap *= 2;
		p = realloc(b->names, cap);
		if (p == NULL)
			return -ENOMEM;
		b->names = p;
		b->ncap = cap;
	}
	memcpy(b->names + b->nlen, name, len);
	/* Offsets into names, turned into pointers once names stops moving. */
	b->ents[b->n].name = (char *)(uintptr_t)b->nlen;
	b->ents[b->n].ino = ino;
	b->ents[b->n].type = type;
	b->n++;
	b->nlen += len;
	return 0;
}

/* The number an entry of dir shows: what a lookup of it would show.
 * The parent of a home's top directory is the mount root, not the
 * datastore's root. (The caller holds the home's gate.) */
static uint64_t entry_ino(struct fs *fs, const struct inode *dir, const struct dirent *de)
{
	struct stat st;

	if (strcmp(de->d_name, ".") == 0)
		return dir->ino_shown;
	if (strcmp(de->d_name, "..") == 0 && dir->home != NULL &&
	    fstat(dir->home->ds_fd, &st) == 0 && st.st_dev == dir->dev && st.st_ino == de->d_ino)
		return fs->inodes.root.ino_shown;
	return inomap_get(&fs->inomap, dir->dev, de->d_ino);
}

static int dir_read_fd(struct dir_builder *b, const struct inode *dir, struct fs *fs, bool root)
{
	DIR *dp = treeutil_opendir(dir->fd, ".");
	int ret = 0;

	if (dp == NULL)
		return -errno;
	for (;;) {
		struct dirent *de;
		uint64_t ino;

		errno = 0;
		de = readdir(dp);
		if (de == NULL) {
			ret = -errno;
			break;
		}
		/* A home placed on another datastore hides the source's entry. */
		if (root && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			pthread_mutex_lock(&fs->homes_lock);
			bool placed = placement_get(&fs->placement, de->d_name) != NULL;

			pthread_mutex_unlock(&fs->homes_lock);
			if (placed)
				continue;
		}
		ino = entry_ino(fs, dir, de);
		ret = ino == 0 ? -ENOMEM : dir_add(b, de->d_name, ino, de->d_type);
		if (ret < 0)
			break;
	}
	closedir(dp);
	return ret;
}

/* Homes placed off the source, listed at the root. */
static int dir_add_placed(struct dir_builder *b, struct fs *fs)
{
	char **names = NULL;
	size_t n = 0;
	int ret = 0;

	pthread_mutex_lock(&fs->homes_lock);
	names = calloc(fs->placement.n + 1, sizeof(*names));
	for (size_t i = 0; names != NULL && i < fs->placement.n; i++)
		if ((names[n] = strdup(fs->placement.v[i].name)) != NULL)
			n++;
	pthread_mutex_unlock(&fs->homes_lock);
	if (names == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct home *h = home_get(fs, names[i]);
		struct stat st;

		/* Under the gate: a flip moves the home and its numbers at once. */
		gate_enter(h);
		if (ret == 0 && h != NULL && fstatat(h->ds_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
			uint64_t ino = inomap_get(&fs->inomap, st.st_dev, st.st_ino);

			ret = ino == 0 ? -ENOMEM : dir_add(b, names[i], ino, (unsigned char)(IFTODT(st.st_mode)));
		}
		gate_leave(h);
		free(names[i]);
	}
	free(names);
	return ret;
}

static int dir_load(struct fs *fs, struct dir_handle *d)
{
	struct dir_builder b = { 0 };
	struct home *h = gate_enter(d->inode->home);
	bool root = is_root(fs, d->inode);
	int ret;

	dir_clear(d);
	ret = dir_read_fd(&b, d->inode, fs, root);
	gate_leave(h);
	if (ret == 0 && root)
		ret = dir_add_placed(&b, fs);
	if (ret < 0) {
		free(b.ents);
		free(b.names);
		return ret;
	}
	for (size_t i = 0; i < b.n; i++)
		b.ents[i].name = b.names + (uintptr_t)b.ents[i].name;
	d->ents = b.ents;
	d->names = b.names;
	d->n = b.n;
	return 0;
}

static int is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' &&
	       (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi, int plus)
{
	struct fs *fs = fs_of(req);
	struct dir_handle *d = dh_of(fi);
	struct inode *dir = inode_of(req, ino);
	size_t rem = size;
	char *buf, *p;
	int err = 0;

	if (offset == 0 || d->ents == NULL) {
		err = dir_load(fs, d);
		if (err < 0) {
			fuse_reply_err(req, -err);
			return;
		}
	}
	buf = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	for (size_t i = (size_t)offset; i < d->n; i++) {
		const struct dir_ent *de = &d->ents[i];
		struct fuse_entry_param e;
		size_t entsize;

		if (plus && !is_dot_or_dotdot(de->name)) {
			struct home *h;
			int ret = lookup_home(fs, dir, de->name, &h);

			if (ret == 0) {
				gate_enter(h);
				ret = do_lookup(fs, dir, h, de->name, &e);
				gate_leave(h);
			}
			if (ret == -ENOENT)
				continue;	/* gone since the snapshot */
			if (ret < 0) {
				err = -ret;
				break;
			}
			entsize = fuse_add_direntry_plus(req, p, rem, de->name, &e, (off_t)i + 1);
			if (entsize > rem) {
				inode_table_forget(&fs->inodes, inode_of(req, e.ino), 1);
				break;
			}
		} else {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = de->ino;
			e.attr.st_mode = (mode_t)de->type << 12;
			entsize = plus ? fuse_add_direntry_plus(req, p, rem, de->name, &e, (off_t)i + 1)
				       : fuse_add_direntry(req, p, rem, de->name, &e.attr, (off_t)i + 1);
			if (entsize > rem)
				break;
		}
		p += entsize;
		rem -= entsize;
	}
	/* Entries already added must reach the kernel: they hold lookups. */
	if (err != 0 && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = dh_of(fi);

	(void)ino;
	dir_clear(d);
	free(d);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct inode *inode = inode_of(req, ino);
	struct home *h = gate_enter(inode->home);
	int fd = -1, err = -wait_durable(h);

	(void)fi;
	if (err == 0) {
		fd = openat(inode->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || (datasync ? fdatasync(fd) : fsync(fd)) < 0)
			err = errno;
	}
	if (fd >= 0)
		close(fd);
	gate_leave(h);
	fuse_reply_err(req, err);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct inode *inode = inode_of(req, ino);
	struct home *h = gate_enter(inode->home);
	struct statvfs sv;
	int err = fstatvfs(inode->fd, &sv) < 0 ? errno : 0;

	gate_leave(h);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_statfs(req, &sv);
}

/* An access ACL set by a caller outside the file's group (and without
 * CAP_FSETID) drops setgid, as chmod does: the datastore decides that from
 * the caller's identity, so ACLs are set as the caller. */
static int setxattr_as(fuse_req_t req, const char *path, const char *name,
		       const char *value, size_t size, int flags)
{
	struct creds_saved saved = { 0 };
	int ret = 0;

	if (strncmp(name, "system.posix_acl_", strlen("system.posix_acl_")) == 0)
		ret = creds_enter(req, &saved);
	if (ret == 0 && setxattr(path, name, value, size, flags) < 0)
		ret = -errno;
	creds_leave(&saved);
	return ret;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct inode *inode = inode_of(req, ino);
	struct home *h;
	char path[PROC_PATH_MAX];
	int err = 0;

	/* A symlink's own xattrs are reached through its O_PATH descriptor's
	 * /proc link, which is not followed further; the VFS refuses user.*
	 * there before asking relocfs. */
	h = gate_enter(inode->home);
	proc_path(path, inode->fd);
	err = -durable_failed(h);
	if (err != 0)
		goto out;
	if (strcmp(name, XATTR_CAPS) == 0)
		__atomic_store_n(&inode->no_caps, 0, __ATOMIC_RELAXED);
	err = -setxattr_as(req, path, name, value, size, flags);
	if (err == 0)
		mirror_attr(h, inode);
out:
	gate_leave(h);
	fuse_reply_err(req, err);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct inode *inode = inode_of(req, ino);
	char path[PROC_PATH_MAX];
	int is_caps = strcmp(name, XATTR_CAPS) == 0;
	struct home *h;
	char *buf = NULL;
	ssize_t n;
	int err;

	if (is_caps && __atomic_load_n(&inode->no_caps, __ATOMIC_RELAXED)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	proc_path(path, inode->fd);
	if (size > 0) {
		buf = malloc(size);
		if (buf == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	h = gate_enter(inode->home);
	n = getxattr(path, name, buf, size);
	err = errno;
	gate_leave(h);
	if (n < 0) {
		if (err == ENODATA && is_caps)
			__atomic_store_n(&inode->no_caps, 1, __ATOMIC_RELAXED);
		fuse_reply_err(req, err);
	} else if (size == 0) {
		fuse_reply_xattr(req, (size_t)n);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

/* Every xattr name of path, in *buf (malloc'ed, NULL when none). Returns
 * the list's length or -errno. */
static ssize_t list_all(const char *path, char **buf)
{
	for (;;) {
		ssize_t n = listxattr(path, NULL, 0), m;

		*buf = NULL;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		*buf = malloc((size_t)n);
		if (*buf == NULL)
			return -ENOMEM;
		m = listxattr(path, *buf, (size_t)n);
		if (m >= 0)
			return m;
		m = -errno;
		free(*buf);
		*buf = NULL;
		if (m != -ERANGE)
			return m;	/* else it grew meanwhile: again */
	}
}

/* The names a caller without CAP_SYS_ADMIN is shown: the datastore lists
 * trusted.* only to that capability, and relocfs asks as root. Returns the
 * length kept. */
static size_t drop_trusted(char *buf, size_t n)
{
	size_t in = 0, out = 0;

	while (in < n) {
		size_t len = strnlen(buf + in, n - in);

		len += len < n - in;	/* and its NUL */
		if (strncmp(buf + in, "trusted.", strlen("trusted.")) != 0) {
			memmove(buf + out, buf + in, len);
			out += len;
		}
		in += len;
	}
	return out;
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct inode *inode = inode_of(req, ino);
	char path[PROC_PATH_MAX];
	struct home *h;
	char *buf = NULL;
	ssize_t n;

	proc_path(path, inode->fd);
	h = gate_enter(inode->home);
	if (fuse_req_ctx(req)->uid != 0) {
		/* The whole list, to know the length the caller may see. */
		n = list_all(path, &buf);
		if (n > 0)
			n = (ssize_t)drop_trusted(buf, (size_t)n);
	} else if (size > 0 && (buf = malloc(size)) == NULL) {
		n = -ENOMEM;
	} else {
		n = listxattr(path, buf, size);
		if (n < 0)
			n = -errno;
	}
	gate_leave(h);
	if (n >= 0 && size > 0 && (size_t)n > size)
		n = -ERANGE;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct inode *inode = inode_of(req, ino);
	char path[PROC_PATH_MAX];
	struct home *h;
	int err = 0;

	h = gate_enter(inode->home);
	proc_path(path, inode->fd);
	err = -durable_failed(h);
	if (err != 0)
		goto out;
	if (removexattr(path, name) < 0)
		err = errno;
	else
		mirror_attr(h, inode);
out:
	gate_leave(h);
	fuse_reply_err(req, err);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	struct open_file *of = of_of(fi);
	struct home *h = gate_enter(of->inode->home);
	int ret = durable_failed(h);

	if (ret < 0)
		goto out;
	if (of->inode->rfile != NULL) {
		ret = reloc_file_fallocate(h->reloc, of->inode->rfile, mode, offset, length);
		if (ret == 0 || !wait_rollback(h, of->inode))
			goto out;
		ret = 0;	/* rolled back: on the source, below */
	}
	if (fallocate(of->fd, mode, offset, length) < 0)
		ret = -errno;
out:
	if (ret == 0)
		kill_suidgid_unflagged(req, of, ino);
	gate_leave(h);
	fuse_reply_err(req, -ret);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct open_file *of = of_of(fi);
	struct home *h = gate_enter(of->inode->home);
	off_t res;

	(void)ino;
	if (of->inode->rfile != NULL)
		res = reloc_file_seek(h->reloc, of->inode->rfile, off, whence);
	else if ((res = lseek(of->fd, off, whence)) < 0)
		res = -errno;
	gate_leave(h);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else
		fuse_reply_lseek(req, res);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	struct open_file *in = of_of(fi_in), *out = of_of(fi_out);
	struct home *h1 = in->inode->home, *h2 = out->inode->home;
	ssize_t n;

	(void)ino_in;
	gate_pair(h1, h2);
	n = durable_failed(h2);
	if (n < 0)
		goto out;
	/* Journaled files: the kernel falls back to reads and writes. */
	if (in->inode->rfile != NULL || out->inode->rfile != NULL)
		n = -EOPNOTSUPP;
	else if ((n = copy_file_range(in->fd, &off_in, out->fd, &off_out, len,
				      (unsigned)flags)) < 0)
		n = -errno;
	if (n > 0)
		kill_suidgid_unflagged(req, out, ino_out);
out:
	ungate_pair(h1, h2);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
};

/* ------------------------------------------------- engine host (flip) */

/* Points every inode and open file of h at the destination. Everything that
 * can fail is done first; the commit (dup2 over the held descriptors)
 * cannot fail, so a refused flip changes nothing. */
int fsops_flip(struct fs *fs, struct home *h, struct reloc *r, int dst_ds_fd,
	       int (*commit_placement)(struct fs *, struct home *, struct reloc *))
{
	struct inode **inodes = NULL;
	struct open_file *of;
	struct inomap_pair *keys = NULL;
	struct inomap_carry *carry = NULL;
	size_t n = 0, nfiles = 0, k = 0, nkeys = 0;
	int *newfd = NULL, *newof = NULL, ret;

	ret = inode_table_collect(&fs->inodes, h, &inodes, &n);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&h->files_lock);
	for (of = h->files; of != NULL; of = of->next)
		nfiles++;
	newfd = malloc((n + 1) * sizeof(*newfd));
	newof = malloc((nfiles + 1) * sizeof(*newof));
	keys = malloc((n + 1) * sizeof(*keys));
	if (newfd == NULL || newof == NULL || keys == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		newfd[i] = -1;
	for (size_t i = 0; i < nfiles; i++)
		newof[i] = -1;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct inode *in = inodes[i];
		char rel[PATH_MAX], path[PROC_PATH_MAX];

		if (in->rfile != NULL) {
			proc_path(path, reloc_file_dest_fd(in->rfile));
			newfd[i] = open(path, O_PATH | O_CLOEXEC);
			if (newfd[i] < 0)
				ret = -errno;
			continue;
		}
		if (reloc_rel_path(r, in->fd, rel, sizeof(rel)) < 0)
			continue;	/* deleted: nothing left to serve */
		newfd[i] = reloc_dest_open(r, rel);
		if (newfd[i] < 0) {
			log_error("cutover: no destination for %s/%s: %s", h->name, rel,
				  strerror(-newfd[i]));
			ret = newfd[i];
			newfd[i] = -1;
		}
	}
	/* Each held object's copy, keyed as the inode table will know it. */
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct stat st;

		if (newfd[i] < 0)
			continue;
		if (fstat(newfd[i], &st) < 0) {
			ret = -errno;
			break;
		}
		keys[nkeys++] = (struct inomap_pair){ .odev = inodes[i]->dev, .oino = inodes[i]->ino,
						      .ndev = st.st_dev, .nino = st.st_ino };
	}
	if (ret == 0)
		ret = inomap_carry_prepare(&fs->inomap, reloc_ino_pairs(r), keys, nkeys, &carry);
	for (of = h->files; of != NULL && ret == 0; of = of->next, k++) {
		char path[PROC_PATH_MAX];
		size_t i;

		for (i = 0; i < n && inodes[i] != of->inode; i++)
			;
		if (i == n || newfd[i] < 0)
			continue;	/* unreachable: keeps its source file */
		proc_path(path, newfd[i]);
		newof[k] = open(path, backing_flags(fs, of->flags) & ~O_TRUNC);
		if (newof[k] < 0)
			ret = -errno;
	}
	if (ret == 0)
		ret = commit_placement(fs, h, r);
	if (ret < 0)
		goto out;
	/* Commit: nothing below fails. Every object keeps its number. */
	inomap_carry_commit(&fs->inomap, carry);
	carry = NULL;
	for (size_t i = 0, j = 0; i < n; i++) {
		struct inode *in = inodes[i];

		in->rfile = NULL;
		if (newfd[i] < 0)
			continue;
		dup2(newfd[i], in->fd);
		inode_table_rekey(&fs->inodes, in, keys[j].ndev, keys[j].nino);
		j++;
	}
	k = 0;
	for (of = h->files; of != NULL; of = of->next, k++)
		if (newof[k] >= 0)
			dup2(newof[k], of->fd);
	h->ds_fd = dst_ds_fd;
	h->reloc = NULL;
	__atomic_store_n(&h->flushing, true, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&h->files_lock);
	for (size_t i = 0; newfd != NULL && i < n; i++)
		if (newfd[i] >= 0)
			close(newfd[i]);
	for (size_t i = 0; newof != NULL && i < nfiles; i++)
		if (newof[i] >= 0)
			close(newof[i]);
	for (size_t i = 0; i < n; i++)
		inode_table_forget(&fs->inodes, inodes[i], 1);
	inomap_carry_cancel(carry);
	free(inodes);
	free(newfd);
	free(newof);
	free(keys);
	return ret;
}

/* Routes (r != NULL) or stops routing (r == NULL) h's files via the engine. */
void fsops_attach(struct fs *fs, struct home *h, struct reloc *r)
{
	struct inode **inodes;
	size_t n;

	h->reloc = r;
	if (inode_table_collect(&fs->inodes, h, &inodes, &n) < 0) {
		log_error("attach: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct inode *in = inodes[i];

		in->rfile = r != NULL && S_ISREG(in->type) ? reloc_file_find(r, in->dev, in->ino) : NULL;
		inode_table_forget(&fs->inodes, in, 1);
	}
	free(inodes);
}

/* An object the kernel forgot and whose last link is gone gives its
 * number up (only exceptions hold one). */
static void inode_freed(struct inode_table *t, const struct inode *inode)
{
	struct fs *fs = (struct fs *)(void *)((char *)t - offsetof(struct fs, inodes));
	struct stat st;

	if (inomap_exceptions(&fs->inomap) == 0)
		return;
	if (fstat(inode->fd, &st) == 0 && st.st_nlink == 0)
		inomap_drop(&fs->inomap, inode->dev, inode->ino);
}

int fs_init(struct fs *fs, const struct config *cfg, int root_fd,
	    const char *source, const char *mountpoint, int state_dirfd)
{
	int ret;

	memset(fs, 0, sizeof(*fs));
	pthread_once(&read_buf_once, read_buf_key_init);
	fs->cfg = cfg;
	fs->attr_timeout = cfg->fuse.attr_timeout;
	fs->entry_timeout = cfg->fuse.entry_timeout;
	fs->negative_timeout = cfg->fuse.negative_timeout;
	fs->keep_cache = cfg->fuse.keep_cache;
	fs->writeback_cache = cfg->fuse.writeback_cache;
	fs->max_request = (size_t)cfg->fuse.max_request_kib * 1024;
	fs->state_dirfd = state_dirfd;
	snprintf(fs->source, sizeof(fs->source), "%s", source);
	snprintf(fs->mountpoint, sizeof(fs->mountpoint), "%s", mountpoint);
	ret = inode_table_init(&fs->inodes, root_fd);
	if (ret < 0)
		return ret;
	pthread_mutex_init(&fs->quiet_lock, NULL);
	pthread_mutex_init(&fs->iomode_lock, NULL);
	fs->inodes.on_free = inode_freed;
	ret = inomap_init(&fs->inomap, fs->inodes.root.dev);
	if (ret < 0)
		goto out;
	fs->inodes.root.ino_shown = inomap_get(&fs->inomap, fs->inodes.root.dev, fs->inodes.root.ino);
	ret = homes_init(fs);
out:
	if (ret < 0) {
		inomap_destroy(&fs->inomap);
		inode_table_destroy(&fs->inodes);
		pthread_mutex_destroy(&fs->quiet_lock);
		pthread_mutex_destroy(&fs->iomode_lock);
	}
	return ret;
}

void fs_destroy(struct fs *fs)
{
	homes_destroy(fs);
	inode_table_destroy(&fs->inodes);
	inomap_destroy(&fs->inomap);
	pthread_mutex_destroy(&fs->quiet_lock);
	pthread_mutex_destroy(&fs->iomode_lock);
}
