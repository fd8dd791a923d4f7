/* treeutil: operations on trees of a datastore that never follow a
 * symlink: attribute copies, removal, opening beneath a directory. */
#ifndef RELOCFS_TREEUTIL_H
#define RELOCFS_TREEUTIL_H

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

/* Extended attributes of src onto dst (O_PATH, not symlinks); names dst has
 * and src lacks are removed. */
int treeutil_copy_xattrs(int src, int dst);
/* Owner, mode and xattrs of src (O_PATH, stat st) onto dst (O_PATH). */
int treeutil_copy_attrs(int src, int dst, const struct stat *st);
/* Times of st onto dst (O_PATH), mtime replaced when given. */
int treeutil_set_times(int dst, const struct stat *st, const struct timespec *mtime);
/* Opens rel beneath dirfd ("" for dirfd itself), no symlink on the way. */
int treeutil_open_beneath(int dirfd, const char *rel, int flags);
/* A directory stream of dirfd/name ("." for dirfd itself, read from its
 * start), never through a symlink; NULL with errno set. */
DIR *treeutil_opendir(int dirfd, const char *name);
/* Removes dirfd/name and everything below it. A missing name is success. */
int treeutil_remove(int dirfd, const char *name);
/* syncfs, then fsync of every regular file and directory below dirfd and
 * of dirfd: what reaches a datastore whose syncfs does not (FUSE, some
 * network filesystems). */
int treeutil_sync_tree(int dirfd);

#endif
