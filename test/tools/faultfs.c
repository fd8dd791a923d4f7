/* faultfs: a test-only FUSE filesystem that passes a backing directory
 * through and misbehaves on demand, for relocfs's power-cut and
 * destination-fault suites (test/powercut.bats, test/dest_faults.bats,
 * helpers in test/lib/faultfs.bash, self-tests in test/faultfs.bats).
 *
 * usage: faultfs BACKDIR MOUNTPOINT [-f] [-d] [-s] [-o FUSE_OPTIONS]
 *
 * It mounts BACKDIR at MOUNTPOINT (type fuse.faultfs, with
 * default_permissions, and allow_other when run by root). It uses libfuse's
 * low-level API with an inode table of O_PATH descriptors (like libfuse's
 * passthrough_hp), so that an open file that was removed still answers
 * fstat, and st_ino is the backing inode number. It is NOT a general
 * purpose filesystem: it trades speed and memory for a simple model of a
 * disk with a volatile cache.
 *
 * 1. Power-cut emulation. Data changes (write, truncate/ftruncate,
 *    fallocate, O_TRUNC) are not applied to the backing file: they are held
 *    in memory in an overlay per backing inode (dev, ino), which reads merge
 *    and whose size getattr reports. fsync or fdatasync of any handle on the
 *    inode applies the overlay to the backing file and fsyncs it; a handle
 *    opened with O_SYNC or O_DSYNC applies (and flushes) each write at once.
 *    Namespace operations (create, mknod, mkdir, unlink, rmdir, rename,
 *    link, symlink), chmod, chown, utimens and extended attributes are made
 *    on BACKDIR at once (a real filesystem may persist un-synced things too).
 *    An inode's overlay is dropped once its last link is gone and no handle
 *    is open; while it exists it holds a descriptor on the inode, so its
 *    inode number cannot be reused meanwhile. A "power cut" is SIGKILL of
 *    faultfs followed by a lazy unmount: BACKDIR then holds exactly what was
 *    fsync'ed plus the namespace operations; every other write is gone.
 *    syncfs(2) on the mount flushes nothing: the kernel does not send it to
 *    a FUSE daemon, so a program must fsync its files to make them durable.
 *
 * 2. I/O-error injection. SIGUSR1 makes write, fsync, fdatasync, fsyncdir,
 *    create, mknod, mkdir, symlink, link, setattr (truncate, chmod, chown,
 *    utimens), O_TRUNC, fallocate, setxattr and removexattr fail with EIO;
 *    lookups, reads, readdir, getattr, open, unlink, rmdir and rename still
 *    work (so that a partial copy can be removed). SIGRTMIN makes only
 *    fsyncdir fail with EIO: a directory whose flush fails while every
 *    other operation works (renames in it then happened, but a power cut
 *    may or may not keep them; faultfs keeps them). SIGRTMIN+1 makes
 *    fsync and fdatasync of a file fail with EIO and lose its pending
 *    changes, as a disk whose writeback fails may (the pages are then
 *    clean, and a later read finds the old data): the backing file shows
 *    again, also through the kernel's cache of the mount (an invalidation
 *    sent from the fsync handler: with -s, a read the kernel waits for
 *    meanwhile could not be served, so do not combine the two). SIGRTMIN+2
 *    makes close(2) of a file fail with EIO (a FLUSH request), as NFS
 *    reports a delayed write error there. SIGUSR2 heals all.
 *
 * Objects created through the mount belong to the caller (as on a local
 * filesystem): faultfs (root) creates them, then chowns them; in a
 * set-group-ID directory the group stays the directory's. lseek
 * SEEK_DATA/SEEK_HOLE passes through, except on a file with pending
 * changes, which is then all data. copy_file_range is not implemented (the
 * kernel falls back to reads and writes); nor are locks (the kernel keeps
 * them locally). Extended attributes of symbolic links are not supported.
 *
 * FAULTFS_TRACE=1 in the environment logs the overlay events (changes held,
 * flushed, dropped) to stderr, for post-mortems of the suites.
 *
 * Locking: itbl_mu guards the inode table and each inode's nlookup; tbl_mu
 * guards the overlay table and each overlay's nopen, busy and hashed
 * fields; an overlay's own mutex guards its contents. An overlay is only
 * touched by a thread holding a reference (nopen or busy). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include <fuse_lowlevel.h>

#define PS 4096u		/* overlay page size */
#define TBL_BUCKETS 1024u

static volatile sig_atomic_t failing;		/* SIGUSR1 .. SIGUSR2 */
static volatile sig_atomic_t failing_dirsync;	/* SIGRTMIN .. SIGUSR2 */
static volatile sig_atomic_t failing_lossy;	/* SIGRTMIN+1 .. SIGUSR2 */
static volatile sig_atomic_t failing_close;	/* SIGRTMIN+2 .. SIGUSR2 */
static struct fuse_session *session;		/* for cache invalidations */
static bool tracing;			/* FAULTFS_TRACE set: log overlay events */

#define TRACE(...)						\
	do {							\
		if (tracing)					\
			fprintf(stderr, "faultfs: " __VA_ARGS__); \
	} while (0)	/* set by SIGUSR1, cleared by SIGUSR2 */

/* ---------------------------------------------------------------- overlay */

struct page {
	struct page *next;
	uint64_t idx;
	char *data;		/* PS bytes, or NULL: all zeros */
};

struct ov {
	struct ov *next;	/* table chain, under tbl_mu */
	dev_t dev;
	ino_t ino;
	unsigned nopen;		/* open handles, under tbl_mu */
	unsigned busy;		/* temporary references, under tbl_mu */
	bool hashed;		/* in the table, under tbl_mu */
	int wfd;		/* read-write on the backing inode, or -1 */

