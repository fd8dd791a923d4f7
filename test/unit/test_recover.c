/* Unit tests of crash recovery fed the state a crash, a power cut or a
 * stray file leaves: it must finish or undo the relocation without losing
 * acknowledged data, or refuse with the state dir and both homes unchanged.
 * (Adapted from the reviewer's experiments.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <xxhash.h>

#include "relocfs/journal.h"
#include "relocfs/placement.h"
#include "relocfs/recover.h"
#include "unit.h"

static char root[64];
static char err[8192];

/* pread interposer: fails with EIO at one offset. */
static off_t fail_off = -1;
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (fail_off >= 0 && off == fail_off) {
		errno = EIO;
		return -1;
	}
	return syscall(SYS_pread64, fd, buf, n, off);
}

/* unlinkat interposer: the process dies right after unlinking this name. */
static const char *die_after;
int unlinkat(int dfd, const char *name, int flags)
{
	int r = (int)syscall(SYS_unlinkat, dfd, name, flags);

	if (die_after != NULL && strcmp(name, die_after) == 0)
		_exit(9);
	return r;
}

static void setup(void)
{
	snprintf(root, sizeof(root), "/tmp/relocfs-unit-recover-XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
	err[0] = '\0';
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		abort();
}

/* Runs a shell command with every %s replaced by root. */
static void sh(const char *fmt)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), fmt, root, root, root, root, root);
	if (system(cmd) != 0) {
		printf("# cmd failed: %s\n", cmd);
		abort();
	}
}

static const char *P(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", root, rel);
	return buf[k];
}

static void put(const char *rel, const char *s)
{
	FILE *f = fopen(P(rel), "w");

	if (f == NULL) {
		perror(rel);
		abort();
	}
	fputs(s, f);
	fclose(f);
}

/* The content of root/rel, or NULL when it does not exist. */
static char *get(const char *rel)
{
	static char buf[4096];
	FILE *f = fopen(P(rel), "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static bool exists(const char *rel)
{
	return access(P(rel), F_OK) == 0;
}

static void checksummed(const char *rel, char *buf, size_t size, int n)
{
	snprintf(buf + n, size - (size_t)n, "xxh3 %016llx\n",
		 (unsigned long long)XXH3_64bits(buf, (size_t)n));
	put(rel, buf);
}

/* Writes sd/reloc-1/state for home H moving from root/from to root/to. */
static void state(const char *from, const char *to, const char *phase)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "relocfs-relocation 1\nid 1\nhome H\nfrom %s/%s\n"
			 "to %s/%s\nphase %s\nkeep 0\n", root, from, root, to, phase);

	checksummed("sd/reloc-1/state", buf, sizeof(buf), n);
}

/* Writes sd/placement putting H on root/ds (none: an empty table). */
static void placement(const char *ds)
{
	char buf[4096];
	int n = ds == NULL ? snprintf(buf, sizeof(buf), "relocfs-placement 1\n")
			   : snprintf(buf, sizeof(buf), "relocfs-placement 1\nH\t%s/%s\n", root, ds);

	checksummed("sd/placement", buf, sizeof(buf), n);
}

static ino_t ino_of(const char *rel)
{
	struct stat st;

	if (stat(P(rel), &st) < 0)
		abort();
	return st.st_ino;
}

static int recover(const char *source)
{
	struct placement pl;
	int fd = open(P("sd"), O_RDONLY | O_DIRECTORY), ret;

	placement_init(&pl);
	ret = placement_load(fd, &pl, err, sizeof(err));
	if (ret == 0)
		ret = recover_relocations(fd, P(source), &pl, err, sizeof(err));
	printf("# recover -> %d (%s)\n", ret, err);
	placement_free(&pl);
	close(fd);
	return ret;
}

