/* fileutil: small file helpers: durable state files, whole-buffer I/O. */
#ifndef RELOCFS_FILEUTIL_H
#define RELOCFS_FILEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Replaces dirfd/name with data atomically and durably: write a temp file,
 * fsync it, rename it over name, fsync the directory. dirfd must be an
 * open directory, not O_PATH (it is fsync'ed). An error before the rename
 * leaves the old content. If only the directory's flush fails, the new
 * content is in place but a crash may still find the old: *renamed (when
 * not NULL) tells that case apart, for callers to whom it matters. */
int fileutil_write_atomic(int dirfd, const char *name, const void *data, size_t len,
			  bool *renamed);

/* Reads all of dirfd/name (at most max bytes) into a malloc'd, NUL-ended
 * buffer. -EFBIG when larger than max, -EINVAL when not a regular file
 * (opened without blocking, so a FIFO does not hang the caller). */
int fileutil_read_all(int dirfd, const char *name, size_t max, char **data, size_t *len);

/* pwrite of all of buf, through short writes and EINTR. */
int fileutil_pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* pread of len bytes, through short reads and EINTR; what lies past the end
 * of the file reads as zeros. *got (when not NULL) is what the file held. */
int fileutil_pread_full(int fd, void *buf, size_t len, off_t off, size_t *got);

/* mkdir -p with mode for the missing parts. */
int fileutil_mkdirs(const char *path, unsigned mode);

/* True when path equals dir or lies below it (both canonical, absolute). */
bool fileutil_path_within(const char *path, const char *dir);

#endif