	pthread_mutex_t mu;	/* everything below */
	bool dirty;		/* changes not applied to the backing file */
	uint64_t size;		/* the size the mount shows */
	uint64_t base_limit;	/* backing bytes from here on read as zeros */
	struct page **pages;
	size_t nbuckets, npages;
	struct timespec mtime;	/* of the last pending change */
	bool times_set;		/* utimens since the last change: keep times[] */
	struct timespec times[2];
};

struct fh {
	int fd;
	int flags;		/* the open flags */
	struct ov *ov;		/* regular files only; holds an nopen */
};

static pthread_mutex_t tbl_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ov *tbl[TBL_BUCKETS];

static size_t tbl_hash(dev_t dev, ino_t ino)
{
	return (size_t)(((uint64_t)ino * 0x9e3779b97f4a7c15ull) ^ (uint64_t)dev) % TBL_BUCKETS;
}

/* A read-write descriptor on the inode fd refers to, or -1. */
static int reopen_rw(int fd)
{
	char p[64];
	int flags = fcntl(fd, F_GETFL);

	if (flags >= 0 && (flags & O_ACCMODE) == O_RDWR)
		return fcntl(fd, F_DUPFD_CLOEXEC, 0);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return open(p, O_RDWR | O_CLOEXEC);
}

static void pages_free(struct ov *ov)
{
	for (size_t b = 0; b < ov->nbuckets; b++) {
		struct page *p = ov->pages[b];

		while (p != NULL) {
			struct page *next = p->next;

			free(p->data);
			free(p);
			p = next;
		}
	}
	free(ov->pages);
	ov->pages = NULL;
	ov->nbuckets = ov->npages = 0;
}

static void ov_free(struct ov *ov)
{
	TRACE("ino %llu: overlay freed%s\n", (unsigned long long)ov->ino,
	      ov->dirty ? ", pending changes dropped" : "");
	pages_free(ov);
	if (ov->wfd >= 0)
		close(ov->wfd);
	pthread_mutex_destroy(&ov->mu);
	free(ov);
}

static void tbl_unhash(struct ov *ov)
{
	struct ov **pp = &tbl[tbl_hash(ov->dev, ov->ino)];

	while (*pp != NULL && *pp != ov)
		pp = &(*pp)->next;
	if (*pp == ov)
		*pp = ov->next;
	ov->hashed = false;
}

/* Under tbl_mu: an overlay nobody holds goes when it has nothing pending or
 * its inode has no link left (nothing can reach its data any more). */
static void ov_settle(struct ov *ov)
{
	struct stat st;

	if (ov->nopen > 0 || ov->busy > 0)
		return;
	if (ov->hashed && ov->dirty && ov->wfd >= 0 && fstat(ov->wfd, &st) == 0 && st.st_nlink > 0)
		return;
	if (ov->hashed)
		tbl_unhash(ov);
	ov_free(ov);
}

/* The overlay of (dev, ino), with a reference (an open handle or a busy
 * one). create: make it if there is none. fd: a descriptor on the inode,
 * to take a read-write descriptor from if the overlay lacks one. */
static struct ov *ov_get(dev_t dev, ino_t ino, int fd, bool create, bool open)
{
	struct ov *ov;
	size_t h = tbl_hash(dev, ino);

	pthread_mutex_lock(&tbl_mu);
	for (ov = tbl[h]; ov != NULL; ov = ov->next)
		if (ov->dev == dev && ov->ino == ino)
			break;
	if (ov == NULL && create) {
		ov = calloc(1, sizeof(*ov));
		if (ov != NULL) {
			ov->dev = dev;
			ov->ino = ino;
			ov->wfd = -1;
			pthread_mutex_init(&ov->mu, NULL);
			ov->hashed = true;
			ov->next = tbl[h];
			tbl[h] = ov;
		}
	}
	if (ov != NULL) {
		if (ov->wfd < 0 && fd >= 0)
			ov->wfd = reopen_rw(fd);
		if (open)
			ov->nopen++;
		else
			ov->busy++;
	}
	pthread_mutex_unlock(&tbl_mu);
	return ov;
}

static void ov_put(struct ov *ov, bool open)
{
	if (ov == NULL)
		return;
	pthread_mutex_lock(&tbl_mu);
	if (open)
		ov->nopen--;
	else
		ov->busy--;
	ov_settle(ov);
	pthread_mutex_unlock(&tbl_mu);
}

/* After a name of (dev, ino) went away: drop its overlay if that was the
 * last link and no handle is open. */
static void ov_unlinked(dev_t dev, ino_t ino)
{
	struct ov *ov = ov_get(dev, ino, -1, false, false);

	ov_put(ov, false);
}

static struct page *page_find(struct ov *ov, uint64_t idx)
{
	struct page *p;

	if (ov->nbuckets == 0)
		return NULL;
	for (p = ov->pages[idx % ov->nbuckets]; p != NULL; p = p->next)
		if (p->idx == idx)
			return p;
	return NULL;
}

