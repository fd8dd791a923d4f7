/* fsops: owns the FUSE request handlers: lookups into the inode table, file
 * and directory handles, and the translation of each request into a syscall
 * relative to an O_PATH descriptor of the backing tree.
 *
 * Invariants:
 * - No backing path is ever resolved from the source root: every syscall is
 *   relative to a held descriptor, with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, or
 *   through /proc/self/fd/N, which names the held object itself. A symlink
 *   in the tree is never followed by relocfs.
 * - Errors are the backing syscall's errno, unchanged.
 * - The data path (read, write_buf) allocates nothing: reads land in a
 *   per-thread buffer sized for the largest request, writes go straight from
 *   libfuse's receive buffer to the backing descriptor. */
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
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "relocfs/creds.h"
#include "relocfs/fsops.h"
#include "relocfs/log.h"

#define PROC_PATH_MAX 64
#define XATTR_CAPS "security.capability"

struct open_file {
	int fd;
};

struct dir_handle {
	DIR *dp;
	off_t offset;
	struct dirent *entry;	/* read but not yet returned to the kernel */
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
	void *buf = pthread_getspecific(read_buf_key);

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

static struct open_file *fh_of(const struct fuse_file_info *fi)
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

static int stat_inode(const struct inode *inode, struct stat *st)
{
	if (fstatat(inode->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* Resolves name in parent to an inode holding one more lookup. */
static int do_lookup(struct fs *fs, struct inode *parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct inode *inode;
	int fd, ret;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = fs->attr_timeout;
	e->entry_timeout = fs->entry_timeout;
	/* The kernel resolves "." and ".." itself; never let ".." leave the tree. */
	if (strcmp(name, "..") == 0 && parent == &fs->inodes.root)
		name = ".";
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	inode = inode_table_get(&fs->inodes, e->attr.st_dev, e->attr.st_ino,
				e->attr.st_mode, fd);
	if (inode == NULL)
		return -errno;
	e->ino = nodeid_of(fs, inode);
	return 0;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	conn->max_write = (unsigned)fs->max_request;
	conn->max_readahead = (unsigned)fs->max_request;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	/* relocfs owns the tree: nothing changes it behind the kernel's back. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
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
	struct fuse_entry_param e;
	int ret = do_lookup(fs, inode_of(req, parent), name, &e);

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
	struct stat st;
	int ret;

	(void)fi;
	ret = stat_inode(inode_of(req, ino), &st);
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

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int valid, struct fuse_file_info *fi)
{
	struct inode *inode = inode_of(req, ino);
	int fd = fi != NULL ? fh_of(fi)->fd : -1;
	char path[PROC_PATH_MAX];
	struct stat st;
	int ret = 0;

	proc_path(path, inode->fd);
	if (valid & FUSE_SET_ATTR_MODE) {
		ret = fd >= 0 ? fchmod(fd, attr->st_mode)
			      : fchmodat(AT_FDCWD, path, attr->st_mode, 0);
		if (ret < 0)
			goto out_errno;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(inode->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			goto out_errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		ret = fd >= 0 ? ftruncate(fd, attr->st_size) : truncate(path, attr->st_size);
		if (ret < 0)
			goto out_errno;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		ret = set_times(inode, fd, attr, valid);
		if (ret < 0)
			goto out;
	}
	ret = stat_inode(inode, &st);
	goto out;
out_errno:
	ret = -errno;
out:
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, fs_of(req)->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(inode_of(req, ino)->fd, "", buf, sizeof(buf));

	if (n < 0)
		fuse_reply_err(req, errno);
	else if ((size_t)n >= sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

/* mknod, mkdir and symlink: the new object is made as the caller. */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev, const char *link)
{
	struct fs *fs = fs_of(req);
	struct inode *dir = inode_of(req, parent);
	struct fuse_entry_param e;
	struct creds_saved saved;
	int ret;

	ret = creds_enter(req, &saved);
	if (ret < 0)
		goto out;
	if (link != NULL)
		ret = symlinkat(link, dir->fd, name);
	else if (S_ISDIR(mode))
		ret = mkdirat(dir->fd, name, mode);
	else
		ret = mknodat(dir->fd, name, mode, rdev);
	if (ret < 0)
		ret = -errno;
	creds_leave(&saved);
	if (ret < 0)
		goto out;
	ret = do_lookup(fs, dir, name, &e);
out:
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

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct fs *fs = fs_of(req);
	struct inode *inode = inode_of(req, ino);
	struct fuse_entry_param e;
	char path[PROC_PATH_MAX];
	int ret;

	proc_path(path, inode->fd);
	if (linkat(AT_FDCWD, path, inode_of(req, newparent)->fd, newname,
		   AT_SYMLINK_FOLLOW) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	ret = do_lookup(fs, inode_of(req, newparent), newname, &e);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int ret = unlinkat(inode_of(req, parent)->fd, name, 0);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int ret = unlinkat(inode_of(req, parent)->fd, name, AT_REMOVEDIR);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	int ret = renameat2(inode_of(req, parent)->fd, name,
			    inode_of(req, newparent)->fd, newname, flags);

	fuse_reply_err(req, ret < 0 ? errno : 0);
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

static int file_handle_new(struct fuse_file_info *fi, int fd)
{
	struct open_file *fh = malloc(sizeof(*fh));

	if (fh == NULL)
		return -ENOMEM;
	fh->fd = fd;
	fi->fh = (uint64_t)(uintptr_t)fh;
	return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *dir = inode_of(req, parent);
	struct fuse_entry_param e;
	struct creds_saved saved;
	int fd = -1, ret;

	ret = creds_enter(req, &saved);
	if (ret < 0)
		goto out;
	fd = openat(dir->fd, name, backing_flags(fs, fi->flags) | O_CREAT |
		    (fi->flags & O_EXCL) | O_NOFOLLOW, mode);
	if (fd < 0)
		ret = -errno;
	creds_leave(&saved);
	if (ret < 0)
		goto out;
	ret = do_lookup(fs, dir, name, &e);
	if (ret < 0)
		goto out;
	ret = file_handle_new(fi, fd);
	if (ret < 0) {
		inode_table_forget(&fs->inodes, inode_of(req, e.ino), 1);
		goto out;
	}
	fd = -1;
	fi->keep_cache = fs->keep_cache;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_create(req, &e, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	char path[PROC_PATH_MAX];
	int fd, ret;

	proc_path(path, inode_of(req, ino)->fd);
	fd = open(path, backing_flags(fs, fi->flags));
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	ret = file_handle_new(fi, fd);
	if (ret < 0) {
		close(fd);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->keep_cache = fs->keep_cache;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int fd = fh_of(fi)->fd;
	char *buf = read_buf(fs);
	size_t done = 0;

	(void)ino;
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (size > fs->max_request)
		size = fs->max_request;
	while (done < size) {
		ssize_t n = pread(fd, buf + done, size - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (done == 0) {
				fuse_reply_err(req, errno);
				return;
			}
			break;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	fuse_reply_buf(req, buf, done);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			 off_t off, struct fuse_file_info *fi)
{
	int fd = fh_of(fi)->fd;
	size_t size = fuse_buf_size(in);
	ssize_t n;

	(void)ino;
	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		n = pwrite(fd, in->buf[0].mem, size, off);
	} else {
		struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);

		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = fd;
		out.buf[0].pos = off;
		n = fuse_buf_copy(&out, in, 0);
		if (n < 0)
			errno = (int)-n;
	}
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Closing a duplicate reports delayed write errors (NFS) at close(2). */
	int fd = dup(fh_of(fi)->fd);

	(void)ino;
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_err(req, close(fd) < 0 ? errno : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct open_file *fh = fh_of(fi);

	(void)ino;
	close(fh->fd);
	free(fh);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	int fd = fh_of(fi)->fd;
	int ret = datasync ? fdatasync(fd) : fsync(fd);

	(void)ino;
	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = calloc(1, sizeof(*d));
	int fd, err;

	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(inode_of(req, ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto out_err;
	d->dp = fdopendir(fd);
	if (d->dp == NULL) {
		err = errno;
		close(fd);
		errno = err;
		goto out_err;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fuse_reply_open(req, fi);
	return;
out_err:
	err = errno;
	free(d);
	fuse_reply_err(req, err);
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

	buf = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		struct fuse_entry_param e;
		size_t entsize;
		off_t next;

		if (d->entry == NULL) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (d->entry == NULL) {
				err = errno;
				break;
			}
		}
		next = d->entry->d_off;
		if (plus && !is_dot_or_dotdot(d->entry->d_name)) {
			int ret = do_lookup(fs, dir, d->entry->d_name, &e);

			if (ret < 0) {
				/* Gone since readdir read it: skip, as a new readdir would. */
				if (ret == -ENOENT) {
					d->entry = NULL;
					d->offset = next;
					continue;
				}
				err = -ret;
				break;
			}
			entsize = fuse_add_direntry_plus(req, p, rem, d->entry->d_name, &e, next);
			if (entsize > rem) {
				inode_table_forget(&fs->inodes, inode_of(req, e.ino), 1);
				break;
			}
		} else {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->entry->d_ino;
			e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			entsize = plus ? fuse_add_direntry_plus(req, p, rem, d->entry->d_name, &e, next)
				       : fuse_add_direntry(req, p, rem, d->entry->d_name, &e.attr, next);
			if (entsize > rem)
				break;
		}
		p += entsize;
		rem -= entsize;
		d->entry = NULL;
		d->offset = next;
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
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	int fd = dirfd(dh_of(fi)->dp);
	int ret = datasync ? fdatasync(fd) : fsync(fd);

	(void)ino;
	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (fstatvfs(inode_of(req, ino)->fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct inode *inode = inode_of(req, ino);
	char path[PROC_PATH_MAX];
	int ret;

	/* No race-free way to reach a symlink's own xattrs; user.* is refused
	 * there by Linux anyway. */
	if (S_ISLNK(inode->type)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	proc_path(path, inode->fd);
	if (strcmp(name, XATTR_CAPS) == 0)
		__atomic_store_n(&inode->no_caps, 0, __ATOMIC_RELAXED);
	ret = setxattr(path, name, value, size, flags);
	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct inode *inode = inode_of(req, ino);
	char path[PROC_PATH_MAX];
	int is_caps = strcmp(name, XATTR_CAPS) == 0;
	char *buf = NULL;
	ssize_t n;

	if (S_ISLNK(inode->type) ||
	    (is_caps && __atomic_load_n(&inode->no_caps, __ATOMIC_RELAXED))) {
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
	n = getxattr(path, name, buf, size);
	if (n < 0) {
		if (errno == ENODATA && is_caps)
			__atomic_store_n(&inode->no_caps, 1, __ATOMIC_RELAXED);
		fuse_reply_err(req, errno);
	} else if (size == 0) {
		fuse_reply_xattr(req, (size_t)n);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct inode *inode = inode_of(req, ino);
	char path[PROC_PATH_MAX];
	char *buf = NULL;
	ssize_t n;

	if (S_ISLNK(inode->type)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
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
	n = listxattr(path, buf, size);
	if (n < 0)
		fuse_reply_err(req, errno);
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
	int ret;

	if (S_ISLNK(inode->type)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	proc_path(path, inode->fd);
	ret = removexattr(path, name);
	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	int ret = fallocate(fh_of(fi)->fd, mode, offset, length);

	(void)ino;
	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t res = lseek(fh_of(fi)->fd, off, whence);

	(void)ino;
	if (res < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	ssize_t n = copy_file_range(fh_of(fi_in)->fd, &off_in, fh_of(fi_out)->fd,
				    &off_out, len, (unsigned)flags);

	(void)ino_in;
	(void)ino_out;
	if (n < 0)
		fuse_reply_err(req, errno);
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

int fs_init(struct fs *fs, const struct config *cfg, int root_fd)
{
	int ret;

	memset(fs, 0, sizeof(*fs));
	pthread_once(&read_buf_once, read_buf_key_init);
	fs->attr_timeout = cfg->fuse.attr_timeout;
	fs->entry_timeout = cfg->fuse.entry_timeout;
	fs->negative_timeout = cfg->fuse.negative_timeout;
	fs->keep_cache = cfg->fuse.keep_cache;
	fs->writeback_cache = cfg->fuse.writeback_cache;
	fs->max_request = (size_t)cfg->fuse.max_request_kib * 1024;
	ret = inode_table_init(&fs->inodes, root_fd);
	return ret;
}

void fs_destroy(struct fs *fs)
{
	inode_table_destroy(&fs->inodes);
}
