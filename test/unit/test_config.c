/* test_config: config_defaults and config_load against every error path. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "relocfs/config.h"
#include "unit.h"

static char tmpdir[64];
static char cfgfile[128];
static char err[1024];

/* Writes text to the scratch config file; returns its path. */
static const char *write_cfg(const char *text)
{
	FILE *fp = fopen(cfgfile, "w");

	if (fp == NULL) {
		perror(cfgfile);
		exit(2);
	}
	fputs(text, fp);
	fclose(fp);
	return cfgfile;
}

/* Loads text over the defaults; expects failure -EINVAL with the message
 * "FILE:LINE: reason", and cfg unchanged. Returns 0 when all holds. */
static int load_fails(const char *text, int line, const char *reason)
{
	struct config cfg, copy;
	char want[1024];
	int ret;

	config_defaults(&cfg);
	memcpy(&copy, &cfg, sizeof(cfg));
	memset(err, 0, sizeof(err));
	ret = config_load(&cfg, write_cfg(text), err, sizeof(err));
	snprintf(want, sizeof(want), "%s:%d: %s", cfgfile, line, reason);
	if (ret != -EINVAL) {
		printf("# load returned %d, want %d (err \"%s\")\n", ret, -EINVAL, err);
		return -1;
	}
	if (strcmp(err, want) != 0) {
		printf("# err \"%s\"\n#  want \"%s\"\n", err, want);
		return -1;
	}
	if (memcmp(&cfg, &copy, sizeof(cfg)) != 0) {
		printf("# config changed by a failed load\n");
		return -1;
	}
	return 0;
}

static void test_defaults(void)
{
	struct config cfg;

	memset(&cfg, 0xa5, sizeof(cfg));
	config_defaults(&cfg);
	CHECK_STR(cfg.state_dir, CONFIG_DEFAULT_STATE_DIR);
	CHECK_STR(cfg.state_dir, "/var/lib/relocfs");
	CHECK_EQ(cfg.log_level, LOG_LVL_INFO);
	CHECK_EQ(cfg.fuse.max_threads, 64);
	CHECK_EQ(cfg.fuse.max_idle_threads, 8);
	CHECK(cfg.fuse.clone_fd == true);
	CHECK(cfg.fuse.attr_timeout == 86400.0);
	CHECK(cfg.fuse.entry_timeout == 86400.0);
	CHECK(cfg.fuse.negative_timeout == 1.0);
	CHECK(cfg.fuse.keep_cache == true);
	CHECK(cfg.fuse.writeback_cache == false);
	CHECK_EQ(cfg.fuse.max_request_kib, 1024);
	CHECK_EQ(cfg.relocation.pause_budget_ms, 100);
	CHECK_EQ(cfg.relocation.copy_threads, 4);
	CHECK_EQ(cfg.relocation.rate_limit_mib, 0);
	CHECK_EQ(cfg.relocation.busy_rate_mib, 64);
	CHECK(cfg.relocation.keep_source == false);
	CHECK_EQ(cfg.relocation.journal_max_mib, 65536);
}