static int page_insert(struct ov *ov, struct page *pg)
{
	if (ov->npages >= ov->nbuckets) {
		size_t nb = ov->nbuckets ? ov->nbuckets * 2 : 64;
		struct page **v = calloc(nb, sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		for (size_t b = 0; b < ov->nbuckets; b++) {
			struct page *p = ov->pages[b];

			while (p != NULL) {
				struct page *next = p->next;

				p->next = v[p->idx % nb];
				v[p->idx % nb] = p;
				p = next;
			}
		}
		free(ov->pages);
		ov->pages = v;
		ov->nbuckets = nb;
	}
	pg->next = ov->pages[pg->idx % ov->nbuckets];
	ov->pages[pg->idx % ov->nbuckets] = pg;
	ov->npages++;
	return 0;
}

/* Removes the pages from index first on (a truncation). */
static void pages_drop_from(struct ov *ov, uint64_t first)
{
	for (size_t b = 0; b < ov->nbuckets; b++) {
		struct page **pp = &ov->pages[b];

		while (*pp != NULL) {
			struct page *p = *pp;

			if (p->idx >= first) {
				*pp = p->next;
				free(p->data);
				free(p);
				ov->npages--;
			} else {
				pp = &p->next;
			}
		}
	}
}

static int pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(buf + done, 0, len - done);
			break;
		}
		done += (size_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/* Under ov->mu: what the mount shows of the page idx where the overlay has
 * no page: the backing file below base_limit, zeros from it on. */
static int backing_page(struct ov *ov, int fd, uint64_t idx, char *buf)
{
	uint64_t pos = idx * PS;
	size_t n = 0;

	if (pos < ov->base_limit)
		n = ov->base_limit - pos < PS ? (size_t)(ov->base_limit - pos) : PS;
	memset(buf + n, 0, PS - n);
	return n ? pread_full(fd, buf, n, (off_t)pos) : 0;
}

/* Under ov->mu: the page idx with its data, made from the backing file
 * unless whole (the caller overwrites all of it). */
static int page_get(struct ov *ov, uint64_t idx, bool whole, struct page **out)
{
	struct page *pg = page_find(ov, idx);
	int ret;

	if (pg != NULL && pg->data != NULL) {
		*out = pg;
		return 0;
	}
	if (pg != NULL) {	/* a zero page */
		pg->data = calloc(1, PS);
		if (pg->data == NULL)
			return -ENOMEM;
		*out = pg;
		return 0;
	}
	pg = calloc(1, sizeof(*pg));
	if (pg == NULL)
		return -ENOMEM;
	pg->idx = idx;
	pg->data = malloc(PS);
	if (pg->data == NULL) {
		free(pg);
		return -ENOMEM;
	}
	if (!whole) {
		ret = backing_page(ov, ov->wfd, idx, pg->data);
		if (ret < 0) {
			free(pg->data);
			free(pg);
			return ret;
		}
	}
	ret = page_insert(ov, pg);
	if (ret < 0) {
		free(pg->data);
		free(pg);
		return ret;
	}
	*out = pg;
	return 0;
}

/* Under ov->mu: start holding changes, from the backing file's state. */
static int ov_dirty(struct ov *ov)
{
	struct stat st;

	if (ov->wfd < 0)
		return -EBADF;
	if (!ov->dirty) {
		if (fstat(ov->wfd, &st) < 0)
			return -errno;
		ov->size = ov->base_limit = (uint64_t)st.st_size;
		ov->dirty = true;
		TRACE("ino %llu: holding changes from size %llu\n", (unsigned long long)ov->ino,
		      (unsigned long long)ov->size);
	}
	clock_gettime(CLOCK_REALTIME, &ov->mtime);
	ov->times_set = false;
	return 0;
}

static int ov_write(struct ov *ov, const char *buf, size_t len, uint64_t off)
{
	int ret = ov_dirty(ov);
	size_t done = 0;

	while (ret == 0 && done < len) {
		uint64_t pos = off + done;
		size_t in = (size_t)(pos % PS), n = PS - in;
		struct page *pg;

		if (n > len - done)
			n = len - done;
		ret = page_get(ov, pos / PS, n == PS, &pg);
		if (ret == 0) {
			memcpy(pg->data + in, buf + done, n);
			done += n;
		}
	}
	if (done > 0 && off + done > ov->size)
		ov->size = off + done;
	return done > 0 ? (int)done : ret;
}

/* Under ov->mu: zeros over [off, off + len), as pages. */
static int ov_zero(struct ov *ov, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	for (uint64_t pos = off; pos < end;) {
		uint64_t idx = pos / PS;
		size_t in = (size_t)(pos % PS), n = PS - in;
		struct page *pg;
		int ret;

		if (n > end - pos)
			n = (size_t)(end - pos);
		if (n == PS) {
			pg = page_find(ov, idx);
			if (pg == NULL) {
				pg = calloc(1, sizeof(*pg));
				if (pg == NULL)
					return -ENOMEM;
				pg->idx = idx;
				ret = page_insert(ov, pg);
				if (ret < 0) {
					free(pg);
					return ret;
				}
			}
			free(pg->data);
			pg->data = NULL;
		} else {
			ret = page_get(ov, idx, false, &pg);
			if (ret < 0)
				return ret;
			memset(pg->data + in, 0, n);
		}
		pos += n;
	}
	return 0;
}

static int ov_truncate(struct ov *ov, uint64_t size)
{
	int ret = ov_dirty(ov);

	if (ret < 0)
		return ret;
	if (size < ov->size) {
		struct page *pg;

		pages_drop_from(ov, (size + PS - 1) / PS);
		pg = page_find(ov, size / PS);
		if (pg != NULL && pg->data != NULL)
			memset(pg->data + size % PS, 0, PS - size % PS);
		if (size < ov->base_limit)
			ov->base_limit = size;
	}
	ov->size = size;
	return 0;
}

/* Under ov->mu: applies the pending changes to the backing file and
 * flushes it; fd: any descriptor of the inode, for a clean overlay. */
static int ov_flush(struct ov *ov, int fd, bool datasync)
{
	struct stat st;
	struct timespec ts[2];

	if (!ov->dirty) {
		TRACE("ino %llu: flushed, nothing pending\n", (unsigned long long)ov->ino);
		return (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
	}
	if (fstat(ov->wfd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > ov->base_limit && ftruncate(ov->wfd, (off_t)ov->base_limit) < 0)
		return -errno;
	if (ov->size != ov->base_limit && ftruncate(ov->wfd, (off_t)ov->size) < 0)
		return -errno;
	for (size_t b = 0; b < ov->nbuckets; b++) {
		for (struct page *p = ov->pages[b]; p != NULL; p = p->next) {
			uint64_t pos = p->idx * PS;
			size_t n;
			int ret;

			if (pos >= ov->size)
				continue;
			n = ov->size - pos < PS ? (size_t)(ov->size - pos) : PS;
			if (p->data != NULL) {
				ret = pwrite_full(ov->wfd, p->data, n, (off_t)pos);
			} else if (fallocate(ov->wfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					     (off_t)pos, (off_t)n) == 0) {
				ret = 0;
			} else {
				static const char zeros[PS];

				ret = pwrite_full(ov->wfd, zeros, n, (off_t)pos);
			}
			if (ret < 0)
				return ret;
		}
	}
	if (ov->times_set) {
		ts[0] = ov->times[0];
		ts[1] = ov->times[1];
	} else {
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1] = ov->mtime;
	}
	futimens(ov->wfd, ts);
	if ((datasync ? fdatasync(ov->wfd) : fsync(ov->wfd)) < 0)
		return -errno;
	TRACE("ino %llu: flushed %zu pages, size %llu\n", (unsigned long long)ov->ino, ov->npages,
	      (unsigned long long)ov->size);
	pages_free(ov);
	ov->dirty = false;
	ov->base_limit = ov->size;
	return 0;
}

/* Under ov->mu: a failed flush lost the pending changes. */
static void ov_lose(struct ov *ov)
{
	TRACE("ino %llu: flush failed, %zu pending pages lost\n", (unsigned long long)ov->ino,
	      ov->npages);
	pages_free(ov);
	ov->dirty = false;
}

/* ---------------------------------------------------------------- inodes */

struct inode {
	struct inode *next;	/* table chain, under itbl_mu */
	int fd;			/* O_PATH */
	dev_t dev;
	ino_t ino;
	mode_t type;		/* S_IFMT bits */
	uint64_t nlookup;	/* under itbl_mu */
};

static struct inode root = { .fd = -1 };
static pthread_mutex_t itbl_mu = PTHREAD_MUTEX_INITIALIZER;
static struct inode *itbl[TBL_BUCKETS];

static struct inode *inode_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &root : (struct inode *)(uintptr_t)ino;
}

static void procpath(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static int istat(struct inode *in, struct stat *st)
{
	return fstatat(in->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Under no lock: st with the overlay's size and times, if it has changes. */
static void stat_merge(struct stat *st)
{
	struct ov *ov;

	if (!S_ISREG(st->st_mode))
		return;
	ov = ov_get(st->st_dev, st->st_ino, -1, false, false);
	if (ov == NULL)
		return;
	pthread_mutex_lock(&ov->mu);
	if (ov->dirty) {
		blkcnt_t blocks = (blkcnt_t)((ov->size + 511) / 512);

		st->st_size = (off_t)ov->size;
		if (st->st_blocks < blocks)
			st->st_blocks = blocks;
		if (ov->times_set) {
			st->st_atim = ov->times[0];
			st->st_mtim = ov->times[1];
		} else {
			st->st_mtim = ov->mtime;
		}
	}
	pthread_mutex_unlock(&ov->mu);
	ov_put(ov, false);
}

/* Looks parent/name up: an entry for the kernel, one lookup counted. */
static int do_lookup(struct inode *parent, const char *name, struct fuse_entry_param *e)
{
	struct inode *in;
	struct stat st;
	size_t h;
	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int e2 = errno;

		close(fd);
		return -e2;
	}
	stat_merge(&st);
	h = tbl_hash(st.st_dev, st.st_ino);
	pthread_mutex_lock(&itbl_mu);
	for (in = itbl[h]; in != NULL; in = in->next)
		if (in->dev == st.st_dev && in->ino == st.st_ino)
			break;
	if (in != NULL) {
		in->nlookup++;
		close(fd);
	} else {
		in = calloc(1, sizeof(*in));
		if (in == NULL) {
			pthread_mutex_unlock(&itbl_mu);
			close(fd);
			return -ENOMEM;
		}
		in->fd = fd;
		in->dev = st.st_dev;
		in->ino = st.st_ino;
		in->type = st.st_mode & S_IFMT;
		in->nlookup = 1;
		in->next = itbl[h];
		itbl[h] = in;
	}
	pthread_mutex_unlock(&itbl_mu);
	memset(e, 0, sizeof(*e));
	e->ino = (fuse_ino_t)(uintptr_t)in;
	e->attr = st;
	e->attr_timeout = 0;
	e->entry_timeout = 0;
	return 0;
}

static void inode_unref(struct inode *in, uint64_t n)
{
	struct inode **pp;

	if (in == &root)
		return;
	pthread_mutex_lock(&itbl_mu);
	in->nlookup = n < in->nlookup ? in->nlookup - n : 0;
	if (in->nlookup == 0) {
		for (pp = &itbl[tbl_hash(in->dev, in->ino)]; *pp != NULL && *pp != in; pp = &(*pp)->next)
			;
		if (*pp == in)
			*pp = in->next;
		close(in->fd);
		free(in);
	}
	pthread_mutex_unlock(&itbl_mu);
}

/* ---------------------------------------------------------------- helpers */

struct dirh {
	DIR *dp;
	off_t offset;
	struct dirent *entry;
};

static struct fh *fh_of(const struct fuse_file_info *fi)
{
	return fi ? (struct fh *)(uintptr_t)fi->fh : NULL;
}

/* A created object belongs to the caller; in a set-group-ID directory its
 * group is the directory's, which the kernel gave it already. fd: the new
 * object if open, else -1 (then dirfd/name). */
static void own(fuse_req_t req, int dirfd, const char *name, int fd)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat st;
	gid_t gid;
	int ret;

	if (geteuid() != 0 || ctx == NULL || (ctx->uid == 0 && ctx->gid == 0))
		return;
	gid = ctx->gid;
	if (fstat(dirfd, &st) == 0 && (st.st_mode & S_ISGID))
		gid = (gid_t)-1;
	ret = fd >= 0 ? fchown(fd, ctx->uid, gid) :
		fchownat(dirfd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
	if (ret < 0)
		fprintf(stderr, "faultfs: chown %s: %s\n", name, strerror(errno));
}

static void reply_entry_of(fuse_req_t req, struct inode *parent, const char *name)
{
	struct fuse_entry_param e;
	int ret = do_lookup(parent, name, &e);

	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

#define FAIL_IF_FAILING(req)				\
	do {						\
		if (failing) {				\
			fuse_reply_err((req), EIO);	\
			return;				\
		}					\
	} while (0)

/* A truncation through the overlay of the regular file in (or fh). */
static int do_truncate(struct inode *in, struct fh *fh, uint64_t size)
{
	char p[64];
	struct stat st;
	struct ov *ov;
	int fd, ret;

	if (fh != NULL && fh->ov != NULL) {
		if (fh->ov->wfd < 0)
			return -EBADF;
		pthread_mutex_lock(&fh->ov->mu);
		ret = ov_truncate(fh->ov, size);
		pthread_mutex_unlock(&fh->ov->mu);
		return ret;
	}
	if (in->type == S_IFDIR)
		return -EISDIR;
	if (in->type != S_IFREG)
		return -EINVAL;
	procpath(in->fd, p, sizeof(p));
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ov = ov_get(st.st_dev, st.st_ino, fd, true, false);
	close(fd);
	if (ov == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&ov->mu);
	ret = ov_truncate(ov, size);
	pthread_mutex_unlock(&ov->mu);
	ov_put(ov, false);
	return ret;
}

/* After times were set on st's inode: a pending change must not make the
 * flush move them on. */
static void note_times(const struct stat *st)
{
	struct ov *ov;

	if (!S_ISREG(st->st_mode))
		return;
	ov = ov_get(st->st_dev, st->st_ino, -1, false, false);
	if (ov == NULL)
		return;
	pthread_mutex_lock(&ov->mu);
	if (ov->dirty) {
		ov->times[0] = st->st_atim;
		ov->times[1] = st->st_mtim;
		ov->times_set = true;
	}
	pthread_mutex_unlock(&ov->mu);
	ov_put(ov, false);
}

/* The open of a regular file or whatever else, once fd is open. */
static int fh_setup(int fd, int flags, struct fuse_file_info *fi)
{
	struct fh *fh = calloc(1, sizeof(*fh));
	struct stat st;
	int ret = 0;

	if (fh == NULL) {
		close(fd);
		return -ENOMEM;
	}
	fh->fd = fd;
	fh->flags = flags;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		bool writable = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);

		fh->ov = ov_get(st.st_dev, st.st_ino, writable ? fd : -1, true, true);
		if (fh->ov == NULL)
			ret = -ENOMEM;
		if (ret == 0 && (flags & O_TRUNC)) {
			pthread_mutex_lock(&fh->ov->mu);
			ret = ov_truncate(fh->ov, 0);
			pthread_mutex_unlock(&fh->ov->mu);
		}
	}
	if (ret < 0) {
		ov_put(fh->ov, true);
		close(fd);
		free(fh);
		return ret;
	}
	fi->fh = (uintptr_t)fh;
	fi->keep_cache = 0;
	fi->direct_io = 0;
	return 0;
}

static void fh_free(struct fh *fh)
{
	close(fh->fd);
	ov_put(fh->ov, true);
	free(fh);
}

/* Flags for the backing open: read-write for a writer (the overlay reads
 * the pages it completes), no truncation, no append, no direct I/O. */
static int backing_flags(int flags)
{
	flags &= ~(O_TRUNC | O_APPEND | O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW);
	if ((flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags | O_CLOEXEC;
}

/* ---------------------------------------------------------------- operations */

static void ffs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
}

static void ffs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	reply_entry_of(req, inode_of(parent), name);
}

static void ffs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_unref(inode_of(ino), nlookup);
	fuse_reply_none(req);
}

static void ffs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		inode_unref(inode_of(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void ffs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct stat st;
	int ret = fh ? (fstat(fh->fd, &st) < 0 ? -errno : 0) : istat(inode_of(ino), &st);

	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	stat_merge(&st);
	fuse_reply_attr(req, &st, 0);
}

static void ffs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	struct inode *in = inode_of(ino);
	struct fh *fh = fh_of(fi);
	struct stat st;
	char p[64];
	int ret = 0;

	FAIL_IF_FAILING(req);
	procpath(in->fd, p, sizeof(p));
	if (to_set & FUSE_SET_ATTR_MODE) {
		if ((fh ? fchmod(fh->fd, attr->st_mode) : fchmodat(AT_FDCWD, p, attr->st_mode, 0)) < 0)
			ret = -errno;
	}
	if (ret == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			ret = -errno;
	}
	if (ret == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		if (attr->st_size < 0)
			ret = -EINVAL;
		else
			ret = do_truncate(in, fh, (uint64_t)attr->st_size);
	}
	if (ret == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec tv[2];

		tv[0].tv_sec = tv[1].tv_sec = 0;
		tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (utimensat(in->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			ret = -errno;
		else if (istat(in, &st) == 0)
			note_times(&st);
	}
	if (ret == 0)
		ret = fh ? (fstat(fh->fd, &st) < 0 ? -errno : 0) : istat(in, &st);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	stat_merge(&st);
	fuse_reply_attr(req, &st, 0);
}

static void ffs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(inode_of(ino)->fd, "", buf, sizeof(buf) - 1);

	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

static void ffs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct inode *dir = inode_of(parent);

	FAIL_IF_FAILING(req);
	if (mknodat(dir->fd, name, mode, rdev) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	own(req, dir->fd, name, -1);
	reply_entry_of(req, dir, name);
}

static void ffs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct inode *dir = inode_of(parent);

	FAIL_IF_FAILING(req);
	if (mkdirat(dir->fd, name, mode) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	own(req, dir->fd, name, -1);
	reply_entry_of(req, dir, name);
}

static void ffs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct inode *dir = inode_of(parent);

	FAIL_IF_FAILING(req);
	if (symlinkat(link, dir->fd, name) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	own(req, dir->fd, name, -1);
	reply_entry_of(req, dir, name);
}

static void ffs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct inode *dir = inode_of(newparent);

	FAIL_IF_FAILING(req);
	if (linkat(inode_of(ino)->fd, "", dir->fd, newname, AT_EMPTY_PATH) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	reply_entry_of(req, dir, newname);
}

static void ffs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct inode *dir = inode_of(parent);
	struct stat st;
	bool known = fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;

	if (unlinkat(dir->fd, name, 0) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (known && S_ISREG(st.st_mode))
		ov_unlinked(st.st_dev, st.st_ino);
	fuse_reply_err(req, 0);
}

static void ffs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(inode_of(parent)->fd, name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void ffs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		       const char *newname, unsigned int flags)
{
	struct inode *from = inode_of(parent), *to = inode_of(newparent);
	struct stat st;
	bool known = fstatat(to->fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0;

	if (renameat2(from->fd, name, to->fd, newname, flags) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (known && S_ISREG(st.st_mode) && !(flags & RENAME_EXCHANGE))
		ov_unlinked(st.st_dev, st.st_ino);
	fuse_reply_err(req, 0);
}

static void ffs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int flags = backing_flags(fi->flags), fd, ret;
	char p[64];

	if (fi->flags & O_TRUNC)
		FAIL_IF_FAILING(req);
	procpath(inode_of(ino)->fd, p, sizeof(p));
	fd = open(p, flags);
	if (fd < 0 && (fi->flags & O_ACCMODE) == O_WRONLY)
		fd = open(p, (flags & ~O_ACCMODE) | O_WRONLY);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	ret = fh_setup(fd, fi->flags, fi);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else if (fuse_reply_open(req, fi) != 0)
		fh_free(fh_of(fi));
}

static void ffs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	struct inode *dir = inode_of(parent);
	int flags = backing_flags(fi->flags), fd, ret;
	struct fuse_entry_param e;

	FAIL_IF_FAILING(req);
	fd = openat(dir->fd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
	if (fd >= 0)
		own(req, dir->fd, name, fd);
	else if (errno == EEXIST && !(fi->flags & O_EXCL))
		fd = openat(dir->fd, name, flags | O_NOFOLLOW);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	ret = fh_setup(fd, fi->flags, fi);
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	ret = do_lookup(dir, name, &e);
	if (ret < 0) {
		fh_free(fh_of(fi));
		fuse_reply_err(req, -ret);
		return;
	}
	if (fuse_reply_create(req, &e, fi) != 0) {
		fh_free(fh_of(fi));
		inode_unref(inode_of(e.ino), 1);
	}
}

/* The bytes of [off, off + size) the mount shows; returns the count. */
static ssize_t do_read(struct fh *fh, char *buf, size_t size, off_t off)
{
	struct ov *ov = fh->ov;
	size_t done = 0;
	char *tmp;
	int ret = 0;

	if (ov != NULL) {
		pthread_mutex_lock(&ov->mu);
		if (!ov->dirty) {
			pthread_mutex_unlock(&ov->mu);
			ov = NULL;
		}
	}
	if (ov == NULL) {
		ssize_t n = pread(fh->fd, buf, size, off);

		return n < 0 ? -errno : n;
	}
	/* Under ov->mu, with changes pending. */
	if ((uint64_t)off >= ov->size)
		size = 0;
	else if (size > ov->size - (uint64_t)off)
		size = (size_t)(ov->size - (uint64_t)off);
	tmp = size ? malloc(PS) : NULL;
	if (size && tmp == NULL)
		ret = -ENOMEM;
	while (ret == 0 && done < size) {
		uint64_t pos = (uint64_t)off + done;
		size_t in = (size_t)(pos % PS), n = PS - in;
		struct page *pg = page_find(ov, pos / PS);

		if (n > size - done)
			n = size - done;
		if (pg != NULL && pg->data == NULL) {
			memset(buf + done, 0, n);
		} else if (pg != NULL) {
			memcpy(buf + done, pg->data + in, n);
		} else {
			ret = backing_page(ov, fh->fd, pos / PS, tmp);
			if (ret == 0)
				memcpy(buf + done, tmp + in, n);
		}
		if (ret == 0)
			done += n;
	}
	pthread_mutex_unlock(&ov->mu);
	free(tmp);
	return done > 0 ? (ssize_t)done : ret;
}

static void ffs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	(void)ino;
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = off < 0 ? -EINVAL : do_read(fh_of(fi), buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void ffs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct ov *ov = fh->ov;
	int ret;

	(void)ino;
	FAIL_IF_FAILING(req);
	if (off < 0 || size > INT_MAX) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (ov == NULL) {
		ssize_t n = pwrite(fh->fd, buf, size, off);

		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_write(req, (size_t)n);
		return;
	}
	pthread_mutex_lock(&ov->mu);
	ret = ov_write(ov, buf, size, (uint64_t)off);
	if (ret > 0 && (fh->flags & O_DSYNC)) {
		int r = ov_flush(ov, fh->fd, (fh->flags & O_SYNC) != O_SYNC);

		if (r < 0)
			ret = r;
	}
	pthread_mutex_unlock(&ov->mu);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, (size_t)ret);
}

static void ffs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, failing_close ? EIO : 0);
}

static void ffs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fh_free(fh_of(fi));
	fuse_reply_err(req, 0);
}