/* Generation 1 of sd/reloc-1 with nrec records writing data at i * 100. */
static void journal_with(ino_t ino, int nrec, const char *data)
{
	struct journal *j;
	int fd = open(P("sd/reloc-1"), O_RDONLY | O_DIRECTORY);

	if (journal_open(&j, fd, 1) < 0)
		abort();
	for (int i = 0; i < nrec; i++)
		if (journal_append(j, JOURNAL_WRITE, ino, (uint64_t)i * 100, strlen(data), data, NULL) < 0)
			abort();
	journal_sync(j);
	journal_close(j);
	close(fd);
}

/* Generation 1 writes OLD, generation 2 NEW over it, at offset 0 of S/H/f. */
static void two_generations(void)
{
	struct journal *j;
	uint32_t sealed;
	ino_t ino = ino_of("S/H/f");
	int fd = open(P("sd/reloc-1"), O_RDONLY | O_DIRECTORY);

	if (journal_open(&j, fd, 1) < 0 || journal_append(j, JOURNAL_WRITE, ino, 0, 3, "OLD", NULL) < 0 ||
	    journal_seal(j, &sealed) < 0 || journal_append(j, JOURNAL_WRITE, ino, 0, 3, "NEW", NULL) < 0 ||
	    journal_sync(j) < 0)
		abort();
	journal_close(j);
	close(fd);
}

/* Runs recover(source) in a child that dies right after unlinking name;
 * true when it died there. */
static bool recover_dies_after(const char *source, const char *name)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		die_after = name;
		recover(source);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 9;
}

/* Runs recover(source) in a child with a 3 s alarm; true when it returned. */
static bool recover_returns(const char *source)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		alarm(3);
		recover(source);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	return !WIFSIGNALED(st);
}

/* ------------------------------------------------------------- 1: cleanup */

/* A crash while recovery deletes the relocation dir it has replayed must
 * not leave the older generation alone beside the state. */
static void test_crash_in_rdir_removal_keeps_newest(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "base......");
	state("S", "D", "copy");
	two_generations();
	CHECK(recover_dies_after("S", "gen-00000002"));
	CHECK_STR(get("S/H/f"), "NEWe......");
	CHECK(recover("S") == 0);
	CHECK_STR(get("S/H/f"), "NEWe......");
	CHECK(!exists("sd/reloc-1"));
	teardown();
}

/* The first generation's deletion reaches the disk before the second's. */
static void test_crash_after_first_generation_removed(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "base......");
	state("S", "D", "copy");
	two_generations();
	CHECK(recover_dies_after("S", "gen-00000001"));
	CHECK(exists("sd/reloc-1/state"));
	CHECK(!exists("sd/reloc-1/gen-00000001"));
	CHECK(exists("sd/reloc-1/gen-00000002"));
	CHECK_EQ(recover("S"), 0);
	CHECK_STR(get("S/H/f"), "NEWe......");
	teardown();
}

/* ------------------------------------------------- 2: lost destination file */

/* Flipped, then a power cut lost a file D had not flushed: its records
 * must not be dropped as "unlinked", nor the source removed. */
static void test_flip_dest_lacks_file_refuses(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/new.log", "");
	put("S/H/disk", "d");
	put("D/H/disk", "d");
	state("S", "D", "cutover");
	placement("D");
	journal_with(ino_of("S/H/new.log"), 2, "ACKED");
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "new.log") != NULL);
	CHECK(exists("S/H/new.log"));
	CHECK(exists("sd/reloc-1/gen-00000001"));
	CHECK(!exists("D/H/new.log"));
	teardown();
}

/* The engine flips after D's flush and the journal's deletion: with no
 * record left, D's names may differ from the stale source's. */
static void test_flip_empty_journal_finishes(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/gone", "unlinked after the flip");
	put("D/H/made", "created after the flip");
	state("S", "D", "cutover");
	placement("D");
	journal_with(ino_of("S/H/gone"), 0, "");
	CHECK_EQ(recover("S"), 0);
	CHECK(!exists("S/H"));
	CHECK(!exists("sd/reloc-1"));
	CHECK_STR(get("D/H/made"), "created after the flip");
	teardown();
}

