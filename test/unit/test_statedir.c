/* test_statedir: BASE/<id> creation, the "source" record and the lock. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <xxhash.h>

#include "relocfs/statedir.h"
#include "unit.h"

static char tmpdir[64];
static char base[128];

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
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		perror(path);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void expected_path(char *buf, size_t size, const char *source)
{
	snprintf(buf, size, "%s/%016llx", base,
		 (unsigned long long)XXH3_64bits(source, strlen(source)));
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	return (int)n;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static void test_open_creates(void)
{
	struct statedir sd;
	char want[256], file[PATH_MAX + 16], buf[256];
	const char *slash;
	struct stat st;
	int fds = count_fds();

	rm_rf(base);
	CHECK_EQ(statedir_open(&sd, base, "/datastores/ds1"), 0);
	expected_path(want, sizeof(want), "/datastores/ds1");
	CHECK_STR(sd.path, want);
	slash = strrchr(sd.path, '/');
	CHECK(slash != NULL && strlen(slash + 1) == 16);
	CHECK(strspn(slash + 1, "0123456789abcdef") == 16);
	CHECK(sd.dirfd >= 0);
	CHECK(sd.lockfd >= 0);
	CHECK(stat(sd.path, &st) == 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0700);
	CHECK(fstat(sd.dirfd, &st) == 0);
	CHECK(S_ISDIR(st.st_mode));
	snprintf(file, sizeof(file), "%s/source", sd.path);
	CHECK_EQ(read_file(file, buf, sizeof(buf)), (int)strlen("/datastores/ds1\n"));
	CHECK_STR(buf, "/datastores/ds1\n");
	snprintf(file, sizeof(file), "%s/lock", sd.path);
	CHECK(stat(file, &st) == 0 && S_ISREG(st.st_mode));
	/* The missing base was created too. */
	CHECK(stat(base, &st) == 0 && S_ISDIR(st.st_mode));
	statedir_close(&sd);
	CHECK_EQ(sd.dirfd, -1);
	CHECK_EQ(sd.lockfd, -1);
	/* Closing twice is harmless. */
	statedir_close(&sd);
	CHECK_EQ(count_fds(), fds);
}

static void test_second_open_busy(void)
{
	struct statedir a, b;
	int fds = count_fds();
	int ret;

	rm_rf(base);
	CHECK_EQ(statedir_open(&a, base, "/ds/busy"), 0);
	ret = statedir_open(&b, base, "/ds/busy");
	if (ret == 0)
		statedir_close(&b);
	CHECK_EQ(ret, -EBUSY);
	CHECK_EQ(b.dirfd, -1);
	CHECK_EQ(b.lockfd, -1);
	statedir_close(&a);
	CHECK_EQ(count_fds(), fds);

	/* Released: opens again, with the "source" already there. */
	CHECK_EQ(statedir_open(&b, base, "/ds/busy"), 0);
	statedir_close(&b);
	CHECK_EQ(count_fds(), fds);
}

/* The lock holds against another process and is released when its holder
 * dies without closing. */
static void test_lock_across_processes(void)
{
	struct statedir sd;
	int status, p[2];
	pid_t pid;
	char c;

	rm_rf(base);
	CHECK_EQ(statedir_open(&sd, base, "/ds/procs"), 0);
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct statedir other;

		_exit(statedir_open(&other, base, "/ds/procs") == -EBUSY ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	statedir_close(&sd);

	/* A child takes the lock and dies holding it. */
	CHECK(pipe(p) == 0);
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct statedir other;
		int ret = statedir_open(&other, base, "/ds/procs");

		c = ret == 0 ? 'y' : 'n';
		if (write(p[1], &c, 1) != 1)
			_exit(3);
		pause();
		_exit(0);
	}
	close(p[1]);
	c = 0;
	CHECK(read(p[0], &c, 1) == 1);
	close(p[0]);
	if (c == 'y') {
		struct statedir again;
		int ret = statedir_open(&again, base, "/ds/procs");

		if (ret == 0)
			statedir_close(&again);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		CHECK_EQ(ret, -EBUSY);
	} else {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		CHECK(c == 'y');
	}
	CHECK_EQ(statedir_open(&sd, base, "/ds/procs"), 0);
	statedir_close(&sd);
}