static void ffs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	int ret;

	FAIL_IF_FAILING(req);
	if (failing_lossy) {
		if (fh->ov != NULL) {
			pthread_mutex_lock(&fh->ov->mu);
			ov_lose(fh->ov);
			pthread_mutex_unlock(&fh->ov->mu);
		}
		/* The kernel's cache of the mount still holds what was lost.
		 * Before the reply, so that no read after the fsync finds it:
		 * the invalidation takes no lock the fsync holds (without
		 * writeback caching, no page of the mount is dirty). */
		fuse_lowlevel_notify_inval_inode(session, ino, 0, 0);
		fuse_reply_err(req, EIO);
		return;
	}
	if (fh->ov == NULL) {
		ret = (datasync ? fdatasync(fh->fd) : fsync(fh->fd)) < 0 ? -errno : 0;
	} else {
		pthread_mutex_lock(&fh->ov->mu);
		ret = ov_flush(fh->ov, fh->fd, datasync);
		pthread_mutex_unlock(&fh->ov->mu);
	}
	fuse_reply_err(req, -ret);
}

static void ffs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = calloc(1, sizeof(*d));
	int fd;

	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(inode_of(ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d->dp = fdopendir(fd)) == NULL) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, e);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(d->dp);
		free(d);
	}
}

static void ffs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1), *p = buf;
	size_t rem = size;
	int err = 0;

	(void)ino;
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct stat st;
		size_t n;

		if (d->entry == NULL) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (d->entry == NULL) {
				err = errno;
				break;
			}
		}
		memset(&st, 0, sizeof(st));
		st.st_ino = d->entry->d_ino;
		st.st_mode = (mode_t)d->entry->d_type << 12;
		n = fuse_add_direntry(req, p, rem, d->entry->d_name, &st, d->entry->d_off);
		if (n > rem)
			break;
		p += n;
		rem -= n;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	if (err != 0 && p == buf)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, (size_t)(p - buf));
	free(buf);
}