static void test_load_full(void)
{
	struct config cfg;
	int ret;

	config_defaults(&cfg);
	ret = config_load(&cfg, write_cfg(
		"# every setting\n"
		"state_dir = \"/srv/relocfs-state\";\n"
		"log = { level = \"debug\"; };\n"
		"fuse = {\n"
		"  max_threads = 32;\n"
		"  max_idle_threads = 0;\n"
		"  clone_fd = false;\n"
		"  attr_timeout = 5;\n"		/* int for a float */
		"  entry_timeout = 2.5;\n"
		"  negative_timeout = 0L;\n"	/* int64 for a float */
		"  keep_cache = false;\n"
		"  writeback_cache = true;\n"
		"  max_request_kib = 128;\n"
		"};\n"
		"relocation = {\n"
		"  pause_budget_ms = 20;\n"
		"  copy_threads = 2;\n"
		"  rate_limit_mib = 400;\n"
		"  busy_rate_mib = 0;\n"
		"  keep_source = true;\n"
		"  journal_max_mib = 1024;\n"
		"};\n"), err, sizeof(err));
	if (ret != 0)
		printf("# %s\n", err);
	CHECK_EQ(ret, 0);
	CHECK_STR(cfg.state_dir, "/srv/relocfs-state");
	CHECK_EQ(cfg.log_level, LOG_LVL_DEBUG);
	CHECK_EQ(cfg.fuse.max_threads, 32);
	CHECK_EQ(cfg.fuse.max_idle_threads, 0);
	CHECK(cfg.fuse.clone_fd == false);
	CHECK(cfg.fuse.attr_timeout == 5.0);
	CHECK(cfg.fuse.entry_timeout == 2.5);
	CHECK(cfg.fuse.negative_timeout == 0.0);
	CHECK(cfg.fuse.keep_cache == false);
	CHECK(cfg.fuse.writeback_cache == true);
	CHECK_EQ(cfg.fuse.max_request_kib, 128);
	CHECK_EQ(cfg.relocation.pause_budget_ms, 20);
	CHECK_EQ(cfg.relocation.copy_threads, 2);
	CHECK_EQ(cfg.relocation.rate_limit_mib, 400);
	CHECK_EQ(cfg.relocation.busy_rate_mib, 0);
	CHECK(cfg.relocation.keep_source == true);
	CHECK_EQ(cfg.relocation.journal_max_mib, 1024);
}

/* Range bounds are inclusive; int64 literals are accepted for ints. */
static void test_load_bounds(void)
{
	struct config cfg;
	int ret;

	config_defaults(&cfg);
	ret = config_load(&cfg, write_cfg(
		"fuse = {\n"
		"  max_threads = 1024L;\n"
		"  max_idle_threads = 1024;\n"
		"  attr_timeout = 31536000.0;\n"
		"  entry_timeout = 0.0;\n"
		"  max_request_kib = 4;\n"
		"};\n"), err, sizeof(err));
	if (ret != 0)
		printf("# %s\n", err);
	CHECK_EQ(ret, 0);
	CHECK_EQ(cfg.fuse.max_threads, 1024);
	CHECK_EQ(cfg.fuse.max_idle_threads, 1024);
	CHECK(cfg.fuse.attr_timeout == 31536000.0);
	CHECK(cfg.fuse.entry_timeout == 0.0);
	CHECK_EQ(cfg.fuse.max_request_kib, 4);

	config_defaults(&cfg);
	ret = config_load(&cfg, write_cfg("fuse = { max_threads = 1; };\n"), err, sizeof(err));
	CHECK_EQ(ret, 0);
	CHECK_EQ(cfg.fuse.max_threads, 1);
}

/* A file sets only what it names: the rest keeps the caller's values. */
static void test_load_partial_keeps_rest(void)
{
	struct config cfg;
	int ret;

	config_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "/custom");
	cfg.fuse.max_request_kib = 64;
	ret = config_load(&cfg, write_cfg("fuse = { max_threads = 3; };\n"), err, sizeof(err));
	CHECK_EQ(ret, 0);
	CHECK_EQ(cfg.fuse.max_threads, 3);
	CHECK_STR(cfg.state_dir, "/custom");
	CHECK_EQ(cfg.fuse.max_request_kib, 64);
	CHECK_EQ(cfg.fuse.max_idle_threads, 8);

	/* An empty file and empty groups change nothing. */
	ret = config_load(&cfg, write_cfg(""), err, sizeof(err));
	CHECK_EQ(ret, 0);
	ret = config_load(&cfg, write_cfg("log = {};\nfuse = {};\n"), err, sizeof(err));
	CHECK_EQ(ret, 0);
	CHECK_EQ(cfg.fuse.max_threads, 3);
	CHECK_STR(cfg.state_dir, "/custom");
}

/* The sample file shipped in conf/ documents the defaults: loading it over
 * the defaults gives the defaults back. */
static void test_load_shipped_sample(void)
{
	struct config cfg, def;
	int ret;

	if (access("conf/relocfs.conf", R_OK) != 0) {
		printf("# conf/relocfs.conf not found from cwd, not checked\n");
		return;
	}
	config_defaults(&def);
	config_defaults(&cfg);
	ret = config_load(&cfg, "conf/relocfs.conf", err, sizeof(err));
	if (ret != 0)
		printf("# %s\n", err);
	CHECK_EQ(ret, 0);
	CHECK(memcmp(&cfg, &def, sizeof(cfg)) == 0);
}

