/* test_fileutil: atomic replacement, bounded reads, mkdir -p, path_within. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "relocfs/fileutil.h"
#include "unit.h"

static char tmpdir[64];
static int dirfd_ = -1;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

static void rm_rf(const char *path)
{
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		perror(path);
}

/* Number of entries in dirfd_ besides . and .., and whether any name starts
 * with '.' (a leftover temp file). */
static int count_entries(int *dotfiles)
{
	int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int n = 0;

	*dotfiles = 0;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.') {
			printf("# leftover: %s\n", de->d_name);
			(*dotfiles)++;
		}
		n++;
	}
	closedir(d);
	return n;
}

/* Reads name from dirfd_ with plain syscalls, into buf (NUL-ended). */
static ssize_t slurp(const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -errno;
	while ((size_t)got < size - 1 && (n = read(fd, buf + got, size - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = '\0';
	close(fd);
	return got;
}

static int put(const char *name, const char *text)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static void clean_dir(void)
{
	rm_rf(tmpdir);
	close(dirfd_);
	if (mkdir(tmpdir, 0700) < 0) {
		perror(tmpdir);
		exit(2);
	}
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ < 0) {
		perror(tmpdir);
		exit(2);
	}
}

/* ---- fileutil_write_atomic ---- */

static void test_write_atomic_creates(void)
{
	char buf[256];
	struct stat st;
	int dots;

	clean_dir();
	CHECK_EQ(fileutil_write_atomic(dirfd_, "state", "hello\n", 6, NULL), 0);
	CHECK_EQ(slurp("state", buf, sizeof(buf)), 6);
	CHECK_STR(buf, "hello\n");
	CHECK(fstatat(dirfd_, "state", &st, AT_SYMLINK_NOFOLLOW) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_size, 6);
	CHECK_EQ(count_entries(&dots), 1);
	CHECK_EQ(dots, 0);
}

static void test_write_atomic_replaces(void)
{
	char buf[256];
	int dots, oldfd;

	clean_dir();
	CHECK_EQ(put("state", "a much longer old content\n"), 0);
	oldfd = openat(dirfd_, "state", O_RDONLY | O_CLOEXEC);
	CHECK(oldfd >= 0);
	CHECK_EQ(fileutil_write_atomic(dirfd_, "state", "new\n", 4, NULL), 0);
	CHECK_EQ(slurp("state", buf, sizeof(buf)), 4);
	CHECK_STR(buf, "new\n");
	/* Replacement, not rewrite: an open reader still sees the old file. */
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(pread(oldfd, buf, sizeof(buf) - 1, 0), 26);
	close(oldfd);
	CHECK_STR(buf, "a much longer old content\n");
	/* Again, over its own output, and with empty data. */
	CHECK_EQ(fileutil_write_atomic(dirfd_, "state", "", 0, NULL), 0);
	CHECK_EQ(slurp("state", buf, sizeof(buf)), 0);
	CHECK_EQ(count_entries(&dots), 1);
	CHECK_EQ(dots, 0);
}

static void test_write_atomic_large(void)
{
	size_t len = 3 * 1024 * 1024 + 17;
	char *data = malloc(len), *back = NULL;
	size_t got = 0;
	int ret;

	CHECK(data != NULL);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 131 + (i >> 12));
	clean_dir();
	ret = fileutil_write_atomic(dirfd_, "big", data, len, NULL);
	if (ret == 0)
		ret = fileutil_read_all(dirfd_, "big", len, &back, &got);
	if (ret == 0 && (got != len || memcmp(data, back, len) != 0))
		ret = 1;
	free(data);
	free(back);
	CHECK_EQ(ret, 0);
}

static void test_write_atomic_bad_dirfd(void)
{
	int fd, dots;

	clean_dir();
	/* A closed descriptor. */
	fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(fileutil_write_atomic(fd, "state", "x", 1, NULL), -EBADF);
	/* A regular file's descriptor. */
	CHECK_EQ(put("plain", "p"), 0);
	fd = openat(dirfd_, "plain", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(fileutil_write_atomic(fd, "state", "x", 1, NULL), -ENOTDIR);
	close(fd);
	/* A name below a missing directory. */
	CHECK_EQ(fileutil_write_atomic(dirfd_, "nodir/state", "x", 1, NULL), -ENOENT);
	CHECK_EQ(count_entries(&dots), 1);
	CHECK_EQ(dots, 0);
}

/* renamed tells a failure before the rename (old content) from a failed
 * flush of the directory after it (new content, maybe not durable). An
 * O_PATH descriptor serves openat and renameat but fails fsync. */
static void test_write_atomic_renamed(void)
{
	char buf[256];
	bool renamed = true;
	int fd;

	clean_dir();
	CHECK_EQ(fileutil_write_atomic(dirfd_, "state", "old\n", 4, &renamed), 0);
	CHECK(renamed);
	CHECK_EQ(fileutil_write_atomic(dirfd_, "nodir/state", "x", 1, &renamed), -ENOENT);
	CHECK(!renamed);
	fd = open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	renamed = false;
	CHECK_EQ(fileutil_write_atomic(fd, "state", "new\n", 4, &renamed), -EBADF);
	CHECK(renamed);
	close(fd);
	CHECK_EQ(slurp("state", buf, sizeof(buf)), 4);
	CHECK_STR(buf, "new\n");
}

/* The rename fails (the name is a non-empty directory): the error comes
 * back and the temp file is removed. */
static void test_write_atomic_failure_cleans_temp(void)
{
	struct stat st;
	int ret, dots;

	clean_dir();
	CHECK(mkdirat(dirfd_, "sub", 0700) == 0);
	CHECK(mkdirat(dirfd_, "sub/inner", 0700) == 0);
	ret = fileutil_write_atomic(dirfd_, "sub", "x", 1, NULL);
	CHECK(ret == -EISDIR || ret == -ENOTEMPTY || ret == -EEXIST);
	CHECK(fstatat(dirfd_, "sub", &st, 0) == 0 && S_ISDIR(st.st_mode));
	CHECK_EQ(count_entries(&dots), 1);
	CHECK_EQ(dots, 0);
}

static void test_write_atomic_name_too_long(void)
{
	char name[NAME_MAX + 1];
	int dots;

	clean_dir();
	memset(name, 'n', NAME_MAX - 4);
	name[NAME_MAX - 4] = '\0';
	CHECK_EQ(fileutil_write_atomic(dirfd_, name, "x", 1, NULL), -ENAMETOOLONG);
	CHECK_EQ(count_entries(&dots), 0);
}

/* Concurrent writers of one name: every read sees one whole version. */
#define NWRITERS 4
#define VLEN 65536

static volatile int writers_done;

static void *atomic_writer(void *arg)
{
	char *data = malloc(VLEN);
	long id = (long)arg;
	long fails = 0;

	if (data == NULL)
		return (void *)1L;
	memset(data, 'A' + (int)id, VLEN);
	for (int i = 0; i < 40; i++)
		if (fileutil_write_atomic(dirfd_, "shared", data, VLEN, NULL) != 0)
			fails++;
	free(data);
	return (void *)fails;
}

static void test_write_atomic_concurrent(void)
{
	pthread_t th[NWRITERS];
	long torn = 0, reads = 0, fails = 0;
	char *data = malloc(VLEN);
	int dots;

	CHECK(data != NULL);
	memset(data, 'z', VLEN);
	clean_dir();
	if (fileutil_write_atomic(dirfd_, "shared", data, VLEN, NULL) != 0)
		fails++;
	free(data);
	CHECK_EQ(fails, 0);
	for (long i = 0; i < NWRITERS; i++)
		pthread_create(&th[i], NULL, atomic_writer, (void *)i);
	for (int k = 0; k < 200; k++) {
		char *back = NULL;
		size_t len = 0;

		if (fileutil_read_all(dirfd_, "shared", VLEN, &back, &len) != 0) {
			torn++;
			continue;
		}
		reads++;
		if (len != VLEN)
			torn++;
		else
			for (size_t j = 1; j < len; j++)
				if (back[j] != back[0]) {
					torn++;
					break;
				}
		free(back);
	}
	for (int i = 0; i < NWRITERS; i++) {
		void *r;

		pthread_join(th[i], &r);
		fails += (long)r;
	}
	CHECK_EQ(fails, 0);
	CHECK_EQ(torn, 0);
	CHECK(reads > 0);
	CHECK_EQ(count_entries(&dots), 1);
	CHECK_EQ(dots, 0);
}

/* ---- fileutil_read_all ---- */

static void test_read_all_reads_back(void)
{
	char *data = NULL;
	size_t len = 99;

	clean_dir();
	CHECK_EQ(put("f", "abc\ndef"), 0);
	CHECK_EQ(fileutil_read_all(dirfd_, "f", 4096, &data, &len), 0);
	CHECK(data != NULL);
	CHECK_EQ(len, 7);
	CHECK_EQ(data[7], '\0');
	CHECK_STR(data, "abc\ndef");
	free(data);

	/* Exactly max bytes is allowed. */
	data = NULL;
	CHECK_EQ(fileutil_read_all(dirfd_, "f", 7, &data, &len), 0);
	CHECK_EQ(len, 7);
	CHECK_STR(data, "abc\ndef");
	free(data);

	/* An empty file is an empty string. */
	CHECK_EQ(put("empty", ""), 0);
	data = NULL;
	len = 99;
	CHECK_EQ(fileutil_read_all(dirfd_, "empty", 16, &data, &len), 0);
	CHECK(data != NULL);
	CHECK_EQ(len, 0);
	CHECK_STR(data, "");
	free(data);
}

static void test_read_all_too_big(void)
{
	char *data = (char *)"sentinel";
	size_t len = 12345;

	clean_dir();
	CHECK_EQ(put("f", "abc\ndef"), 0);
	CHECK_EQ(fileutil_read_all(dirfd_, "f", 6, &data, &len), -EFBIG);
	CHECK_STR(data, "sentinel");
	CHECK_EQ(len, 12345);
	CHECK_EQ(fileutil_read_all(dirfd_, "f", 0, &data, &len), -EFBIG);
}

static void test_read_all_missing(void)
{
	char *data = NULL;
	size_t len = 0;

	clean_dir();
	CHECK_EQ(fileutil_read_all(dirfd_, "nope", 100, &data, &len), -ENOENT);
	CHECK(data == NULL);
}

static void test_read_all_directory(void)
{
	char *data = NULL;
	size_t len = 0;

	clean_dir();
	CHECK(mkdirat(dirfd_, "d", 0700) == 0);
	CHECK_EQ(fileutil_read_all(dirfd_, "d", 100, &data, &len), -EINVAL);
	CHECK(data == NULL);
}

/* A FIFO planted in the state dir is refused at once, not waited on for a
 * writer: the mount must not hang. */
static void test_read_all_fifo(void)
{
	char *data = NULL;
	size_t len = 0;
	int st;
	pid_t pid;

	clean_dir();
	CHECK(mkfifoat(dirfd_, "p", 0600) == 0);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		alarm(3);
		_exit(fileutil_read_all(dirfd_, "p", 100, &data, &len) == -EINVAL ? 0 : 1);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_read_all_symlink_not_followed(void)
{
	char *data = NULL;
	size_t len = 0;
	int ret;

	clean_dir();
	CHECK_EQ(put("target", "secret"), 0);
	CHECK(symlinkat("target", dirfd_, "link") == 0);
	ret = fileutil_read_all(dirfd_, "link", 100, &data, &len);
	free(data);
	CHECK_EQ(ret, -ELOOP);
}

static void test_read_all_bad_dirfd(void)
{
	char *data = NULL;
	size_t len = 0;

	CHECK_EQ(fileutil_read_all(-1, "f", 100, &data, &len), -EBADF);
	CHECK(data == NULL);
}

/* ---- fileutil_mkdirs ---- */

static int is_dir_mode(const char *path, unsigned mode)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return 0;
	return S_ISDIR(st.st_mode) && (st.st_mode & 07777) == mode;
}

static void test_mkdirs_nested(void)
{
	char p[256];
	mode_t old = umask(022);

	clean_dir();
	snprintf(p, sizeof(p), "%s/a/b/c/d", tmpdir);
	CHECK_EQ(fileutil_mkdirs(p, 0750), 0);
	umask(old);
	CHECK(is_dir_mode(p, 0750));
	snprintf(p, sizeof(p), "%s/a/b", tmpdir);
	CHECK(is_dir_mode(p, 0750));
	snprintf(p, sizeof(p), "%s/a", tmpdir);
	CHECK(is_dir_mode(p, 0750));
	/* Existing parts keep their mode. */
	CHECK(is_dir_mode(tmpdir, 0700));
}

static void test_mkdirs_existing_ok(void)
{
	char p[256];

	clean_dir();
	CHECK_EQ(fileutil_mkdirs(tmpdir, 0700), 0);
	CHECK_EQ(fileutil_mkdirs("/", 0700), 0);
	snprintf(p, sizeof(p), "%s/x/y", tmpdir);
	CHECK_EQ(fileutil_mkdirs(p, 0700), 0);
	CHECK_EQ(fileutil_mkdirs(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/x/y/", tmpdir);
	CHECK_EQ(fileutil_mkdirs(p, 0700), 0);
	snprintf(p, sizeof(p), "%s//x//z/", tmpdir);
	CHECK_EQ(fileutil_mkdirs(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/x/z", tmpdir);
	CHECK(is_dir_mode(p, 0700));
}

static void test_mkdirs_relative(void)
{
	char cwd[PATH_MAX];
	int ret;

	clean_dir();
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK(chdir(tmpdir) == 0);
	ret = fileutil_mkdirs("r1/r2", 0700);
	if (chdir(cwd) != 0)
		exit(2);
	CHECK_EQ(ret, 0);
	CHECK(faccessat(dirfd_, "r1/r2", F_OK, 0) == 0);
}

static void test_mkdirs_through_file(void)
{
	char p[256];

	clean_dir();
	CHECK_EQ(put("file", "f"), 0);
	snprintf(p, sizeof(p), "%s/file/sub", tmpdir);
	CHECK_EQ(fileutil_mkdirs(p, 0700), -ENOTDIR);
	snprintf(p, sizeof(p), "%s/file/sub/deeper", tmpdir);
	CHECK_EQ(fileutil_mkdirs(p, 0700), -ENOTDIR);
}

/* Like mkdir -p: a regular file where the directory should be is an error,
 * not success. */
static void test_mkdirs_existing_file_fails(void)
{
	char p[256];
	int ret;

	clean_dir();
	CHECK_EQ(put("file", "f"), 0);
	snprintf(p, sizeof(p), "%s/file", tmpdir);
	ret = fileutil_mkdirs(p, 0700);
	if (ret >= 0)
		printf("# fileutil_mkdirs(\"DIR/file\") on a regular file returned %d\n", ret);
	CHECK(ret == -EEXIST || ret == -ENOTDIR);
}

static void test_mkdirs_bad_paths(void)
{
	char *p = malloc(PATH_MAX + 10);

	CHECK(p != NULL);
	memset(p, 'a', PATH_MAX + 9);
	p[0] = '/';
	p[PATH_MAX + 9] = '\0';
	if (fileutil_mkdirs(p, 0700) != -ENAMETOOLONG) {
		free(p);
		CHECK(!"PATH_MAX+9 long path not -ENAMETOOLONG");
	}
	free(p);
	CHECK(fileutil_mkdirs("", 0700) < 0);
}

/* ---- fileutil_path_within ---- */

static void test_path_within(void)
{
	CHECK(fileutil_path_within("/a/b", "/a/b"));
	CHECK(fileutil_path_within("/a/b/c", "/a/b"));
	CHECK(fileutil_path_within("/a/b/c/d/e", "/a/b"));
	CHECK(!fileutil_path_within("/a/bc", "/a/b"));
	CHECK(!fileutil_path_within("/a/bc/d", "/a/b"));
	CHECK(!fileutil_path_within("/a", "/a/b"));
	CHECK(!fileutil_path_within("/a/", "/a/b"));
	CHECK(!fileutil_path_within("/x/b", "/a/b"));
	CHECK(!fileutil_path_within("/", "/a"));
	CHECK(fileutil_path_within("/", "/"));
	CHECK(fileutil_path_within("/a", "/"));
	CHECK(fileutil_path_within("/a/b/c", "/"));
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
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ < 0) {
		perror(tmpdir);
		return 2;
	}

	UNIT_RUN(test_write_atomic_creates);
	UNIT_RUN(test_write_atomic_replaces);
	UNIT_RUN(test_write_atomic_large);
	UNIT_RUN(test_write_atomic_bad_dirfd);
	UNIT_RUN(test_write_atomic_renamed);
	UNIT_RUN(test_write_atomic_failure_cleans_temp);
	UNIT_RUN(test_write_atomic_name_too_long);
	UNIT_RUN(test_write_atomic_concurrent);
	UNIT_RUN(test_read_all_reads_back);
	UNIT_RUN(test_read_all_too_big);
	UNIT_RUN(test_read_all_missing);
	UNIT_RUN(test_read_all_directory);
	UNIT_RUN(test_read_all_fifo);
	UNIT_RUN(test_read_all_symlink_not_followed);
	UNIT_RUN(test_read_all_bad_dirfd);
	UNIT_RUN(test_mkdirs_nested);
	UNIT_RUN(test_mkdirs_existing_ok);
	UNIT_RUN(test_mkdirs_relative);
	UNIT_RUN(test_mkdirs_through_file);
	UNIT_RUN(test_mkdirs_existing_file_fails);
	UNIT_RUN(test_mkdirs_bad_paths);
	UNIT_RUN(test_path_within);

	close(dirfd_);
	rm_rf(tmpdir);
	return UNIT_DONE();
}