static void ffs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;

	(void)ino;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void ffs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = dirfd(((struct dirh *)(uintptr_t)fi->fh)->dp);

	(void)ino;
	FAIL_IF_FAILING(req);
	if (failing_dirsync) {
		fuse_reply_err(req, EIO);
		return;
	}
	fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

static void ffs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (fstatvfs(inode_of(ino)->fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static void ffs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	struct inode *in = inode_of(ino);
	char p[64];

	FAIL_IF_FAILING(req);
	if (in->type == S_IFLNK) {
		fuse_reply_err(req, EPERM);
		return;
	}
	procpath(in->fd, p, sizeof(p));
	fuse_reply_err(req, setxattr(p, name, value, size, flags) < 0 ? errno : 0);
}

static void ffs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct inode *in = inode_of(ino);
	char p[64], *buf = NULL;
	ssize_t n;

	if (in->type == S_IFLNK) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	procpath(in->fd, p, sizeof(p));
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = getxattr(p, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void ffs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct inode *in = inode_of(ino);
	char p[64], *buf = NULL;
	ssize_t n;

	if (in->type == S_IFLNK) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	procpath(in->fd, p, sizeof(p));
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = listxattr(p, buf, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void ffs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct inode *in = inode_of(ino);
	char p[64];

	FAIL_IF_FAILING(req);
	if (in->type == S_IFLNK) {
		fuse_reply_err(req, EPERM);
		return;
	}
	procpath(in->fd, p, sizeof(p));
	fuse_reply_err(req, removexattr(p, name) < 0 ? errno : 0);
}

static void ffs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	char p[64];

	procpath(inode_of(ino)->fd, p, sizeof(p));
	fuse_reply_err(req, faccessat(AT_FDCWD, p, mask, 0) < 0 ? errno : 0);
}

static void ffs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			  struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct ov *ov;
	uint64_t end;
	int ret;

	(void)ino;
	FAIL_IF_FAILING(req);
	if (fh == NULL || fh->ov == NULL) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) ||
	    ((mode & FALLOC_FL_PUNCH_HOLE) &&
	     (!(mode & FALLOC_FL_KEEP_SIZE) || (mode & FALLOC_FL_ZERO_RANGE)))) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	ov = fh->ov;
	end = (uint64_t)off + (uint64_t)len;
	pthread_mutex_lock(&ov->mu);
	ret = ov_dirty(ov);
	if (ret == 0 && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
		uint64_t zend = end;

		if ((mode & FALLOC_FL_KEEP_SIZE) && zend > ov->size)
			zend = ov->size;
		if ((uint64_t)off < zend)
			ret = ov_zero(ov, (uint64_t)off, zend - (uint64_t)off);
	}
	if (ret == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > ov->size)
		ov->size = end;		/* reads as zeros: past base_limit */
	pthread_mutex_unlock(&ov->mu);
	fuse_reply_err(req, -ret);
}

