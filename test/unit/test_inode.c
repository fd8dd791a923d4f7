/* test_inode: the (dev, ino) -> inode table, its lookups, forgets, growth
 * and the descriptors it owns. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "relocfs/inode.h"
#include "unit.h"

static struct inode *tget(struct inode_table *t, dev_t dev, ino_t ino, mode_t type, int fd)
{
	int created;

	struct inode_new init = { .type = type, .shown = (uint64_t)ino };

	return inode_table_get(t, dev, ino, fd, &init, &created);
}

static char tmpdir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
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

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static int fd_is_closed(int fd)
{
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

static int open_root(void)
{
	return open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* An O_PATH fd on a new file tmpdir/name, with its (dev, ino). */
static int make_file(const char *name, struct stat *st)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, st) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_init(void)
{
	struct inode_table t;
	struct stat st;
	int fds = count_fds();
	int root = open_root();

	CHECK(root >= 0);
	CHECK(fstat(root, &st) == 0);
	CHECK_EQ(inode_table_init(&t, root), 0);
	CHECK_EQ(t.root.fd, root);
	CHECK_EQ(t.root.dev, st.st_dev);
	CHECK_EQ(t.root.ino, st.st_ino);
	CHECK_EQ(t.root.type, S_IFDIR);
	CHECK_EQ(t.root.nlookup, 1);
	CHECK_EQ(inode_table_count(&t), 0);
	CHECK(t.nbuckets > 0 && (t.nbuckets & (t.nbuckets - 1)) == 0);
	inode_table_destroy(&t);
	CHECK(fd_is_closed(root));
	CHECK_EQ(t.root.fd, -1);
	CHECK_EQ(count_fds(), fds);
}

static void test_init_bad_fd(void)
{
	struct inode_table t;
	int fd = open_root();

	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(inode_table_init(&t, fd), -EBADF);
	CHECK_EQ(inode_table_init(&t, -1), -EBADF);
}

static void test_get_insert_and_find(void)
{
	struct inode_table t;
	struct inode *a, *b;
	struct stat st;
	int fds = count_fds();
	int fa, fb;

	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	fa = make_file("f1", &st);
	CHECK(fa >= 0);
	a = tget(&t, st.st_dev, st.st_ino, st.st_mode, fa);
	CHECK(a != NULL);
	CHECK(a != &t.root);
	CHECK_EQ(inode_table_count(&t), 1);
	CHECK_EQ(a->nlookup, 1);
	CHECK_EQ(a->fd, fa);
	CHECK_EQ(a->dev, st.st_dev);
	CHECK_EQ(a->ino, st.st_ino);
	CHECK_EQ(a->type, S_IFREG);	/* permission bits dropped */

	/* The same object again: same entry, one more lookup, new fd closed. */
	fb = open(tmpdir, O_PATH | O_CLOEXEC);	/* any fd will do */
	CHECK(fb >= 0);
	b = tget(&t, st.st_dev, st.st_ino, st.st_mode, fb);
	CHECK(b == a);
	CHECK_EQ(a->nlookup, 2);
	CHECK_EQ(inode_table_count(&t), 1);
	CHECK(fd_is_closed(fb));
	CHECK(fd_is_open(fa));
	CHECK_EQ(a->fd, fa);

	inode_table_destroy(&t);
	CHECK(fd_is_closed(fa));
	CHECK_EQ(count_fds(), fds);
}

/* Hard links are one backing object, so one entry. */
static void test_hard_links_share(void)
{
	struct inode_table t;
	struct inode *a, *b;
	struct stat st, st2;
	char p1[128], p2[128];
	int fa, fb;

	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	fa = make_file("linked", &st);
	CHECK(fa >= 0);
	snprintf(p1, sizeof(p1), "%s/linked", tmpdir);
	snprintf(p2, sizeof(p2), "%s/linked2", tmpdir);
	CHECK(link(p1, p2) == 0);
	fb = open(p2, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fb >= 0);
	CHECK(fstat(fb, &st2) == 0);
	a = tget(&t, st.st_dev, st.st_ino, st.st_mode, fa);
	b = tget(&t, st2.st_dev, st2.st_ino, st2.st_mode, fb);
	CHECK(a != NULL && a == b);
	CHECK_EQ(a->nlookup, 2);
	CHECK_EQ(inode_table_count(&t), 1);
	CHECK(fd_is_closed(fb));
	inode_table_destroy(&t);
	unlink(p2);
}