static void test_other_source_exdev(void)
{
	struct statedir sd;
	char dir[256], file[300], buf[256];
	int fds = count_fds();
	int ret;

	rm_rf(base);
	expected_path(dir, sizeof(dir), "/ds/mine");
	CHECK(mkdir(base, 0700) == 0);
	CHECK(mkdir(dir, 0700) == 0);
	snprintf(file, sizeof(file), "%s/source", dir);
	CHECK_EQ(write_file(file, "/ds/someone-else\n"), 0);
	ret = statedir_open(&sd, base, "/ds/mine");
	if (ret == 0)
		statedir_close(&sd);
	CHECK_EQ(ret, -EXDEV);
	CHECK_EQ(sd.dirfd, -1);
	CHECK_EQ(sd.lockfd, -1);
	CHECK_EQ(count_fds(), fds);
	/* The record is left alone. */
	CHECK(read_file(file, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "/ds/someone-else\n");

	/* A prefix of the source, or the source without its newline, is not
	 * the source either. */
	CHECK_EQ(write_file(file, "/ds/mine"), 0);
	ret = statedir_open(&sd, base, "/ds/mine");
	if (ret == 0)
		statedir_close(&sd);
	CHECK_EQ(ret, -EXDEV);
	CHECK_EQ(write_file(file, ""), 0);
	ret = statedir_open(&sd, base, "/ds/mine");
	if (ret == 0)
		statedir_close(&sd);
	CHECK_EQ(ret, -EXDEV);
	CHECK_EQ(write_file(file, "/ds/mine\n/ds/mine\n"), 0);
	ret = statedir_open(&sd, base, "/ds/mine");
	if (ret == 0)
		statedir_close(&sd);
	CHECK_EQ(ret, -EXDEV);

	/* The right record opens. */
	CHECK_EQ(write_file(file, "/ds/mine\n"), 0);
	CHECK_EQ(statedir_open(&sd, base, "/ds/mine"), 0);
	statedir_close(&sd);
	CHECK_EQ(count_fds(), fds);
}

static void test_different_sources(void)
{
	struct statedir a, b;
	char wa[256], wb[256];
	int fds = count_fds();

	rm_rf(base);
	CHECK_EQ(statedir_open(&a, base, "/ds/one"), 0);
	CHECK_EQ(statedir_open(&b, base, "/ds/two"), 0);	/* both locked at once */
	expected_path(wa, sizeof(wa), "/ds/one");
	expected_path(wb, sizeof(wb), "/ds/two");
	CHECK_STR(a.path, wa);
	CHECK_STR(b.path, wb);
	CHECK(strcmp(a.path, b.path) != 0);
	statedir_close(&a);
	statedir_close(&b);
	CHECK_EQ(count_fds(), fds);

	/* A trailing slash is a different string, so a different id: callers
	 * must canonicalize. */
	CHECK_EQ(statedir_open(&a, base, "/ds/one/"), 0);
	CHECK(strcmp(a.path, wa) != 0);
	statedir_close(&a);
}

static void test_bad_base(void)
{
	struct statedir sd;
	char file[256], *longbase;
	int fds = count_fds();
	size_t n = PATH_MAX;

	rm_rf(base);
	CHECK(mkdir(base, 0700) == 0);
	snprintf(file, sizeof(file), "%s/plain", base);
	CHECK_EQ(write_file(file, "x"), 0);
	CHECK_EQ(statedir_open(&sd, file, "/ds/x"), -ENOTDIR);
	CHECK_EQ(sd.dirfd, -1);
	CHECK_EQ(sd.lockfd, -1);

	longbase = malloc(n);
	CHECK(longbase != NULL);
	memset(longbase, 'b', n - 10);
	longbase[0] = '/';
	longbase[n - 10] = '\0';
	if (statedir_open(&sd, longbase, "/ds/x") != -ENAMETOOLONG) {
		free(longbase);
		CHECK(!"long base not -ENAMETOOLONG");
	}
	free(longbase);
	CHECK_EQ(count_fds(), fds);
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
	snprintf(base, sizeof(base), "%s/state", tmpdir);
	if (mkdir(base, 0700) < 0) {
		perror(base);
		return 2;
	}
	snprintf(base, sizeof(base), "%s/state/base", tmpdir);

	UNIT_RUN(test_open_creates);
	UNIT_RUN(test_second_open_busy);
	UNIT_RUN(test_lock_across_processes);
	UNIT_RUN(test_other_source_exdev);
	UNIT_RUN(test_different_sources);
	UNIT_RUN(test_bad_base);

	rm_rf(tmpdir);
	return UNIT_DONE();
}
