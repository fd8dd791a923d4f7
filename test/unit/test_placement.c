/* Unit tests of the placement table: set/get/remove, the save/load round
 * trip with names that need escaping, and load's refusal of every kind of
 * damaged file without touching the table it was given. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "relocfs/placement.h"
#include "unit.h"

static char dir[64];
static int dirfd_ = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/relocfs-unit-placement-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
	if (dirfd_ < 0)
		abort();
}

static void teardown(void)
{
	char cmd[128];

	close(dirfd_);
	dirfd_ = -1;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

/* Writes dir/placement as exactly len bytes of data. */
static int write_raw(const char *data, size_t len)
{
	int fd = openat(dirfd_, PLACEMENT_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* Writes body followed by a checksum line that is correct for it, so that
 * the load gets past the checksum and judges the content. */
static int write_sealed(const char *body)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), "%sxxh3 %016llx\n", body,
			 (unsigned long long)XXH3_64bits(body, strlen(body)));

	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENOSPC;
	return write_raw(buf, (size_t)n);
}

static int read_raw(char *buf, size_t cap, size_t *len)
{
	int fd = openat(dirfd_, PLACEMENT_FILE, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap);
	close(fd);
	if (n < 0)
		return -EIO;
	*len = (size_t)n;
	return 0;
}

/* Entries in dir besides . and ..; *dotfiles counts names starting with '.'
 * (fileutil's temp files). */
