/* test_log: level names, the current level, and the stderr line format. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relocfs/log.h"
#include "unit.h"

static const char *const names[] = { "error", "warning", "notice", "info", "debug" };

/* stderr capture: fd 2 goes to a pipe between capture_start and
 * capture_end, which returns what was written. */
static int cap_rd = -1, cap_saved = -1;
static char cap_buf[128 * 1024];

static void capture_start(void)
{
	int p[2];

	fflush(stderr);
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("pipe2");
		exit(2);
	}
	(void)fcntl(p[1], F_SETPIPE_SZ, (int)sizeof(cap_buf));
	cap_saved = dup(2);
	if (cap_saved < 0 || dup2(p[1], 2) < 0) {
		perror("dup");
		exit(2);
	}
	close(p[1]);
	cap_rd = p[0];
}

static const char *capture_end(size_t *lenp)
{
	size_t len = 0;
	ssize_t n;

	fflush(stderr);
	dup2(cap_saved, 2);
	close(cap_saved);
	cap_saved = -1;
	while (len < sizeof(cap_buf) - 1 &&
	       (n = read(cap_rd, cap_buf + len, sizeof(cap_buf) - 1 - len)) > 0)
		len += (size_t)n;
	cap_buf[len] = '\0';
	close(cap_rd);
	cap_rd = -1;
	if (lenp != NULL)
		*lenp = len;
	return cap_buf;
}

static void test_level_names_round_trip(void)
{
	for (int i = LOG_LVL_ERROR; i <= LOG_LVL_DEBUG; i++) {
		enum log_level lvl = (enum log_level)99;

		CHECK_STR(log_level_name((enum log_level)i), names[i]);
		CHECK_EQ(log_level_parse(names[i], &lvl), 0);
		CHECK_EQ(lvl, i);
		CHECK_EQ(log_level_parse(log_level_name(lvl), &lvl), 0);
		CHECK_EQ(lvl, i);
	}
	CHECK_EQ(LOG_LVL_ERROR, 0);
	CHECK(LOG_LVL_ERROR < LOG_LVL_WARNING && LOG_LVL_WARNING < LOG_LVL_NOTICE &&
	      LOG_LVL_NOTICE < LOG_LVL_INFO && LOG_LVL_INFO < LOG_LVL_DEBUG);
}

static void test_level_name_out_of_range(void)
{
	CHECK(log_level_name((enum log_level)5) == NULL);
	CHECK(log_level_name((enum log_level)1000) == NULL);
	CHECK(log_level_name((enum log_level)-1) == NULL);
}

static void test_level_parse_unknown(void)
{
	static const char *const bad[] = {
		"", "INFO", "Error", "warn", "err", "debug ", " debug", "trace", "3",
		"informational",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum log_level lvl = LOG_LVL_NOTICE;

		CHECK_EQ(log_level_parse(bad[i], &lvl), -EINVAL);
		CHECK_EQ(lvl, LOG_LVL_NOTICE);	/* untouched */
	}
}

static void test_set_get_level(void)
{
	enum log_level old = log_get_level();

	for (int i = LOG_LVL_DEBUG; i >= LOG_LVL_ERROR; i--) {
		log_set_level((enum log_level)i);
		CHECK_EQ(log_get_level(), i);
	}
	log_set_level(old);
	CHECK_EQ(log_get_level(), old);
}

static void test_default_level_is_info(void)
{
	/* Runs first in main(), before any set. */
	CHECK_EQ(log_get_level(), LOG_LVL_INFO);
}

static void test_format_error_warning_notice(void)
{
	const char *out;

	log_set_level(LOG_LVL_INFO);
	capture_start();
	log_error("disk %s failed: %d", "sdb", -5);
	log_warning("journal %d%% full", 90);
	log_notice("message");
	log_msg(LOG_LVL_ERROR, "message");
	out = capture_end(NULL);
	CHECK_STR(out, "relocfs: disk sdb failed: -5\n"
		       "relocfs: journal 90% full\n"
		       "relocfs: message\n"
		       "relocfs: message\n");
}

static void test_format_info_debug(void)
{
	const char *out;

	log_set_level(LOG_LVL_DEBUG);
	capture_start();
	log_info("message");
	log_debug("lookup %s -> %llu", "vm1", 42ULL);
	log_msg(LOG_LVL_DEBUG, "direct");
	out = capture_end(NULL);
	log_set_level(LOG_LVL_INFO);
	CHECK_STR(out, "relocfs: info: message\n"
		       "relocfs: debug: lookup vm1 -> 42\n"
		       "relocfs: debug: direct\n");
}

