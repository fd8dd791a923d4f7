/* treeutil: owns the symlink-safe tree helpers shared by the relocation
 * engine and its crash recovery.
 *
 * Invariants: every path is resolved relative to a held descriptor with
 * O_NOFOLLOW / AT_SYMLINK_NOFOLLOW or openat2's RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS, so nothing here ever leaves the tree it was given. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "relocfs/treeutil.h"

DIR *treeutil_opendir(int dirfd, const char *name)
{
	int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	int fd = openat(dirfd, name, strcmp(name, ".") == 0 ? flags : flags | O_NOFOLLOW);
	DIR *dp;

	if (fd < 0)
		return NULL;
	dp = fdopendir(fd);
	if (dp == NULL) {
		int err = errno;

		close(fd);
		errno = err;
	}
	return dp;
}

/* Copies the extended attributes of src to dst (both O_PATH, not
 * symlinks). Attributes the destination cannot hold fail the copy. */
int treeutil_copy_xattrs(int src, int dst)
{
	char sp[64], dp[64], *names = NULL, *val = NULL;
	ssize_t n;
	int ret = 0;

	snprintf(sp, sizeof(sp), "/proc/self/fd/%d", src);
	snprintf(dp, sizeof(dp), "/proc/self/fd/%d", dst);
	n = listxattr(sp, NULL, 0);
	if (n < 0)
		return errno == ENOTSUP ? 0 : -errno;
	names = malloc((size_t)n + 1);
	val = malloc(65536);
	if (names == NULL || val == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	n = n > 0 ? listxattr(sp, names, (size_t)n) : 0;
	if (n < 0) {
		ret = -errno;
		goto out;
	}
	for (char *name = names; name < names + n; name += strlen(name) + 1) {
		ssize_t v = getxattr(sp, name, val, 65536);

		if (v < 0)
			continue;	/* gone meanwhile */
		if (setxattr(dp, name, val, (size_t)v, 0) < 0) {
			ret = -errno;
			goto out;
		}
	}
	/* Names the destination has and the source no longer has. */
	n = listxattr(dp, NULL, 0);
	if (n > 0) {
		char *dnames = malloc((size_t)n);

		if (dnames != NULL && (n = listxattr(dp, dnames, (size_t)n)) > 0)
			for (char *name = dnames; name < dnames + n; name += strlen(name) + 1)
				if (getxattr(sp, name, NULL, 0) < 0 && errno == ENODATA)
					removexattr(dp, name);
		free(dnames);
	}
out:
	free(names);
	free(val);
	return ret;
}

/* Owner, mode and xattrs of src (O_PATH) onto dst (O_PATH); times apart. */
int treeutil_copy_attrs(int src, int dst, const struct stat *st)
{
	char dp[64];

	if (fchownat(dst, "", st->st_uid, st->st_gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st->st_mode))
		return 0;
	snprintf(dp, sizeof(dp), "/proc/self/fd/%d", dst);
	if (chmod(dp, st->st_mode & 07777) < 0)
		return -errno;
	return treeutil_copy_xattrs(src, dst);
}

int treeutil_set_times(int dst, const struct stat *st, const struct timespec *mtime)
{
	struct timespec tv[2] = { st->st_atim, mtime ? *mtime : st->st_mtim };

	if (utimensat(dst, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

int treeutil_open_beneath(int dirfd, const char *rel, int flags)
{
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)flags | O_CLOEXEC | O_NOFOLLOW;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, dirfd, *rel ? rel : ".", &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* Removes dirfd/name and everything below it, never following a link. */
int treeutil_remove(int parent, const char *name)
{
	struct stat st;
	int fd, ret = 0;
	DIR *dp;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	dp = treeutil_opendir(parent, name);
	if (dp == NULL)
		return -errno;
	fd = dirfd(dp);
	for (struct dirent *de; (de = readdir(dp)) != NULL;) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int r2 = treeutil_remove(fd, de->d_name);

		if (r2 < 0 && ret == 0)
			ret = r2;
	}
	closedir(dp);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT && ret == 0)
		ret = -errno;
	return ret;
}


/* fsync of every regular file and directory below dirfd, and dirfd itself,
 * never following a link; fsync on a read-only descriptor is enough. */
static int sync_below(int dirfd)
{
	DIR *dp = treeutil_opendir(dirfd, ".");
	int ret = 0;

	if (dp == NULL)
		return -errno;
	for (struct dirent *de; ret == 0 && (de = readdir(dp)) != NULL;) {
		struct stat st;
		int fd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				ret = -errno;
			continue;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
			continue;
		fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
			    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
		if (fd < 0) {
			if (errno != ENOENT)
				ret = -errno;
			continue;
		}
		if (S_ISDIR(st.st_mode))
			ret = sync_below(fd);
		else if (fsync(fd) < 0)
			ret = -errno;
		close(fd);
	}
	closedir(dp);
	if (ret == 0 && fsync(dirfd) < 0)
		ret = -errno;
	return ret;
}

/* syncfs first: a local filesystem commits everything at once, and the
 * fsyncs that follow find nothing left there; they are what reaches a
 * datastore whose syncfs does not (a FUSE one, some network ones). */
int treeutil_sync_tree(int dirfd)
{
	if (syncfs(dirfd) < 0)
		return -errno;
	return sync_below(dirfd);
}
