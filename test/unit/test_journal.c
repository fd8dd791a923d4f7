/* Unit tests of the change journal: append/read, seal/drop, group sync,
 * and recovery's treatment of torn and damaged records. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <xxhash.h>

#include "relocfs/journal.h"
#include "unit.h"

static char dir[64];
static int dirfd_;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/relocfs-unit-journal-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
}

static const char *dir_path(const char *name)
{
	static char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void teardown(void)
{
	char cmd[128];

	close(dirfd_);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

struct seen {
	int n;
	uint64_t last_seq;
	uint64_t sum_len;
	int types[4];
};

static int count_rec(const struct journal_rec *rec, const void *data,
		     const struct journal_loc *loc, void *arg)
{
	struct seen *s = arg;

	(void)data;
	(void)loc;
	s->n++;
	s->last_seq = rec->seq;
	s->sum_len += rec->length;
	if (rec->type < 4)
		s->types[rec->type]++;
	return 0;
}

static void test_append_read_roundtrip(void)
{
	struct journal *j;
	struct journal_loc l1, l2;
	char a[4096], b[100], out[4096];

	setup();
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 7, 8192, sizeof(a), a, &l1), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 7, 0, sizeof(b), b, &l2), 0);
	CHECK_EQ(l1.gen, 1);
	CHECK(l2.off > l1.off);
	CHECK_EQ(journal_read(j, &l1, out, sizeof(a)), 0);
	CHECK(memcmp(out, a, sizeof(a)) == 0);
	CHECK_EQ(journal_read(j, &l2, out, sizeof(b)), 0);
	CHECK(memcmp(out, b, sizeof(b)) == 0);
	CHECK_EQ(journal_sync(j), 0);
	CHECK(journal_active_bytes(j) >= sizeof(a) + sizeof(b));
	journal_close(j);
	teardown();
}

static void test_scan_counts_every_type(void)
{
	struct journal *j;
	struct seen s = { 0 };
	uint64_t torn = 99;
	char a[512] = { 1 };

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 5), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, NULL), 0);
	CHECK_EQ(journal_append(j, JOURNAL_TRUNCATE, 1, 100, 0, NULL, NULL), 0);
	CHECK_EQ(journal_append(j, JOURNAL_ZERO, 1, 0, 4096, NULL, NULL), 0);
	journal_close(j);
	CHECK_EQ(journal_scan(dirfd_, 5, count_rec, &s, &torn), 3);
	CHECK_EQ(torn, 0);
	CHECK_EQ(s.types[JOURNAL_WRITE], 1);
	CHECK_EQ(s.types[JOURNAL_TRUNCATE], 1);
	CHECK_EQ(s.types[JOURNAL_ZERO], 1);
	CHECK_EQ(s.last_seq, 3);
	teardown();
}

static void test_scan_drops_torn_tail(void)
{
	struct journal *j;
	struct seen s = { 0 };
	uint64_t torn = 0;
	char a[1000] = { 2 };
	struct stat st;
	int fd;

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, (uint64_t)i * 1000, sizeof(a), a, NULL), 0);
	journal_close(j);
	fd = openat(dirfd_, "gen-00000001", O_RDWR);
	CHECK(fd >= 0);
	CHECK_EQ(fstat(fd, &st), 0);
	/* A crash in the middle of the third append. */
	CHECK_EQ(ftruncate(fd, st.st_size - 300), 0);
	close(fd);
	CHECK_EQ(journal_scan(dirfd_, 1, count_rec, &s, &torn), 2);
	CHECK(torn > 0 && torn < sizeof(a) + 64);
	teardown();
}

static void test_scan_stops_at_bit_flip(void)
{
	struct journal *j;
	struct seen s = { 0 };
	uint64_t torn = 0;
	struct journal_loc loc;
	char a[1000] = { 3 }, c = 0;
	int fd;

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, NULL), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, &loc), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, NULL), 0);
	journal_close(j);
	fd = openat(dirfd_, "gen-00000001", O_RDWR);
	CHECK(fd >= 0);
	CHECK_EQ(pread(fd, &c, 1, (off_t)loc.off + 10), 1);
	c ^= 0x10;
	CHECK_EQ(pwrite(fd, &c, 1, (off_t)loc.off + 10), 1);
	close(fd);
	CHECK_EQ(journal_scan(dirfd_, 1, count_rec, &s, &torn), 1);
	CHECK(torn >= 2 * sizeof(a));
	teardown();
}

