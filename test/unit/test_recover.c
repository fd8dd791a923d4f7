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

int main(void)
{
	UNIT_RUN(test_crash_in_rdir_removal_keeps_newest);
	UNIT_RUN(test_crash_after_first_generation_removed);
	return UNIT_DONE();
}