/* ------------------------------------------------ 10: trees both ways */

/* Before the cutover a rename over b applied to the source but not yet
 * mirrored leaves D with the old name: rolling forward would keep it, and
 * replay the file's records onto the wrong b. */
static void test_rename_not_mirrored_refuses(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/b", "AAAAAAAAAAAAAAAA");	/* was a, renamed over b */
	put("D/H/a", "AAAAAAAAAAAAAAAA");
	put("D/H/b", "BBBBBBBBBBBBBBBB");
	state("S", "D", "converge");
	journal_with(ino_of("S/H/b"), 1, "new");
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "'a'") != NULL);
	CHECK_STR(get("D/H/b"), "BBBBBBBBBBBBBBBB");
	CHECK(exists("S/H/b"));
	CHECK(exists("sd/reloc-1/gen-00000001"));
	teardown();
}

/* An unlink applied to the source, not yet to D. */
static void test_unlink_not_mirrored_refuses(void)
{
	setup();
	sh("mkdir -p %s/S/H/dir %s/D/H/dir %s/sd/reloc-1");
	put("S/H/dir/keep", "k");
	put("D/H/dir/keep", "k");
	put("D/H/dir/gone", "g");
	state("S", "D", "ready");
	journal_with(ino_of("S/H/dir/keep"), 1, "K");
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "dir/gone") != NULL);
	CHECK_STR(get("D/H/dir/keep"), "k");
	teardown();
}

/* -------------------------------------------------- 3: placement and phase */

/* No placement file, a relocation from X back to the source in phase copy:
 * X holds the only complete copy. */
static void test_missing_placement_refuses(void)
{
	setup();
	sh("mkdir -p %s/src/H %s/X/H %s/sd/reloc-1");
	put("X/H/disk.vmdk", "THE ONLY COMPLETE COPY");
	state("X", "src", "copy");
	journal_with(ino_of("X/H/disk.vmdk"), 1, "ACKED");
	CHECK(recover("src") != 0);
	CHECK(strstr(err, "placement") != NULL);
	CHECK_STR(get("X/H/disk.vmdk"), "THE ONLY COMPLETE COPY");
	CHECK(exists("sd/reloc-1/gen-00000001"));
	teardown();
}

/* The placement puts the home on the destination in phase copy: the flip
 * was never made there, so neither copy may be removed. */
static void test_placement_on_dest_before_cutover_refuses(void)
{
	setup();
	sh("mkdir -p %s/src/H %s/X/H %s/sd/reloc-1");
	put("X/H/disk.vmdk", "THE ONLY COMPLETE COPY");
	state("X", "src", "copy");
	placement(NULL);	/* H on the source, the destination */
	journal_with(ino_of("X/H/disk.vmdk"), 1, "ACKED");
	CHECK(recover("src") != 0);
	CHECK(strstr(err, "'copy'") != NULL);
	CHECK_STR(get("X/H/disk.vmdk"), "THE ONLY COMPLETE COPY");
	CHECK(exists("sd/reloc-1/state"));
	teardown();
}

/* A first mount, or one with relocations that start on the source, needs
 * no placement file. */
static void test_no_placement_file_from_source_ok(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "base......");
	state("S", "D", "copy");
	journal_with(ino_of("S/H/f"), 1, "J1");
	CHECK_EQ(recover("S"), 0);
	CHECK_STR(get("S/H/f"), "J1se......");
	CHECK(!exists("D/H"));
	teardown();
}

/* ------------------------------------------------------ 4: journal read error */