static int count_entries(int *dotfiles)
{
	int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	int n = 0;

	*dotfiles = 0;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
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

static void test_set_get_remove(void)
{
	struct placement p;

	placement_init(&p);
	CHECK_EQ(p.n, 0);
	CHECK(placement_get(&p, "vm1") == NULL);
	CHECK_EQ(placement_set(&p, "vm1", "/ds/a"), 0);
	CHECK_EQ(placement_set(&p, "vm2", "/ds/b"), 0);
	CHECK_EQ(p.n, 2);
	CHECK_STR(placement_get(&p, "vm1"), "/ds/a");
	CHECK_STR(placement_get(&p, "vm2"), "/ds/b");
	CHECK(placement_get(&p, "vm") == NULL);
	CHECK(placement_get(&p, "vm12") == NULL);
	/* Setting again replaces, it does not add. */
	CHECK_EQ(placement_set(&p, "vm1", "/ds/c"), 0);
	CHECK_EQ(p.n, 2);
	CHECK_STR(placement_get(&p, "vm1"), "/ds/c");
	/* NULL removes; removing what is not there is no error. */
	CHECK_EQ(placement_set(&p, "vm1", NULL), 0);
	CHECK_EQ(p.n, 1);
	CHECK(placement_get(&p, "vm1") == NULL);
	CHECK_STR(placement_get(&p, "vm2"), "/ds/b");
	CHECK_EQ(placement_set(&p, "nope", NULL), 0);
	CHECK_EQ(p.n, 1);
	CHECK_EQ(placement_set(&p, "vm2", NULL), 0);
	CHECK_EQ(p.n, 0);
	placement_free(&p);
	CHECK(p.v == NULL);
	CHECK_EQ(p.n, 0);
}

static const char *const odd_names[][2] = {
	{ "tab\there", "/data/ds 1" },
	{ "new\nline", "/data/t\tab" },
	{ "pct%41", "/x%y%%" },
	{ "back\\slash", "/nl\nds" },
	{ "with spaces ", "/data/with spaces/" },
	{ "%", "/%" },
	{ "\\n literal", "/b\\\\" },
	{ "plain", "/" },
	{ "\t\n%\\ all", "/\t\n%\\" },
};
#define N_ODD (sizeof(odd_names) / sizeof(odd_names[0]))

static void test_save_load_roundtrip(void)
{
	struct placement p, q;
	char err[256] = "", raw[4096];
	size_t len = 0, lines = 0, tabs = 0;

	setup();
	placement_init(&p);
	placement_init(&q);
	for (size_t i = 0; i < N_ODD; i++)
		CHECK_EQ(placement_set(&p, odd_names[i][0], odd_names[i][1]), 0);
	CHECK_EQ(placement_save(dirfd_, &p, NULL), 0);
	/* The loaded table replaces what q held. */
	CHECK_EQ(placement_set(&q, "stale", "/old"), 0);
	CHECK_EQ(placement_load(dirfd_, &q, err, sizeof(err)), 0);
	CHECK_EQ(q.n, N_ODD);
	CHECK(placement_get(&q, "stale") == NULL);
	for (size_t i = 0; i < N_ODD; i++)
		CHECK_STR(placement_get(&q, odd_names[i][0]), odd_names[i][1]);
	/* The encoding keeps one entry per line and one tab per entry. */
	CHECK_EQ(read_raw(raw, sizeof(raw), &len), 0);
	for (size_t i = 0; i < len; i++) {
		lines += raw[i] == '\n';
		tabs += raw[i] == '\t';
	}
	CHECK_EQ(lines, N_ODD + 2);
	CHECK_EQ(tabs, N_ODD);
	CHECK(memcmp(raw, "relocfs-placement 1\n", 20) == 0);
	placement_free(&p);
	placement_free(&q);
	teardown();
}

static void test_missing_file_is_empty(void)
{
	struct placement p;
	char err[256] = "";

	setup();
	placement_init(&p);
	CHECK_EQ(placement_set(&p, "vm1", "/ds/a"), 0);
	CHECK_EQ(placement_load(dirfd_, &p, err, sizeof(err)), 0);
	CHECK_EQ(p.n, 0);
	CHECK(placement_get(&p, "vm1") == NULL);
	placement_free(&p);
	teardown();
}

/* Every home back on the source: the table is saved empty and must load. */
static void test_empty_table_roundtrip(void)
{
	struct placement p, q;
	char err[256] = "";

	setup();
	placement_init(&p);
	placement_init(&q);
	CHECK_EQ(placement_set(&p, "vm1", "/ds/a"), 0);
	CHECK_EQ(placement_save(dirfd_, &p, NULL), 0);
	CHECK_EQ(placement_set(&p, "vm1", NULL), 0);
	CHECK_EQ(placement_save(dirfd_, &p, NULL), 0);
	CHECK_EQ(placement_set(&q, "stale", "/old"), 0);
	{
		int ret = placement_load(dirfd_, &q, err, sizeof(err));

		if (ret != 0)
			printf("# load of an empty table: %d (%s)\n", ret, err);
		placement_free(&p);
		if (ret != 0)
			placement_free(&q);
		CHECK_EQ(ret, 0);
	}
	CHECK_EQ(q.n, 0);
	placement_free(&q);
	teardown();
}

/* Loads the current file into a table holding one known entry and checks
 * that it is refused with -EBADMSG, err naming want, the table untouched. */
static int expect_bad(const char *want)
{
	struct placement p;
	char err[256] = "";
	int ret, ok;

	placement_init(&p);
	if (placement_set(&p, "keep", "/orig") < 0)
		return 0;
	ret = placement_load(dirfd_, &p, err, sizeof(err));
	ok = ret == -EBADMSG && err[0] != '\0' && strstr(err, want) != NULL &&
	     p.n == 1 && placement_get(&p, "keep") != NULL &&
	     strcmp(placement_get(&p, "keep"), "/orig") == 0;
	if (!ok)
		printf("# load returned %d, err \"%s\" (want -EBADMSG, \"%s\"), table n=%zu\n",
		       ret, err, want, p.n);
	placement_free(&p);
	return ok;
}

static void test_load_rejects_wrong_magic(void)
{
	setup();
	CHECK_EQ(write_sealed("relocfs-placement 2\nvm1\t/ds/a\n"), 0);
	CHECK(expect_bad("not a relocfs placement file"));
	CHECK_EQ(write_sealed("something else entirely\n"), 0);
	CHECK(expect_bad("not a relocfs placement file"));
	CHECK_EQ(write_raw("relocfs", 7), 0);
	CHECK(expect_bad("not a relocfs placement file"));
	CHECK_EQ(write_raw("", 0), 0);
	CHECK(expect_bad("not a relocfs placement file"));
	teardown();
}

static void test_load_rejects_truncated(void)
{
	struct placement p;
	char raw[4096];
	size_t len = 0;
	const char *sum;

	setup();
	placement_init(&p);
	CHECK_EQ(placement_set(&p, "vm1", "/ds/a"), 0);
	CHECK_EQ(placement_set(&p, "vm2", "/ds/b"), 0);
	CHECK_EQ(placement_save(dirfd_, &p, NULL), 0);
	placement_free(&p);
	CHECK_EQ(read_raw(raw, sizeof(raw) - 1, &len), 0);
	raw[len] = '\0';
	sum = strstr(raw, "xxh3 ");
	CHECK(sum != NULL);
	/* Cut inside the checksum line, at several points. */
	for (size_t cut = (size_t)(sum - raw) + 1; cut < len; cut += 4) {
		CHECK_EQ(write_raw(raw, cut), 0);
		CHECK(expect_bad("truncated"));
	}
	/* Cut right before the checksum line: the last entry is no checksum. */
	CHECK_EQ(write_raw(raw, (size_t)(sum - raw)), 0);
	CHECK(expect_bad("truncated"));
	/* Cut inside an entry line. */
	CHECK_EQ(write_raw(raw, 25), 0);
	CHECK(expect_bad("truncated"));
	teardown();
}

static void test_load_rejects_flipped_byte(void)
{
	struct placement p;
	char raw[4096];
	size_t len = 0, sumoff;

	setup();
	placement_init(&p);
	CHECK_EQ(placement_set(&p, "vm1", "/ds/a"), 0);
	CHECK_EQ(placement_set(&p, "vm2", "/ds/b"), 0);
	CHECK_EQ(placement_save(dirfd_, &p, NULL), 0);
	placement_free(&p);
	CHECK_EQ(read_raw(raw, sizeof(raw) - 1, &len), 0);
	raw[len] = '\0';
	CHECK(strstr(raw, "xxh3 ") != NULL);
	sumoff = (size_t)(strstr(raw, "xxh3 ") - raw);
	/* One bit of one byte of an entry: still a well-formed entry. */
	for (size_t i = 20; i < sumoff - 1; i++) {
		if (raw[i] == '\t' || raw[i] == '\n' || raw[i] == '/')
			continue;
		raw[i] ^= 0x01;
		CHECK_EQ(write_raw(raw, len), 0);
		CHECK(expect_bad("checksum mismatch"));
		raw[i] ^= 0x01;
	}
	/* A flip in the checksum digits themselves. */
	raw[sumoff + 7] = raw[sumoff + 7] == '0' ? '1' : '0';
	CHECK_EQ(write_raw(raw, len), 0);
	CHECK(expect_bad("checksum mismatch"));
	teardown();
}

static void test_load_rejects_bad_escape(void)
{
	setup();
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm%zz1\t/ds/a\n"), 0);
	CHECK(expect_bad("line 2"));
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm1\t/ds/a%\n"), 0);
	CHECK(expect_bad("line 2"));
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm1\t/ds/a%4\n"), 0);
	CHECK(expect_bad("line 2"));
	/* A NUL would cut the name short. */
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm1\t/ds/a\nvm%002\t/ds/b\n"), 0);
	CHECK(expect_bad("line 3"));
	teardown();
}

/* An escape is '%' and exactly two hex digits; what sscanf("%2x") would
 * also take (one digit, a sign, a space) is not an escape. */
static void test_load_rejects_half_hex_escape(void)
{
	static const char *const bodies[] = {
		"relocfs-placement 1\nvm%4g\t/ds/a\n",
		"relocfs-placement 1\nvm%-1\t/ds/a\n",
		"relocfs-placement 1\nvm%+f\t/ds/a\n",
		"relocfs-placement 1\nvm% 9\t/ds/a\n",
	};

	int accepted = 0;

	setup();
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		CHECK_EQ(write_sealed(bodies[i]), 0);
		if (!expect_bad("line 2")) {
			printf("# accepted as an escape: \"%.*s\"\n", 3, strchr(bodies[i] + 20, '%'));
			accepted++;
		}
	}
	CHECK_EQ(accepted, 0);
	teardown();
}