static void test_scan_rejects_foreign_file(void)
{
	struct seen s = { 0 };
	uint64_t torn = 0;
	int fd;

	setup();
	fd = openat(dirfd_, "gen-00000009", O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, "RLFSJRNL\x02\0\0\0garbage-garbage-garbage", 35), 35);
	close(fd);
	CHECK_EQ(journal_scan(dirfd_, 9, count_rec, &s, &torn), -EBADMSG);
	CHECK_EQ(journal_scan(dirfd_, 10, count_rec, &s, &torn), -ENOENT);
	CHECK_EQ(s.n, 0);
	teardown();
}

static void test_seal_and_drop(void)
{
	struct journal *j;
	struct journal_loc l1, l2;
	uint32_t sealed = 0;
	char a[64] = { 4 }, out[64];

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, &l1), 0);
	CHECK_EQ(journal_seal(j, &sealed), 0);
	CHECK_EQ(sealed, 1);
	CHECK_EQ(journal_active_gen(j), 2);
	CHECK_EQ(journal_active_bytes(j), 0);
	CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, &l2), 0);
	CHECK_EQ(l2.gen, 2);
	CHECK_EQ(journal_read(j, &l1, out, sizeof(out)), 0);
	CHECK_EQ(journal_drop(j, 2), -EBUSY);
	CHECK_EQ(journal_drop(j, 1), 0);
	CHECK_EQ(faccessat(dirfd_, "gen-00000001", F_OK, 0), -1);
	CHECK_EQ(journal_read(j, &l1, out, sizeof(out)), -ENOENT);
	CHECK_EQ(journal_drop(j, 1), -ENOENT);
	CHECK_EQ(journal_read(j, &l2, out, sizeof(out)), 0);
	journal_close(j);
	teardown();
}

/* Generations listed oldest first, past a name that only looks like one;
 * removal takes them all and nothing else. */
static void test_list_and_remove(void)
{
	struct journal *j;
	uint32_t *gens, sealed;
	size_t n;
	char a[64] = { 7 };
	int fd;

	setup();
	CHECK_EQ(journal_list(dirfd_, &gens, &n), 0);
	CHECK_EQ(n, 0);
	free(gens);
	CHECK_EQ(journal_open(&j, dirfd_, 0x11), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, NULL), 0);
		CHECK_EQ(journal_seal(j, &sealed), 0);
	}
	journal_close(j);
	fd = openat(dirfd_, "gen-0000001x", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);
	fd = openat(dirfd_, "state", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(journal_list(dirfd_, &gens, &n), 0);
	CHECK_EQ(n, 4);
	for (size_t i = 0; i < n && i < 4; i++)
		CHECK_EQ(gens[i], 0x11 + i);
	free(gens);
	CHECK_EQ(journal_remove(dirfd_), 0);
	CHECK_EQ(journal_list(dirfd_, &gens, &n), 0);
	CHECK_EQ(n, 0);
	free(gens);
	CHECK_EQ(faccessat(dirfd_, "gen-0000001x", F_OK, 0), 0);
	CHECK_EQ(faccessat(dirfd_, "state", F_OK, 0), 0);
	teardown();
}

static void test_many_seals_reuse_slots(void)
{
	struct journal *j;
	uint32_t sealed;
	char a[8] = { 5 };

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	for (int i = 0; i < 50; i++) {
		CHECK_EQ(journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(a), a, NULL), 0);
		CHECK_EQ(journal_seal(j, &sealed), 0);
		CHECK_EQ(journal_drop(j, sealed), 0);
	}
	CHECK_EQ(journal_active_gen(j), 51);
	journal_close(j);
	teardown();
}

/* The journal's flushes, counted per generation file: this fdatasync takes
 * the place of libc's for the journal code linked into this test. */
static int flushes[64];

