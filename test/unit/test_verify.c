/* test_verify: the tree comparison behind `relocctl verify`: identical
 * trees, differing ranges merged per run of chunks, sizes, types, links,
 * names on one side only, many ranges capped, errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "relocfs/verify.h"
#include "unit.h"

static char tmpdir[64], a[128], b[128];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void reset(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	mkdir(tmpdir, 0700);
	snprintf(a, sizeof(a), "%s/a", tmpdir);
	snprintf(b, sizeof(b), "%s/b", tmpdir);
	mkdir(a, 0755);
	mkdir(b, 0755);
}

static int put(const char *root, const char *rel, const char *data, size_t len, off_t off)
{
	char path[256];
	int fd, ok;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return -1;
	ok = pwrite(fd, data, len, off) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

/* Runs verify_trees(a, b) and leaves its report in out. */
static int run(char *out, size_t outlen, struct verify_result *res)
{
	char err[256];
	FILE *fp = fmemopen(out, outlen, "w");
	int ret;

	if (fp == NULL)
		return -errno;
	ret = verify_trees(a, b, fp, res, err, sizeof(err));
	fclose(fp);
	return ret;
}

static void test_same(void)
{
	static char big[3 << 20];
	char out[1024];
	struct verify_result res;

	reset();
	memset(big, 'x', sizeof(big));
	CHECK(put(a, "f", big, sizeof(big), 0) == 0);
	CHECK(put(b, "f", big, sizeof(big), 0) == 0);
	CHECK_EQ(run(out, sizeof(out), &res), 0);
	CHECK_EQ(res.differ, 0);
	CHECK_EQ(res.objects, 2);
	CHECK_EQ(res.bytes, sizeof(big));
	CHECK_STR(out, "");
}

static void test_ranges_merge_across_chunks(void)
{
	static char big[3 << 20];
	char out[1024];
	struct verify_result res;

	reset();
	memset(big, 'x', sizeof(big));
	CHECK(put(a, "f", big, sizeof(big), 0) == 0);
	CHECK(put(b, "f", big, sizeof(big), 0) == 0);
	/* One run over the first chunk boundary, one byte in the third. */
	CHECK(put(b, "f", "yyyy", 4, VERIFY_CHUNK - 2) == 0);
	CHECK(put(b, "f", "z", 1, 2 * VERIFY_CHUNK + 7) == 0);
	CHECK_EQ(run(out, sizeof(out), &res), 0);
	CHECK_EQ(res.differ, 1);
	CHECK_STR(out, "content differs: f: bytes 1048574-1048577, 2097159-2097159\n");
}

static void test_many_ranges_capped(void)
{
	static char big[40 << 20];
	char out[4096];
	struct verify_result res;

	reset();
	memset(big, 0, sizeof(big));
	CHECK(put(a, "f", big, sizeof(big), 0) == 0);
	for (int i = 0; i < 40; i += 2)
		big[(size_t)i * VERIFY_CHUNK] = 1;	/* 20 separate runs */
	CHECK(put(b, "f", big, sizeof(big), 0) == 0);
	CHECK_EQ(run(out, sizeof(out), &res), 0);
	CHECK_EQ(res.differ, 1);
	CHECK(strstr(out, " and 4 more\n") != NULL);
}

static void test_shapes(void)
{
	char out[2048], p[256];
	struct verify_result res;

	reset();
	CHECK(put(a, "short", "abc", 3, 0) == 0);
	CHECK(put(b, "short", "abcdef", 6, 0) == 0);
	CHECK(put(a, "onlya", "1", 1, 0) == 0);
	CHECK(put(b, "onlyb", "1", 1, 0) == 0);
	snprintf(p, sizeof(p), "%s/t", a);
	CHECK(mkdir(p, 0755) == 0);
	CHECK(put(b, "t", "1", 1, 0) == 0);
	snprintf(p, sizeof(p), "%s/l", a);
	CHECK(symlink("x", p) == 0);
	snprintf(p, sizeof(p), "%s/l", b);
	CHECK(symlink("y", p) == 0);
	CHECK_EQ(run(out, sizeof(out), &res), 0);
	CHECK_EQ(res.differ, 5);
	CHECK_STR(out, "link text differs: l ('x' vs 'y')\n"
		       "only in A: onlya\n"
		       "only in B: onlyb\n"
		       "size differs: short (3 vs 6 bytes)\n"
		       "type differs: t (directory vs regular file)\n");
}

static void test_missing_root(void)
{
	char err[256];
	struct verify_result res;

	reset();
	snprintf(b, sizeof(b), "%s/nope", tmpdir);
	CHECK_EQ(verify_trees(a, b, stdout, &res, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "/nope: No such file or directory") != NULL);
}

int main(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/relocfs-unit-XXXXXX",
		 t && *t && strlen(t) < 30 ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	UNIT_RUN(test_same);
	UNIT_RUN(test_ranges_merge_across_chunks);
	UNIT_RUN(test_many_ranges_capped);
	UNIT_RUN(test_shapes);
	UNIT_RUN(test_missing_root);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return UNIT_DONE();
}