static void test_read_error_refuses(void)
{
	int ret;

	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "");
	state("S", "D", "copy");
	journal_with(ino_of("S/H/f"), 3, "ACKED");
	/* 32-byte file header, then 48 + 5 + 8 per record: the second one */
	fail_off = 32 + 61;
	ret = recover("S");
	fail_off = -1;
	CHECK(ret != 0);
	CHECK(strstr(err, "gen-00000001") != NULL);
	CHECK_STR(get("S/H/f"), "");
	CHECK(exists("sd/reloc-1/gen-00000001"));
	teardown();
}

/* ------------------------------------------------ 5: check, then replay */

/* A damaged later generation refuses the recovery before the earlier one
 * was written anywhere. */
static void test_damaged_later_generation_changes_nothing(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "base......");
	state("S", "D", "copy");
	journal_with(ino_of("S/H/f"), 1, "J1");
	put("sd/reloc-1/gen-00000002", "RLFSJRNL\x02garbage garbage garbage garbage garbage");
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "gen-00000002") != NULL);
	CHECK_STR(get("S/H/f"), "base......");
	teardown();
}

/* A newest generation left empty by a crash in its creation is empty. */
static void test_empty_newest_generation_is_empty(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "base......");
	state("S", "D", "copy");
	journal_with(ino_of("S/H/f"), 1, "J1");
	put("sd/reloc-1/gen-00000002", "");
	CHECK_EQ(recover("S"), 0);
	CHECK_STR(get("S/H/f"), "J1se......");
	CHECK(!exists("sd/reloc-1"));
	teardown();
}

/* ...but an empty generation before the newest is damage. */
static void test_empty_older_generation_refuses(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "base......");
	state("S", "D", "copy");
	journal_with(ino_of("S/H/f"), 1, "J1");
	sh("mv %s/sd/reloc-1/gen-00000001 %s/sd/reloc-1/gen-00000002");
	put("sd/reloc-1/gen-00000001", "");
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "gen-00000001") != NULL);
	CHECK_STR(get("S/H/f"), "base......");
	teardown();
}

/* ------------------------------------- 6: crash in the flip's source removal */

static void test_crash_after_flip_source_removed(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "data");
	put("D/H/f", "data");
	state("S", "D", "cutover");
	placement("D");
	journal_with(ino_of("S/H/f"), 1, "x");
	CHECK(recover_dies_after("S", "H"));
	CHECK(!exists("S/H"));
	CHECK_EQ(recover("S"), 0);
	CHECK(!exists("sd/reloc-1"));
	CHECK_STR(get("D/H/f"), "xata");
	teardown();
}

/* In phase cutover the source is needed: its absence is named. */
static void test_cutover_missing_source_named(void)
{
	setup();
	sh("mkdir -p %s/S %s/D/H %s/sd/reloc-1");
	put("D/H/f", "data");
	state("S", "D", "cutover");
	placement("D");
	journal_with(12345, 1, "x");
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "source home") != NULL && strstr(err, "/S/H") != NULL);
	CHECK(exists("sd/reloc-1/gen-00000001"));
	teardown();
}

/* ------------------------------------------------------- 7: no state file */

static void test_missing_state_with_records_refuses(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/sd/reloc-1");
	put("S/H/f", "xxxxxxxxxx");
	journal_with(ino_of("S/H/f"), 3, "ACKED");
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "no state file") != NULL);
	CHECK(exists("sd/reloc-1/gen-00000001"));
	teardown();
}

static void test_missing_state_empty_journal_removed(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/sd/reloc-1");
	put("S/H/f", "xxxxxxxxxx");
	journal_with(ino_of("S/H/f"), 0, "");
	CHECK_EQ(recover("S"), 0);
	CHECK(!exists("sd/reloc-1"));
	teardown();
}

/* The engine's rollback could not record its final phase and renamed the
 * state away: the source holds everything, the journal goes. */