/* Same ino on another device is another object. */
static void test_dev_is_part_of_key(void)
{
	struct inode_table t;
	struct inode *a, *b;
	int fds = count_fds();

	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	a = tget(&t, makedev(250, 1), 77, S_IFREG, dup(t.root.fd));
	b = tget(&t, makedev(250, 2), 77, S_IFDIR, dup(t.root.fd));
	CHECK(a != NULL && b != NULL && a != b);
	CHECK_EQ(a->type, S_IFREG);
	CHECK_EQ(b->type, S_IFDIR);
	CHECK_EQ(inode_table_count(&t), 2);
	/* Same dev, ino of the root but another dev: not the root. */
	b = tget(&t, makedev(250, 3), t.root.ino, S_IFDIR, dup(t.root.fd));
	CHECK(b != NULL && b != &t.root);
	CHECK_EQ(inode_table_count(&t), 3);
	inode_table_destroy(&t);
	CHECK_EQ(count_fds(), fds);
}

static void test_get_root(void)
{
	struct inode_table t;
	struct inode *r;
	int fds = count_fds();
	int root = open_root(), fd;

	CHECK_EQ(inode_table_init(&t, root), 0);
	fd = open_root();
	CHECK(fd >= 0);
	r = tget(&t, t.root.dev, t.root.ino, S_IFDIR, fd);
	CHECK(r == &t.root);
	CHECK_EQ(t.root.nlookup, 2);
	CHECK_EQ(inode_table_count(&t), 0);
	CHECK(fd_is_closed(fd));
	CHECK_EQ(t.root.fd, root);
	CHECK(fd_is_open(root));

	/* Forgetting the root never frees it, even past zero. */
	inode_table_forget(&t, r, 1);
	CHECK_EQ(t.root.nlookup, 1);
	inode_table_forget(&t, r, 100);
	CHECK_EQ(t.root.nlookup, 0);
	CHECK(fd_is_open(root));
	CHECK_EQ(inode_table_count(&t), 0);
	r = tget(&t, t.root.dev, t.root.ino, S_IFDIR, dup(root));
	CHECK(r == &t.root);
	CHECK_EQ(t.root.nlookup, 1);

	inode_table_destroy(&t);
	CHECK(fd_is_closed(root));
	CHECK_EQ(count_fds(), fds);
}

static void test_forget_frees_at_zero(void)
{
	struct inode_table t;
	struct inode *a, *b;
	struct stat st;
	int fds = count_fds();
	int fa;

	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	fa = make_file("f2", &st);
	CHECK(fa >= 0);
	a = tget(&t, st.st_dev, st.st_ino, st.st_mode, fa);
	CHECK(a != NULL);
	CHECK(tget(&t, st.st_dev, st.st_ino, st.st_mode, dup(fa)) == a);
	CHECK(tget(&t, st.st_dev, st.st_ino, st.st_mode, dup(fa)) == a);
	CHECK_EQ(a->nlookup, 3);
	inode_table_forget(&t, a, 2);
	CHECK_EQ(a->nlookup, 1);
	CHECK_EQ(inode_table_count(&t), 1);
	CHECK(fd_is_open(fa));
	inode_table_forget(&t, a, 1);	/* a is freed now */
	CHECK_EQ(inode_table_count(&t), 0);
	CHECK(fd_is_closed(fa));

	/* Found again after a free: a fresh entry with the new fd. */
	fa = open(tmpdir, O_PATH | O_CLOEXEC);
	CHECK(fa >= 0);
	b = tget(&t, st.st_dev, st.st_ino, st.st_mode, fa);
	CHECK(b != NULL);
	CHECK_EQ(b->nlookup, 1);
	CHECK_EQ(b->fd, fa);
	CHECK_EQ(inode_table_count(&t), 1);
	inode_table_destroy(&t);
	CHECK_EQ(count_fds(), fds);
}

static void test_forget_clamps(void)
{
	struct inode_table t;
	struct inode *a, *b;
	int fds = count_fds();
	int fa;

	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	fa = dup(t.root.fd);
	a = tget(&t, makedev(251, 0), 5, S_IFREG, fa);
	b = tget(&t, makedev(251, 0), 6, S_IFREG, dup(t.root.fd));
	CHECK(a != NULL && b != NULL);
	CHECK(tget(&t, makedev(251, 0), 5, S_IFREG, dup(t.root.fd)) == a);
	CHECK_EQ(inode_table_count(&t), 2);
	inode_table_forget(&t, a, 10);	/* holds 2 */
	CHECK_EQ(inode_table_count(&t), 1);
	CHECK(fd_is_closed(fa));
	inode_table_forget(&t, b, UINT64_MAX);
	CHECK_EQ(inode_table_count(&t), 0);
	inode_table_destroy(&t);
	CHECK_EQ(count_fds(), fds);
}

/* Forget with n == 0 changes nothing. */
static void test_forget_zero(void)
{
	struct inode_table t;
	struct inode *a;

	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	a = tget(&t, makedev(252, 0), 9, S_IFREG, dup(t.root.fd));
	CHECK(a != NULL);
	inode_table_forget(&t, a, 0);
	CHECK_EQ(a->nlookup, 1);
	CHECK_EQ(inode_table_count(&t), 1);
	inode_table_destroy(&t);
}

