/* verify: owns the comparison of two trees for `relocctl verify`.
 *
 * Invariants: nothing is written to either tree; symlinks below the roots
 * are compared as links, never followed; names are visited in sorted order
 * so the report is the same on every run. Contents are compared in chunks
 * of VERIFY_CHUNK by XXH3-128, and only a chunk whose hashes differ is
 * scanned for its first and last differing byte, so a report names exact
 * byte ranges. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "relocfs/fileutil.h"
#include "relocfs/treeutil.h"
#include "relocfs/verify.h"

#define MAX_RANGES 16

struct walk {
	FILE *out;
	struct verify_result *res;
	char *err;
	size_t errlen;
	char *a, *b;		/* VERIFY_CHUNK buffers */
};

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symbolic link";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	default: return "unknown";
	}
}

static const char *show(const char *rel)
{
	return rel[0] ? rel : ".";
}

bool verify_chunk(const char *a, const char *b, size_t len, size_t *first, size_t *last)
{
	size_t i, j;

	if (XXH128_isEqual(XXH3_128bits(a, len), XXH3_128bits(b, len)))
		return false;
	for (i = 0; i < len && a[i] == b[i]; i++)
		;
	for (j = len ? len - 1 : 0; j > i && a[j] == b[j]; j--)
		;
	*first = i;
	*last = j;
	return true;
}

struct ranges {
	uint64_t start[MAX_RANGES], end[MAX_RANGES];
	unsigned n;
	uint64_t more;
};

static void ranges_add(struct ranges *rg, uint64_t start, uint64_t end)
{
	if (rg->n > 0 && rg->end[rg->n - 1] + 1 >= start) {
		rg->end[rg->n - 1] = end;
		return;
	}
	if (rg->n == MAX_RANGES) {
		rg->more++;
		return;
	}
	rg->start[rg->n] = start;
	rg->end[rg->n++] = end;
}