static void ffs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	off_t r;

	(void)ino;
	if (fh->ov != NULL && (whence == SEEK_DATA || whence == SEEK_HOLE)) {
		pthread_mutex_lock(&fh->ov->mu);
		if (fh->ov->dirty) {
			uint64_t size = fh->ov->size;

			pthread_mutex_unlock(&fh->ov->mu);
			if (off < 0 || (uint64_t)off >= size)
				fuse_reply_err(req, ENXIO);
			else
				fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)size);
			return;
		}
		pthread_mutex_unlock(&fh->ov->mu);
	}
	r = lseek(fh->fd, off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

static const struct fuse_lowlevel_ops ffs_ops = {
	.init = ffs_init,
	.lookup = ffs_lookup,
	.forget = ffs_forget,
	.forget_multi = ffs_forget_multi,
	.getattr = ffs_getattr,
	.setattr = ffs_setattr,
	.readlink = ffs_readlink,
	.mknod = ffs_mknod,
	.mkdir = ffs_mkdir,
	.symlink = ffs_symlink,
	.link = ffs_link,
	.unlink = ffs_unlink,
	.rmdir = ffs_rmdir,
	.rename = ffs_rename,
	.open = ffs_open,
	.create = ffs_create,
	.read = ffs_read,
	.write = ffs_write,
	.flush = ffs_flush,
	.release = ffs_release,
	.fsync = ffs_fsync,
	.opendir = ffs_opendir,
	.readdir = ffs_readdir,
	.releasedir = ffs_releasedir,
	.fsyncdir = ffs_fsyncdir,
	.statfs = ffs_statfs,
	.setxattr = ffs_setxattr,
	.getxattr = ffs_getxattr,
	.listxattr = ffs_listxattr,
	.removexattr = ffs_removexattr,
	.access = ffs_access,
	.fallocate = ffs_fallocate,
	.lseek = ffs_lseek,
};

/* ---------------------------------------------------------------- main */

static int sig_rtmin;	/* SIGRTMIN is a libc call: read once, before the handler */

static void on_signal(int sig)
{
	if (sig == sig_rtmin) {
		failing_dirsync = 1;
		return;
	}
	if (sig == sig_rtmin + 1) {
		failing_lossy = 1;
		return;
	}
	if (sig == sig_rtmin + 2) {
		failing_close = 1;
		return;
	}
	failing = sig == SIGUSR1;
	failing_dirsync = 0;
	failing_lossy = 0;
	failing_close = 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: faultfs BACKDIR MOUNTPOINT [-f] [-d] [-s] [-o FUSE_OPTIONS]\n"
		   "  (test tool: holds writes until fsync; SIGUSR1 fails writes with EIO, SIGRTMIN fsyncdir only,\n"
		   "   SIGRTMIN+1 fsync loses pending writes, SIGRTMIN+2 close fails, SIGUSR2 heals)\n");
}