#define NKEYS 5000

/* Sequential and strided inos, to exercise the hash. */
static ino_t key_ino(int i)
{
	return i % 2 ? (ino_t)(1000 + i) : (ino_t)i << 20;
}

static int raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		return -1;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

/* Many keys: the table grows, every entry is found again, forgets in any
 * order unlink the right ones, destroy closes all. */
static void test_many_keys(void)
{
	static struct inode *ent[NKEYS];
	static int efd[NKEYS];
	struct inode_table t;
	dev_t dev = makedev(253, 7);
	size_t start_buckets;
	int fds = count_fds();
	int i, bad = 0;

	CHECK(raise_nofile(NKEYS + 256) == 0);
	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	start_buckets = t.nbuckets;
	for (i = 0; i < NKEYS; i++) {
		efd[i] = dup(t.root.fd);
		if (efd[i] < 0)
			break;
		ent[i] = tget(&t, dev, key_ino(i), S_IFREG, efd[i]);
		if (ent[i] == NULL)
			break;
	}
	if (i < NKEYS)
		inode_table_destroy(&t);
	CHECK_EQ(i, NKEYS);
	CHECK_EQ(inode_table_count(&t), NKEYS);
	CHECK(t.nbuckets > start_buckets);
	CHECK(t.nbuckets >= NKEYS);
	CHECK((t.nbuckets & (t.nbuckets - 1)) == 0);
	CHECK_EQ(count_fds(), fds + NKEYS + 1);

	/* All found again, the extra fds closed. */
	for (i = 0; i < NKEYS; i++) {
		int fd = dup(t.root.fd);
		struct inode *e = tget(&t, dev, key_ino(i), S_IFREG, fd);

		if (e != ent[i] || e->nlookup != 2 || e->fd != efd[i] || !fd_is_closed(fd))
			bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(inode_table_count(&t), NKEYS);
	CHECK_EQ(count_fds(), fds + NKEYS + 1);

	/* Forget every third entry (in reverse order), the rest survive. */
	for (i = NKEYS - 1; i >= 0; i--)
		if (i % 3 == 0) {
			inode_table_forget(&t, ent[i], 2);
			ent[i] = NULL;
		}
	CHECK_EQ(inode_table_count(&t), NKEYS - (NKEYS + 2) / 3);
	CHECK_EQ(count_fds(), fds + 1 + NKEYS - (NKEYS + 2) / 3);
	for (i = 0; i < NKEYS; i++) {
		int fd = dup(t.root.fd);
		ino_t ino = key_ino(i);
		struct inode *e = tget(&t, dev, ino, S_IFREG, fd);

		if (e == NULL) {
			bad++;
			continue;
		}
		if (ent[i] != NULL) {
			if (e != ent[i] || e->nlookup != 3 || !fd_is_closed(fd))
				bad++;
		} else {
			/* Was freed: a new entry holding the new fd. */
			if (e->nlookup != 1 || e->fd != fd || e->ino != ino)
				bad++;
		}
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(inode_table_count(&t), NKEYS);

	inode_table_destroy(&t);
	CHECK_EQ(count_fds(), fds);
}

/* Real files, opened O_PATH: destroy closes each and the root. */
static void test_destroy_closes_all(void)
{
	struct inode_table t;
	int fds = count_fds();
	int fd[50];

	CHECK_EQ(inode_table_init(&t, open_root()), 0);
	for (int i = 0; i < 50; i++) {
		char name[32];
		struct stat st;

		snprintf(name, sizeof(name), "d%02d", i);
		fd[i] = make_file(name, &st);
		CHECK(fd[i] >= 0);
		CHECK(tget(&t, st.st_dev, st.st_ino, st.st_mode, fd[i]) != NULL);
	}
	CHECK_EQ(inode_table_count(&t), 50);
	CHECK_EQ(count_fds(), fds + 51);
	inode_table_destroy(&t);
	CHECK_EQ(count_fds(), fds);
	for (int i = 0; i < 50; i++)
		CHECK(fd_is_closed(fd[i]));
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/relocfs-unit-XXXXXX",
		 tmp && *tmp && strlen(tmp) < 30 ? tmp : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}

	UNIT_RUN(test_init);
	UNIT_RUN(test_init_bad_fd);
	UNIT_RUN(test_get_insert_and_find);
	UNIT_RUN(test_hard_links_share);
	UNIT_RUN(test_dev_is_part_of_key);
	UNIT_RUN(test_get_root);
	UNIT_RUN(test_forget_frees_at_zero);
	UNIT_RUN(test_forget_clamps);
	UNIT_RUN(test_forget_zero);
	UNIT_RUN(test_many_keys);
	UNIT_RUN(test_destroy_closes_all);

	if (nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		perror(tmpdir);
	return UNIT_DONE();
}