static int compare_files(struct walk *w, int pa, const char *name_a, int pb, const char *name_b,
			 const char *rel, const struct stat *sa, const struct stat *sb)
{
	uint64_t common = (uint64_t)(sa->st_size < sb->st_size ? sa->st_size : sb->st_size);
	struct ranges rg = { .n = 0 };
	int fa = openat(pa, name_a, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int fb = openat(pb, name_b, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int ret = 0;

	if (fa < 0 || fb < 0) {
		ret = -errno;
		snprintf(w->err, w->errlen, "%s: %s", show(rel), strerror(errno));
		goto out;
	}
	for (uint64_t off = 0; off < common; off += VERIFY_CHUNK) {
		size_t len = common - off < VERIFY_CHUNK ? (size_t)(common - off) : VERIFY_CHUNK;
		size_t first, last;

		/* A file that shrank under us: what is gone reads as zeros. */
		ret = fileutil_pread_full(fa, w->a, len, (off_t)off, NULL);
		if (ret == 0)
			ret = fileutil_pread_full(fb, w->b, len, (off_t)off, NULL);
		if (ret < 0) {
			snprintf(w->err, w->errlen, "reading %s: %s", show(rel), strerror(-ret));
			goto out;
		}
		w->res->bytes += len;
		if (verify_chunk(w->a, w->b, len, &first, &last))
			ranges_add(&rg, off + first, off + last);
	}
	if (sa->st_size != sb->st_size)
		fprintf(w->out, "size differs: %s (%lld vs %lld bytes)\n", show(rel),
			(long long)sa->st_size, (long long)sb->st_size);
	if (rg.n > 0) {
		fprintf(w->out, "content differs: %s: bytes", show(rel));
		for (unsigned i = 0; i < rg.n; i++)
			fprintf(w->out, "%s %llu-%llu", i ? "," : "", (unsigned long long)rg.start[i],
				(unsigned long long)rg.end[i]);
		if (rg.more > 0)
			fprintf(w->out, " and %llu more", (unsigned long long)rg.more);
		fputc('\n', w->out);
	}
	if (rg.n > 0 || sa->st_size != sb->st_size)
		w->res->differ++;
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return ret;
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Sorted names of a directory, without . and .. */
static int list_dir(int fd, char ***names, size_t *n)
{
	DIR *dp = treeutil_opendir(fd, ".");
	size_t cap = 0;
	int ret = 0;

	*names = NULL;
	*n = 0;
	if (dp == NULL)
		return -errno;
	for (struct dirent *de; (de = readdir(dp)) != NULL;) {
		char *dup;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			char **v = realloc(*names, (cap ? cap * 2 : 64) * sizeof(*v));

			if (v == NULL) {
				ret = -ENOMEM;
				break;
			}
			*names = v;
			cap = cap ? cap * 2 : 64;
		}
		dup = strdup(de->d_name);
		if (dup == NULL) {
			ret = -ENOMEM;
			break;
		}
		(*names)[(*n)++] = dup;
	}
	closedir(dp);
	if (ret == 0 && *n > 1)
		qsort(*names, *n, sizeof(**names), name_cmp);
	return ret;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int compare_dirs(struct walk *w, int da, int db, const char *rel);

/* Compares pa/name_a with pb/name_b. */
static int compare_obj(struct walk *w, int pa, const char *name_a, int pb, const char *name_b,
		       const char *rel)
{
	struct stat sa, sb;
	int ret = 0;

	w->res->objects++;
	if (fstatat(pa, name_a, &sa, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fstatat(pb, name_b, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		snprintf(w->err, w->errlen, "%s: %s", show(rel), strerror(errno));
		return -errno;
	}
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
		fprintf(w->out, "type differs: %s (%s vs %s)\n", show(rel), type_name(sa.st_mode),
			type_name(sb.st_mode));
		w->res->differ++;
		return 0;
	}
	if ((sa.st_mode & 07777) != (sb.st_mode & 07777) && !S_ISLNK(sa.st_mode)) {
		fprintf(w->out, "mode differs: %s (%04o vs %04o)\n", show(rel),
			(unsigned)(sa.st_mode & 07777), (unsigned)(sb.st_mode & 07777));
		w->res->differ++;
	}
	if (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid) {
		fprintf(w->out, "owner differs: %s (%u:%u vs %u:%u)\n", show(rel),
			(unsigned)sa.st_uid, (unsigned)sa.st_gid, (unsigned)sb.st_uid,
			(unsigned)sb.st_gid);
		w->res->differ++;
	}
	if (S_ISREG(sa.st_mode)) {
		ret = compare_files(w, pa, name_a, pb, name_b, rel, &sa, &sb);
	} else if (S_ISLNK(sa.st_mode)) {
		char la[PATH_MAX], lb[PATH_MAX];
		ssize_t na = readlinkat(pa, name_a, la, sizeof(la) - 1);
		ssize_t nb = readlinkat(pb, name_b, lb, sizeof(lb) - 1);

		if (na < 0 || nb < 0) {
			snprintf(w->err, w->errlen, "%s: %s", show(rel), strerror(errno));
			return -errno;
		}
		la[na] = lb[nb] = '\0';
		if (strcmp(la, lb) != 0) {
			fprintf(w->out, "link text differs: %s ('%s' vs '%s')\n", show(rel), la, lb);
			w->res->differ++;
		}
	} else if ((S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) && sa.st_rdev != sb.st_rdev) {
		fprintf(w->out, "device differs: %s\n", show(rel));
		w->res->differ++;
	} else if (S_ISDIR(sa.st_mode)) {
		int da = openat(pa, name_a, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int db = openat(pb, name_b, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (da < 0 || db < 0) {
			ret = -errno;
			snprintf(w->err, w->errlen, "%s: %s", show(rel), strerror(errno));
		} else {
			ret = compare_dirs(w, da, db, rel);
		}
		if (da >= 0)
			close(da);
		if (db >= 0)
			close(db);
	}
	return ret;
}

static int compare_dirs(struct walk *w, int da, int db, const char *rel)
{
	char **na = NULL, **nb = NULL, sub[PATH_MAX];
	size_t ca = 0, cb = 0, i = 0, j = 0;
	int ret;

	ret = list_dir(da, &na, &ca);
	if (ret == 0)
		ret = list_dir(db, &nb, &cb);
	if (ret < 0) {
		snprintf(w->err, w->errlen, "listing %s: %s", show(rel), strerror(-ret));
		goto out;
	}
	while (ret == 0 && (i < ca || j < cb)) {
		int c = i == ca ? 1 : j == cb ? -1 : strcmp(na[i], nb[j]);
		const char *name = c <= 0 ? na[i] : nb[j];

		if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", name) >=
		    sizeof(sub)) {
			ret = -ENAMETOOLONG;
			snprintf(w->err, w->errlen, "%s/%s: path too long", show(rel), name);
			break;
		}
		if (c < 0) {
			fprintf(w->out, "only in A: %s\n", sub);
			w->res->differ++;
			i++;
		} else if (c > 0) {
			fprintf(w->out, "only in B: %s\n", sub);
			w->res->differ++;
			j++;
		} else {
			ret = compare_obj(w, da, name, db, name, sub);
			i++;
			j++;
		}
	}
out:
	free_names(na, ca);
	free_names(nb, cb);
	return ret;
}

/* The parent of path, opened, and its last component: the roots are
 * compared like any other object, so a root that is a file works too. */
static int open_parent(const char *path, char *name, size_t len)
{
	char buf[PATH_MAX];
	char *slash;
	size_t n;
	int fd;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	slash = strrchr(buf, '/');
	if (slash == NULL) {
		snprintf(name, len, "%s", buf);
		fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else if (slash[1] == '\0') {
		snprintf(name, len, ".");	/* "/" itself */
		fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		snprintf(name, len, "%s", slash + 1);
		if (slash == buf)
			slash[1] = '\0';
		else
			*slash = '\0';
		fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (strcmp(name, "..") == 0 || strcmp(name, ".") == 0) {
		/* Name the directory itself: "." of the path. */
		if (fd >= 0)
			close(fd);
		snprintf(name, len, ".");
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return fd < 0 ? -errno : fd;
}

int verify_trees(const char *a, const char *b, FILE *out, struct verify_result *res,
		 char *err, size_t errlen)
{
	struct walk w = { .out = out, .res = res, .err = err, .errlen = errlen };
	char name_a[NAME_MAX + 1], name_b[NAME_MAX + 1];
	int pa = -1, pb = -1, ret;
	struct stat sa, sb;

	memset(res, 0, sizeof(*res));
	err[0] = '\0';
	pa = open_parent(a, name_a, sizeof(name_a));
	if (pa < 0) {
		ret = pa;
		snprintf(err, errlen, "%s: %s", a, strerror(-ret));
		goto out;
	}
	pb = open_parent(b, name_b, sizeof(name_b));
	if (pb < 0) {
		ret = pb;
		snprintf(err, errlen, "%s: %s", b, strerror(-ret));
		goto out;
	}
	if (fstatat(pa, name_a, &sa, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", a, strerror(-ret));
		goto out;
	}
	if (fstatat(pb, name_b, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", b, strerror(-ret));
		goto out;
	}
	w.a = malloc(VERIFY_CHUNK);
	w.b = malloc(VERIFY_CHUNK);
	if (w.a == NULL || w.b == NULL) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ret = compare_obj(&w, pa, name_a, pb, name_b, "");
out:
	free(w.a);
	free(w.b);
	if (pa >= 0)
		close(pa);
	if (pb >= 0)
		close(pb);
	return ret;
}