static void test_load_rejects_duplicate_name(void)
{
	setup();
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm1\t/ds/a\nvm2\t/ds/b\nvm1\t/ds/c\n"), 0);
	CHECK(expect_bad("line 4"));
	/* The same name, once escaped and once not. */
	CHECK_EQ(write_sealed("relocfs-placement 1\na%25b\t/ds/a\na%b\t/ds/b\n"), 0);
	CHECK(expect_bad("line 3"));
	teardown();
}

static void test_load_rejects_relative_datastore(void)
{
	setup();
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm1\tds/a\n"), 0);
	CHECK(expect_bad("line 2"));
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm1\t/ds/a\nvm2\t\n"), 0);
	CHECK(expect_bad("line 3"));
	teardown();
}

static void test_load_rejects_slash_in_name(void)
{
	setup();
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm/1\t/ds/a\n"), 0);
	CHECK(expect_bad("line 2"));
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm%2f1\t/ds/a\n"), 0);
	CHECK(expect_bad("line 2"));
	/* An empty name, and a line without a tab. */
	CHECK_EQ(write_sealed("relocfs-placement 1\n\t/ds/a\n"), 0);
	CHECK(expect_bad("line 2"));
	CHECK_EQ(write_sealed("relocfs-placement 1\nvm1 /ds/a\n"), 0);
	CHECK(expect_bad("line 2"));
	teardown();
}