static void test_forgotten_state_removed(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/sd/reloc-1");
	put("S/H/f", "xxxxxxxxxx");
	journal_with(ino_of("S/H/f"), 3, "ACKED");
	put("sd/reloc-1/" RECOVER_FORGOTTEN, "");
	CHECK_EQ(recover("S"), 0);
	CHECK(!exists("sd/reloc-1"));
	CHECK_STR(get("S/H/f"), "xxxxxxxxxx");
	teardown();
}

/* ------------------------------------------------------------- 8: FIFOs */

static void test_fifo_state_refused(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/sd/reloc-1 && mkfifo %s/sd/reloc-1/state");
	CHECK(recover_returns("S"));
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "reloc-1/state: not a regular file") != NULL);
	teardown();
}

static void test_fifo_generation_refused(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1 && mkfifo %s/sd/reloc-1/gen-00000001");
	put("S/H/f", "base......");
	state("S", "D", "copy");
	CHECK(recover_returns("S"));
	CHECK(recover("S") != 0);
	CHECK(strstr(err, "gen-00000001: not a regular file") != NULL);
	CHECK(exists("sd/reloc-1/state"));
	teardown();
}

static void test_fifo_placement_refused(void)
{
	struct placement pl;
	int fd;

	setup();
	sh("mkdir -p %s/sd && mkfifo %s/sd/placement");
	fflush(stdout);
	if (fork() == 0) {
		alarm(3);
		fd = open(P("sd"), O_RDONLY | O_DIRECTORY);
		placement_init(&pl);
		_exit(placement_load(fd, &pl, err, sizeof(err)) < 0 &&
		      strstr(err, "not a regular file") != NULL ? 0 : 1);
	}
	{
		int st;

		wait(&st);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	teardown();
}

/* ------------------------------------------------- 9: generation names */

/* A stray name sscanf's %8x would read as a generation is not one. */
static void test_generation_alias_ignored(void)
{
	setup();
	sh("mkdir -p %s/S/H %s/D/H %s/sd/reloc-1");
	put("S/H/f", "xxxxxxxxxx");
	state("S", "D", "copy");
	put("sd/reloc-1/gen-0X00000A", "junk");
	put("sd/reloc-1/gen-0x00000a", "junk");
	put("sd/reloc-1/gen--000000a", "junk");
	put("sd/reloc-1/gen- 000000a", "junk");
	put("sd/reloc-1/gen-0000000A", "junk");
	CHECK_EQ(recover("S"), 0);
	CHECK_STR(get("S/H/f"), "xxxxxxxxxx");
	teardown();
}

int main(void)
{
	UNIT_RUN(test_crash_in_rdir_removal_keeps_newest);
	UNIT_RUN(test_crash_after_first_generation_removed);
	UNIT_RUN(test_flip_dest_lacks_file_refuses);
	UNIT_RUN(test_flip_empty_journal_finishes);
	UNIT_RUN(test_rename_not_mirrored_refuses);
	UNIT_RUN(test_unlink_not_mirrored_refuses);
	UNIT_RUN(test_missing_placement_refuses);
	UNIT_RUN(test_placement_on_dest_before_cutover_refuses);
	UNIT_RUN(test_no_placement_file_from_source_ok);
	UNIT_RUN(test_read_error_refuses);
	UNIT_RUN(test_damaged_later_generation_changes_nothing);
	UNIT_RUN(test_empty_newest_generation_is_empty);
	UNIT_RUN(test_empty_older_generation_refuses);
	UNIT_RUN(test_crash_after_flip_source_removed);
	UNIT_RUN(test_cutover_missing_source_named);
	UNIT_RUN(test_missing_state_with_records_refuses);
	UNIT_RUN(test_missing_state_empty_journal_removed);
	UNIT_RUN(test_forgotten_state_removed);
	UNIT_RUN(test_fifo_state_refused);
	UNIT_RUN(test_fifo_generation_refused);
	UNIT_RUN(test_fifo_placement_refused);
	UNIT_RUN(test_generation_alias_ignored);
	return UNIT_DONE();
}