static void test_err_unknown_top_level(void)
{
	CHECK(load_fails("\n\nbogus = 1;\n", 3, "unknown setting 'bogus'") == 0);
}

static void test_err_unknown_in_fuse(void)
{
	CHECK(load_fails("fuse = {\n  max_threads = 4;\n  nosuch = true;\n};\n",
			 3, "unknown setting 'fuse.nosuch'") == 0);
	/* A log setting spelt in the wrong group. */
	CHECK(load_fails("fuse = {\n  level = \"info\";\n};\n",
			 2, "unknown setting 'fuse.level'") == 0);
	/* A group nested inside a known group. */
	CHECK(load_fails("fuse = {\n  sub = { max_threads = 2; };\n};\n",
			 2, "unknown setting 'fuse.sub'") == 0);
}

static void test_err_unknown_group(void)
{
	CHECK(load_fails("state_dir = \"/x\";\nnet = {\n  port = 1;\n};\n",
			 2, "unknown setting 'net'") == 0);
	/* A setting name used as a group. */
	CHECK(load_fails("state_dir = { a = 1; };\n",
			 1, "unknown setting 'state_dir'") == 0);
}

static void test_err_group_as_scalar(void)
{
	CHECK(load_fails("fuse = 3;\n", 1, "'fuse' must be a group ({ ... })") == 0);
	CHECK(load_fails("\nlog = \"debug\";\n", 2, "'log' must be a group ({ ... })") == 0);
}

static void test_err_wrong_type_int(void)
{
	CHECK(load_fails("fuse = {\n  max_threads = 4.0;\n};\n",
			 2, "'fuse.max_threads' must be an integer") == 0);
	CHECK(load_fails("fuse = {\n  max_request_kib = \"64\";\n};\n",
			 2, "'fuse.max_request_kib' must be an integer") == 0);
	CHECK(load_fails("fuse = {\n  max_idle_threads = true;\n};\n",
			 2, "'fuse.max_idle_threads' must be an integer") == 0);
}

static void test_err_wrong_type_float(void)
{
	CHECK(load_fails("fuse = {\n  attr_timeout = \"1\";\n};\n",
			 2, "'fuse.attr_timeout' must be a number") == 0);
	CHECK(load_fails("fuse = {\n  negative_timeout = false;\n};\n",
			 2, "'fuse.negative_timeout' must be a number") == 0);
}

static void test_err_wrong_type_bool(void)
{
	CHECK(load_fails("fuse = {\n  clone_fd = 1;\n};\n",
			 2, "'fuse.clone_fd' must be a boolean (true or false)") == 0);
	CHECK(load_fails("fuse = {\n  keep_cache = \"yes\";\n};\n",
			 2, "'fuse.keep_cache' must be a boolean (true or false)") == 0);
}

static void test_err_wrong_type_string(void)
{
	CHECK(load_fails("state_dir = 5;\n", 1, "'state_dir' must be a string") == 0);
	CHECK(load_fails("state_dir = [\"/a\"];\n", 1, "'state_dir' must be a string") == 0);
}

static void test_err_wrong_loglevel(void)
{
	static const char *reason =
		"'log.level' must be one of error, warning, notice, info, debug";

	CHECK(load_fails("log = {\n  level = \"verbose\";\n};\n", 2, reason) == 0);
	CHECK(load_fails("log = {\n  level = \"INFO\";\n};\n", 2, reason) == 0);
	CHECK(load_fails("log = {\n  level = 3;\n};\n", 2, reason) == 0);
}