static void test_debug_suppressed_at_info(void)
{
	const char *out;

	log_set_level(LOG_LVL_INFO);
	capture_start();
	log_debug("hidden %d", 1);
	log_msg(LOG_LVL_DEBUG, "hidden %d", 2);
	log_info("shown");
	out = capture_end(NULL);
	CHECK_STR(out, "relocfs: info: shown\n");
}

static void test_level_threshold(void)
{
	const char *out;

	log_set_level(LOG_LVL_ERROR);
	capture_start();
	log_warning("w");
	log_notice("n");
	log_info("i");
	log_debug("d");
	log_error("e");
	out = capture_end(NULL);
	CHECK_STR(out, "relocfs: e\n");

	log_set_level(LOG_LVL_NOTICE);
	capture_start();
	log_info("i");
	log_notice("n");
	log_warning("w");
	out = capture_end(NULL);
	log_set_level(LOG_LVL_INFO);
	CHECK_STR(out, "relocfs: n\nrelocfs: w\n");
}

/* A message longer than the line buffer is cut, still one line. */
static void test_long_message_truncated(void)
{
	char msg[3000], want[1200];
	const char *out;
	size_t len;

	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	log_set_level(LOG_LVL_INFO);
	capture_start();
	log_error("%s", msg);
	out = capture_end(&len);
	snprintf(want, sizeof(want), "relocfs: %.1023s\n", msg);
	CHECK_EQ(len, strlen("relocfs: ") + 1023 + 1);
	CHECK_STR(out, want);
}

static void test_init_sets_ident_and_level(void)
{
	const char *out;

	log_init("relocfs-test", LOG_LVL_NOTICE);
	CHECK_EQ(log_get_level(), LOG_LVL_NOTICE);
	capture_start();
	log_info("hidden");
	log_notice("n");
	log_set_level(LOG_LVL_DEBUG);
	log_debug("d");
	out = capture_end(NULL);
	log_init("relocfs", LOG_LVL_INFO);
	CHECK_STR(out, "relocfs-test: n\nrelocfs-test: debug: d\n");
	CHECK_EQ(log_get_level(), LOG_LVL_INFO);
}

/* Concurrent callers: every line arrives whole. */
#define NTHREADS 4
#define NLINES 300

static void *writer(void *arg)
{
	int id = (int)(long)arg;

	for (int i = 0; i < NLINES; i++)
		log_info("thread %d line %04d payload abcdefghijklmnopqrstuvwxyz", id, i);
	return NULL;
}

static void test_concurrent_lines_whole(void)
{
	pthread_t th[NTHREADS];
	int seen[NTHREADS] = { 0 };
	char *out, *line, *save = NULL;
	int nlines = 0, bad = 0;
	size_t len;

	log_set_level(LOG_LVL_INFO);
	capture_start();
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, writer, (void *)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	out = (char *)capture_end(&len);
	CHECK(len < sizeof(cap_buf) - 1);
	CHECK(len > 0 && out[len - 1] == '\n');
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		int id, n, end = 0;

		nlines++;
		if (sscanf(line, "relocfs: info: thread %d line %d payload "
			   "abcdefghijklmnopqrstuvwxyz%n", &id, &n, &end) != 2 ||
		    line[end] != '\0' || id < 0 || id >= NTHREADS || n != seen[id]) {
			if (bad++ == 0)
				printf("# bad line: \"%s\"\n", line);
			continue;
		}
		seen[id]++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(nlines, NTHREADS * NLINES);
	for (int i = 0; i < NTHREADS; i++)
		CHECK_EQ(seen[i], NLINES);
}

int main(void)
{
	UNIT_RUN(test_default_level_is_info);
	UNIT_RUN(test_level_names_round_trip);
	UNIT_RUN(test_level_name_out_of_range);
	UNIT_RUN(test_level_parse_unknown);
	UNIT_RUN(test_set_get_level);
	UNIT_RUN(test_format_error_warning_notice);
	UNIT_RUN(test_format_info_debug);
	UNIT_RUN(test_debug_suppressed_at_info);
	UNIT_RUN(test_level_threshold);
	UNIT_RUN(test_long_message_truncated);
	UNIT_RUN(test_init_sets_ident_and_level);
	UNIT_RUN(test_concurrent_lines_whole);
	return UNIT_DONE();
}