static void test_save_replaces_atomically(void)
{
	struct placement p, q;
	struct stat st1, st2;
	char err[256] = "", oldbuf[4096], newbuf[4096];
	size_t oldlen = 0;
	ssize_t n;
	int fd, dots = 0;

	setup();
	placement_init(&p);
	placement_init(&q);
	CHECK_EQ(placement_set(&p, "vm1", "/ds/a"), 0);
	CHECK_EQ(placement_save(dirfd_, &p, NULL), 0);
	CHECK_EQ(read_raw(oldbuf, sizeof(oldbuf), &oldlen), 0);
	fd = openat(dirfd_, PLACEMENT_FILE, O_RDONLY);
	CHECK(fd >= 0);
	CHECK_EQ(fstat(fd, &st1), 0);
	CHECK_EQ(placement_set(&p, "vm2", "/ds/b"), 0);
	CHECK_EQ(placement_save(dirfd_, &p, NULL), 0);
	/* A new inode was renamed over the name: a reader of the old one
	 * still sees the whole old table. */
	CHECK_EQ(fstatat(dirfd_, PLACEMENT_FILE, &st2, 0), 0);
	CHECK(st1.st_ino != st2.st_ino);
	CHECK_EQ(st2.st_mode & 0777, 0600);
	n = pread(fd, newbuf, sizeof(newbuf), 0);
	close(fd);
	CHECK_EQ(n, (ssize_t)oldlen);
	CHECK(memcmp(newbuf, oldbuf, oldlen) == 0);
	CHECK_EQ(count_entries(&dots), 1);
	CHECK_EQ(dots, 0);
	CHECK_EQ(placement_load(dirfd_, &q, err, sizeof(err)), 0);
	CHECK_EQ(q.n, 2);
	CHECK_STR(placement_get(&q, "vm2"), "/ds/b");
	placement_free(&p);
	placement_free(&q);
	teardown();
}

/* A failed check returns early: clean up what the test left. */
#define RUN(fn)                                   \
	do {                                      \
		UNIT_RUN(fn);                     \
		if (dirfd_ >= 0)                  \
			teardown();               \
	} while (0)

int main(void)
{
	RUN(test_set_get_remove);
	RUN(test_save_load_roundtrip);
	RUN(test_missing_file_is_empty);
	RUN(test_empty_table_roundtrip);
	RUN(test_load_rejects_wrong_magic);
	RUN(test_load_rejects_truncated);
	RUN(test_load_rejects_flipped_byte);
	RUN(test_load_rejects_bad_escape);
	RUN(test_load_rejects_half_hex_escape);
	RUN(test_load_rejects_duplicate_name);
	RUN(test_load_rejects_relative_datastore);
	RUN(test_load_rejects_slash_in_name);
	RUN(test_save_replaces_atomically);
	return UNIT_DONE();
}
