/* statedir: owns BASE/<id>/, where <id> is the XXH3-64 of the canonical
 * source path, so that every mount of one source finds the same state.
 *
 * Invariants: the directory is 0700 and root's; "source" names the source it
 * belongs to and is checked on open, so a hash collision or a moved
 * directory is refused rather than mixing two datastores' state; the lock is
 * an flock on "lock", released by the kernel when the daemon dies, so a
 * crashed relocfs never leaves a stale lock behind. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "relocfs/fileutil.h"
#include "relocfs/statedir.h"

#define STATEDIR_SOURCE_MAX (PATH_MAX + 2)

static int statedir_check_source(struct statedir *sd, const char *source)
{
	char *data = NULL;
	size_t len = 0;
	char line[PATH_MAX + 2];
	int ret;

	snprintf(line, sizeof(line), "%s\n", source);
	ret = fileutil_read_all(sd->dirfd, "source", STATEDIR_SOURCE_MAX, &data, &len);
	if (ret == -ENOENT)
		return fileutil_write_atomic(sd->dirfd, "source", line, strlen(line), NULL);
	if (ret < 0)
		return ret;
	ret = strcmp(data, line) == 0 ? 0 : -EXDEV;
	free(data);
	return ret;
}

int statedir_open(struct statedir *sd, const char *base, const char *source)
{
	int ret;

	sd->dirfd = -1;
	sd->lockfd = -1;
	if (snprintf(sd->path, sizeof(sd->path), "%s/%016llx", base,
		     (unsigned long long)XXH3_64bits(source, strlen(source))) >= (int)sizeof(sd->path))
		return -ENAMETOOLONG;
	ret = fileutil_mkdirs(sd->path, 0700);
	if (ret < 0)
		goto out;
	sd->dirfd = open(sd->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sd->dirfd < 0) {
		ret = -errno;
		goto out;
	}
	sd->lockfd = openat(sd->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (sd->lockfd < 0) {
		ret = -errno;
		goto out;
	}
	if (flock(sd->lockfd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	ret = statedir_check_source(sd, source);
out:
	if (ret < 0)
		statedir_close(sd);
	return ret;
}

void statedir_close(struct statedir *sd)
{
	if (sd->lockfd >= 0)
		close(sd->lockfd);
	if (sd->dirfd >= 0)
		close(sd->dirfd);
	sd->lockfd = -1;
	sd->dirfd = -1;
}