int fdatasync(int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;
	const char *base;
	unsigned gen;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		base = strrchr(path, '/');
		if (base != NULL && sscanf(base + 1, "gen-%08x", &gen) == 1 && gen < 64)
			flushes[gen]++;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

/* One 4 KiB write record (what it holds does not matter here). */
static int put(struct journal *j)
{
	static const char data[4096];

	return journal_append(j, JOURNAL_WRITE, 1, 0, sizeof(data), data, NULL);
}

static int dir_fsyncs;

int fsync(int fd)
{
	struct stat a, b;

	if (fstat(fd, &a) == 0 && stat(dir, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		dir_fsyncs++;
	return (int)syscall(SYS_fsync, fd);
}

static void test_drop_after_ack_flushes_newer_first(void)
{
	struct journal *j;
	uint32_t sealed;

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	/* Acknowledged in gen 1, then superseded in gen 2 without a sync. */
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(journal_seal(j, &sealed), 0);
	CHECK_EQ(put(j), 0);
	memset(flushes, 0, sizeof(flushes));
	dir_fsyncs = 0;
	CHECK_EQ(journal_drop(j, sealed), 0);
	CHECK_EQ(flushes[2], 1);
	CHECK_EQ(flushes[1], 0);
	CHECK_EQ(dir_fsyncs, 1);
	/* That flush counts as the sync of everything appended so far. */
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(flushes[2], 1);
	/* Gen 2 was acknowledged by the drop's flush: its drop flushes gen 3. */
	CHECK_EQ(journal_seal(j, &sealed), 0);
	CHECK_EQ(sealed, 2);
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_drop(j, 2), 0);
	CHECK_EQ(flushes[3], 2);	/* header, then before the drop */
	CHECK_EQ(dir_fsyncs, 3);	/* gen 3's creation, and the two drops */
	journal_close(j);
	teardown();
}

static void test_sync_flushes_sealed_generations(void)
{
	struct journal *j;
	uint32_t sealed;

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	CHECK_EQ(put(j), 0);
	memset(flushes, 0, sizeof(flushes));
	/* Sealing flushes only the new generation's header. */
	CHECK_EQ(journal_seal(j, &sealed), 0);
	CHECK_EQ(sealed, 1);
	CHECK_EQ(flushes[1], 0);
	CHECK_EQ(flushes[2], 1);
	/* An fsync after the seal covers the write made before it. */
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(flushes[1], 1);
	CHECK_EQ(flushes[2], 2);
	/* Nothing new: nothing flushed. */
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(flushes[1], 1);
	CHECK_EQ(flushes[2], 2);
	/* A sealed generation flushed once stays durable. */
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(flushes[1], 1);
	CHECK_EQ(flushes[2], 3);
	/* Sealed when everything in it was already durable. */
	CHECK_EQ(journal_seal(j, &sealed), 0);
	CHECK_EQ(sealed, 2);
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(flushes[2], 3);
	CHECK_EQ(flushes[3], 2);
	journal_close(j);
	teardown();
}

static void test_dropped_generation_never_flushed(void)
{
	struct journal *j;
	uint32_t sealed;

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	memset(flushes, 0, sizeof(flushes));
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(put(j), 0);
		CHECK_EQ(journal_seal(j, &sealed), 0);
		CHECK_EQ(journal_drop(j, sealed), 0);
	}
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(flushes[1], 0);
	CHECK_EQ(flushes[2], 1);	/* its header, when created */
	CHECK_EQ(flushes[3], 1);
	CHECK_EQ(flushes[4], 2);	/* header, then the sync of the active one */
	/* Two sealed generations waiting, both unsynced: one sync takes both. */
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_seal(j, &sealed), 0);
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_seal(j, &sealed), 0);
	CHECK_EQ(put(j), 0);
	CHECK_EQ(journal_sync(j), 0);
	CHECK_EQ(flushes[4], 3);
	CHECK_EQ(flushes[5], 2);
	CHECK_EQ(flushes[6], 2);
	journal_close(j);
	teardown();
}

/* Only the exact names journal_gen_name writes are generations: %8x would
 * read these as aliases of generation 0x11. */