static void test_err_out_of_range(void)
{
	CHECK(load_fails("fuse = {\n  max_threads = 0;\n};\n", 2,
			 "'fuse.max_threads' is out of range (1..1024): 0") == 0);
	CHECK(load_fails("fuse = {\n  max_threads = 1025;\n};\n", 2,
			 "'fuse.max_threads' is out of range (1..1024): 1025") == 0);
	CHECK(load_fails("fuse = {\n  max_idle_threads = -1;\n};\n", 2,
			 "'fuse.max_idle_threads' is out of range (0..1024): -1") == 0);
	CHECK(load_fails("fuse = {\n  max_request_kib = 3;\n};\n", 2,
			 "'fuse.max_request_kib' is out of range (4..1024): 3") == 0);
	CHECK(load_fails("fuse = {\n  max_request_kib = 2048;\n};\n", 2,
			 "'fuse.max_request_kib' is out of range (4..1024): 2048") == 0);
	/* A 64-bit value must not wrap into range when stored in an int. */
	CHECK(load_fails("fuse = {\n  max_threads = 4294967312L;\n};\n", 2,
			 "'fuse.max_threads' is out of range (1..1024): 4294967312") == 0);
	CHECK(load_fails("fuse = {\n  attr_timeout = -0.5;\n};\n", 2,
			 "'fuse.attr_timeout' is out of range (0..31536000): -0.5") == 0);
	CHECK(load_fails("fuse = {\n  entry_timeout = 31536001;\n};\n", 2,
			 "'fuse.entry_timeout' is out of range (0..31536000): 3.1536e+07") == 0);
	CHECK(load_fails("fuse = {\n  negative_timeout = 1e9;\n};\n", 2,
			 "'fuse.negative_timeout' is out of range (0..31536000): 1e+09") == 0);
	CHECK(load_fails("relocation = {\n  busy_rate_mib = -1;\n};\n",
			 2, "'relocation.busy_rate_mib' is out of range (0..1000000): -1") == 0);
	CHECK(load_fails("relocation = {\n  copy_threads = 17;\n};\n",
			 2, "'relocation.copy_threads' is out of range (1..16): 17") == 0);
}

static void test_err_empty_state_dir(void)
{
	CHECK(load_fails("\nstate_dir = \"\";\n", 2, "'state_dir' must not be empty") == 0);
}

static void test_err_state_dir_too_long(void)
{
	size_t n = PATH_MAX + 64;
	char *text = malloc(n + 32);
	int ret;

	CHECK(text != NULL);
	strcpy(text, "state_dir = \"/");
	memset(text + strlen(text), 'a', PATH_MAX);
	strcpy(text + strlen("state_dir = \"/") + PATH_MAX, "\";\n");
	ret = load_fails(text, 1, "'state_dir' is too long");
	free(text);
	CHECK(ret == 0);
}

/* The error is at the first bad setting, after valid ones that must not be
 * applied either. */
static void test_err_leaves_config_untouched(void)
{
	CHECK(load_fails("state_dir = \"/elsewhere\";\n"
			 "log = { level = \"debug\"; };\n"
			 "fuse = {\n"
			 "  max_threads = 2;\n"
			 "  clone_fd = false;\n"
			 "  attr_timeout = 1.0;\n"
			 "  max_request_kib = 0;\n"
			 "};\n",
			 7, "'fuse.max_request_kib' is out of range (4..1024): 0") == 0);
}

static void test_err_syntax(void)
{
	struct config cfg, copy;
	char want[256];
	int ret;

	config_defaults(&cfg);
	memcpy(&copy, &cfg, sizeof(cfg));
	ret = config_load(&cfg, write_cfg("state_dir = \"/x\";\n"
					  "fuse = {\n"
					  "  max_threads = 4\n"
					  "  clone_fd = ;\n"
					  "};\n"), err, sizeof(err));
	CHECK_EQ(ret, -EINVAL);
	/* libconfig reports where it noticed: the line after the missing ';'. */
	snprintf(want, sizeof(want), "%s:4: syntax error: ", cfgfile);
	if (strncmp(err, want, strlen(want)) != 0)
		printf("# err \"%s\"\n", err);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK(strlen(err) > strlen(want));
	CHECK(memcmp(&cfg, &copy, sizeof(cfg)) == 0);

	ret = config_load(&cfg, write_cfg("\n\n\nstate_dir = \"unterminated;\n"), err, sizeof(err));
	CHECK_EQ(ret, -EINVAL);
	snprintf(want, sizeof(want), "%s:", cfgfile);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK(strstr(err, ": syntax error: ") != NULL);
	CHECK(memcmp(&cfg, &copy, sizeof(cfg)) == 0);

	/* A duplicate setting is refused by the parser, with its line. */
	ret = config_load(&cfg, write_cfg("fuse = { max_threads = 4; };\n"
					  "fuse = { max_threads = 5; };\n"), err, sizeof(err));
	CHECK_EQ(ret, -EINVAL);
	snprintf(want, sizeof(want), "%s:2: syntax error: ", cfgfile);
	if (strncmp(err, want, strlen(want)) != 0)
		printf("# err \"%s\"\n", err);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK(memcmp(&cfg, &copy, sizeof(cfg)) == 0);
}