int main(int argc, char *argv[])
{
	struct fuse_args args;
	struct fuse_cmdline_opts opts;
	struct fuse_loop_config *lcfg = NULL;
	struct fuse_session *se;
	struct sigaction sa;
	struct rlimit rl;
	char opts_str[64];
	char **av;
	int n = 0, i, ret = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
	}
	if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
		usage(stderr);
		return 2;
	}
	root.fd = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root.fd < 0) {
		fprintf(stderr, "faultfs: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	root.type = S_IFDIR;
	tracing = getenv("FAULTFS_TRACE") != NULL && *getenv("FAULTFS_TRACE") != '\0';
	umask(0);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	sig_rtmin = SIGRTMIN;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGUSR2, &sa, NULL) < 0 ||
	    sigaction(sig_rtmin, &sa, NULL) < 0 || sigaction(sig_rtmin + 1, &sa, NULL) < 0 ||
	    sigaction(sig_rtmin + 2, &sa, NULL) < 0) {
		perror("faultfs: sigaction");
		return 1;
	}

	snprintf(opts_str, sizeof(opts_str), "default_permissions,fsname=faultfs,subtype=faultfs%s",
		 geteuid() == 0 ? ",allow_other" : "");
	av = calloc((size_t)argc + 3, sizeof(*av));
	if (av == NULL)
		return 1;
	av[n++] = argv[0];
	for (i = 2; i < argc; i++)
		av[n++] = argv[i];
	av[n++] = (char *)"-o";
	av[n++] = opts_str;
	args.argc = n;
	args.argv = av;
	args.allocated = 0;
	if (fuse_parse_cmdline(&args, &opts) != 0) {
		usage(stderr);
		return 2;
	}
	if (opts.mountpoint == NULL) {
		usage(stderr);
		return 2;
	}
	se = fuse_session_new(&args, &ffs_ops, sizeof(ffs_ops), NULL);
	if (se == NULL)
		goto out;
	session = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	if (fuse_daemonize(opts.foreground) != 0)
		goto out_unmount;
	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		lcfg = fuse_loop_cfg_create();
		if (lcfg == NULL)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(lcfg, (unsigned)opts.clone_fd);
		/* libfuse 3.14 leaves the thread counts not given UINT_MAX */
		if (opts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lcfg, opts.max_idle_threads);
		if (opts.max_threads != UINT_MAX)
			fuse_loop_cfg_set_max_threads(lcfg, opts.max_threads);
		ret = fuse_session_loop_mt(se, lcfg);
		fuse_loop_cfg_destroy(lcfg);
	}
	ret = ret != 0;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