static void test_list_ignores_aliases(void)
{
	static const char *const alias[] = { "gen-0x000011", "gen-0X000011", "gen-+0000011",
					     "gen- 0000011", "gen-00000011 ", "gen-0000001A" };
	struct journal *j;
	uint32_t *gens;
	size_t n;

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 0x12), 0);
	journal_close(j);
	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
		int fd = openat(dirfd_, alias[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

		CHECK(fd >= 0);
		close(fd);
	}
	CHECK_EQ(journal_list(dirfd_, &gens, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(gens[0], 0x12);
	free(gens);
	teardown();
}

/* Record ranges must fit an off_t: append refuses, and a checksummed
 * record that overflows is an error of the scan, not a torn end. */
static void test_record_bounds(void)
{
	struct journal_rec rec;
	struct seen s = { 0 };
	uint64_t torn = 0, sum;
	struct journal *j;
	int fd;

	setup();
	CHECK_EQ(journal_open(&j, dirfd_, 1), 0);
	CHECK_EQ(journal_append(j, JOURNAL_ZERO, 1, INT64_MAX, 10, NULL, NULL), -EINVAL);
	CHECK_EQ(journal_append(j, JOURNAL_TRUNCATE, 1, (uint64_t)INT64_MAX + 1, 0, NULL, NULL), -EINVAL);
	CHECK_EQ(journal_append(j, JOURNAL_ZERO, 1, INT64_MAX - 10, 10, NULL, NULL), 0);
	journal_close(j);
	memset(&rec, 0, sizeof(rec));
	rec.magic = 0x43524a52u;
	rec.type = JOURNAL_ZERO;
	rec.gen = 1;
	rec.file_id = 1;
	rec.offset = INT64_MAX - 10;
	rec.length = 11;
	rec.seq = 2;
	sum = XXH3_64bits(&rec, sizeof(rec));
	fd = openat(dirfd_, "gen-00000001", O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, &rec, sizeof(rec)), sizeof(rec));
	CHECK_EQ(write(fd, &sum, sizeof(sum)), sizeof(sum));
	close(fd);
	CHECK_EQ(journal_scan(dirfd_, 1, count_rec, &s, &torn), -ERANGE);
	CHECK_EQ(s.n, 1);
	teardown();
}

/* No longer than a header and without a valid one: a crash while it was
 * created (-ENODATA), not damage (-EBADMSG). */
static void test_scan_unfinished_header(void)
{
	struct seen s = { 0 };
	uint64_t torn = 0;
	int fd;

	setup();
	fd = openat(dirfd_, "gen-00000001", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK_EQ(journal_scan(dirfd_, 1, count_rec, &s, &torn), -ENODATA);
	fd = openat(dirfd_, "gen-00000002", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, "RLFSJRNL", 8), 8);
	CHECK_EQ(ftruncate(fd, 32), 0);
	close(fd);
	CHECK_EQ(journal_scan(dirfd_, 2, count_rec, &s, &torn), -ENODATA);
	CHECK_EQ(mkdir(dir_path("gen-00000003"), 0700), 0);
	CHECK_EQ(journal_scan(dirfd_, 3, count_rec, &s, &torn), -EINVAL);
	teardown();
}

int main(void)
{
	UNIT_RUN(test_append_read_roundtrip);
	UNIT_RUN(test_scan_counts_every_type);
	UNIT_RUN(test_scan_drops_torn_tail);
	UNIT_RUN(test_scan_stops_at_bit_flip);
	UNIT_RUN(test_scan_rejects_foreign_file);
	UNIT_RUN(test_seal_and_drop);
	UNIT_RUN(test_list_and_remove);
	UNIT_RUN(test_list_ignores_aliases);
	UNIT_RUN(test_record_bounds);
	UNIT_RUN(test_scan_unfinished_header);
	UNIT_RUN(test_many_seals_reuse_slots);
	UNIT_RUN(test_sync_flushes_sealed_generations);
	UNIT_RUN(test_dropped_generation_never_flushed);
	UNIT_RUN(test_drop_after_ack_flushes_newer_first);
	return UNIT_DONE();
}