static void test_err_missing_file(void)
{
	struct config cfg, copy;
	char path[256], want[512];
	int ret;

	config_defaults(&cfg);
	memcpy(&copy, &cfg, sizeof(cfg));
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	ret = config_load(&cfg, path, err, sizeof(err));
	CHECK_EQ(ret, -ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	CHECK_STR(err, want);
	CHECK(memcmp(&cfg, &copy, sizeof(cfg)) == 0);
}

/* A directory is not a config file: the load fails with an error naming it
 * (and does not end the process: libconfig's scanner exits on a read error,
 * so this runs in a child). */
static void test_err_directory(void)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct config cfg, copy;
		int ret;

		config_defaults(&cfg);
		memcpy(&copy, &cfg, sizeof(cfg));
		ret = config_load(&cfg, tmpdir, err, sizeof(err));
		_exit(ret < 0 && strncmp(err, tmpdir, strlen(tmpdir)) == 0 &&
		      memcmp(&cfg, &copy, sizeof(cfg)) == 0 ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		printf("# config_load of a directory: child %s %d\n",
		       WIFEXITED(status) ? "exited" : "killed by signal",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

/* A short error buffer is filled, NUL-ended, never overrun (ASan checks). */
static void test_err_short_buffer(void)
{
	struct config cfg;
	char *small;
	int ret;

	config_defaults(&cfg);
	small = malloc(8);
	CHECK(small != NULL);
	ret = config_load(&cfg, write_cfg("bogus = 1;\n"), small, 8);
	CHECK(ret == -EINVAL);
	CHECK(strlen(small) == 7);
	CHECK(strncmp(small, cfgfile, 7) == 0);
	free(small);

	small = malloc(strlen(cfgfile) + 6);
	CHECK(small != NULL);
	ret = config_load(&cfg, write_cfg("bogus = 1;\n"), small, strlen(cfgfile) + 6);
	CHECK(ret == -EINVAL);
	CHECK(strlen(small) == strlen(cfgfile) + 5);
	free(small);
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
	snprintf(cfgfile, sizeof(cfgfile), "%s/relocfs.conf", tmpdir);

	UNIT_RUN(test_defaults);
	UNIT_RUN(test_load_full);
	UNIT_RUN(test_load_bounds);
	UNIT_RUN(test_load_partial_keeps_rest);
	UNIT_RUN(test_load_shipped_sample);
	UNIT_RUN(test_err_unknown_top_level);
	UNIT_RUN(test_err_unknown_in_fuse);
	UNIT_RUN(test_err_unknown_group);
	UNIT_RUN(test_err_group_as_scalar);
	UNIT_RUN(test_err_wrong_type_int);
	UNIT_RUN(test_err_wrong_type_float);
	UNIT_RUN(test_err_wrong_type_bool);
	UNIT_RUN(test_err_wrong_type_string);
	UNIT_RUN(test_err_wrong_loglevel);
	UNIT_RUN(test_err_out_of_range);
	UNIT_RUN(test_err_empty_state_dir);
	UNIT_RUN(test_err_state_dir_too_long);
	UNIT_RUN(test_err_leaves_config_untouched);
	UNIT_RUN(test_err_syntax);
	UNIT_RUN(test_err_missing_file);
	UNIT_RUN(test_err_short_buffer);
	UNIT_RUN(test_err_directory);

	unlink(cfgfile);
	if (rmdir(tmpdir) < 0)
		perror(tmpdir);
	return UNIT_DONE();
}
