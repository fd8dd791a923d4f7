/* relocctl: the admin client of relocfs mounts: starts, follows, cuts over
 * and aborts relocations of homes, and shows where every home lives.
 *
 * It finds the daemon of a PATH by the relocfs mount that holds it in
 * /proc/self/mountinfo, and talks to it over that mount's control socket
 * (src/ctl.c). Exit status: 0 done, 1 refused or failed, 2 usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relocfs/ctl.h"
#include "relocfs/verify.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: relocctl migrate PATH --to DATASTORE [--wait] [--rate MIB_PER_S]\n"
		"                        [--pause-budget MS] [--keep-source] [--manual-cutover]\n"
		"                        [--verify]\n"
		"       relocctl status [PATH] [--json]\n"
		"       relocctl cutover PATH\n"
		"       relocctl abort PATH\n"
		"       relocctl verify PATH --against DIR\n"
		"       relocctl --help | --version\n"
		"\n"
		"PATH is a home in a relocfs mount (/mnt/ds1/vm1); for status, also the\n"
		"mount itself. See relocctl(8).\n");
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("relocctl: usage: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (relocctl --help for more)\n", stderr);
	return EXIT_USAGE;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

struct mount {
	char point[PATH_MAX];
	char source[PATH_MAX];
};

/* Every relocfs mount, in mountinfo order; returns the count. */
static int list_mounts(struct mount *v, int max)
{
	FILE *fp = fopen("/proc/self/mountinfo", "r");
	char line[3 * PATH_MAX];
	int n = 0;

	if (fp == NULL)
		return -errno;
	while (n < max && fgets(line, sizeof(line), fp) != NULL) {
		char *field[6], *sep = strstr(line, " - "), *save = NULL, *p = line;
		char fstype[64], src[PATH_MAX];

		if (sep == NULL)
			continue;
		*sep = '\0';
		for (int i = 0; i < 6; i++, p = NULL)
			field[i] = strtok_r(p, " ", &save);
		if (field[4] == NULL ||
		    sscanf(sep + 3, "%63s %4095s", fstype, src) != 2 ||
		    strcmp(fstype, "fuse.relocfs") != 0)
			continue;
		unescape(field[4]);
		unescape(src);
		snprintf(v[n].point, sizeof(v[n].point), "%s", field[4]);
		snprintf(v[n].source, sizeof(v[n].source), "%s", src);
		n++;
	}
	fclose(fp);
	return n;
}

/* The mount holding path and the home in it ("" for the mount itself, NULL
 * when deeper than a home). Prints the reason and returns -1 on error. */
static int locate(const char *path, struct mount *m, char *home, size_t len, bool *deep)
{
	struct mount mounts[64];
	char real[PATH_MAX];
	size_t best = 0;
	int n, found = -1;

	if (realpath(path, real) == NULL) {
		fprintf(stderr, "relocctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = list_mounts(mounts, 64);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(mounts[i].point);

		if (strncmp(real, mounts[i].point, l) == 0 && (real[l] == '/' || real[l] == '\0') &&
		    l >= best) {
			best = l;
			found = i;
		}
	}
	if (found < 0) {
		fprintf(stderr, "relocctl: %s is not inside a relocfs mount\n", path);
		return -1;
	}
	*m = mounts[found];
	snprintf(home, len, "%s", real[best] == '/' ? real + best + 1 : "");
	*deep = strchr(home, '/') != NULL;
	return 0;
}

/* Sends a request to m's daemon; prints a refusal and returns -1, else
 * hands the payload back (malloc'd). */
static int call(const struct mount *m, int argc, const char *const *argv, char **payload)
{
	char sock[PATH_MAX], *reply = NULL;
	int ret;

	ctl_socket_path(m->point, sock, sizeof(sock));
	ret = ctl_call(sock, argc, argv, &reply);
	if (ret < 0) {
		fprintf(stderr, "relocctl: cannot reach the relocfs daemon of %s (%s): %s\n",
			m->point, sock, strerror(-ret));
		return -1;
	}
	if (strncmp(reply, "ok\n", 3) == 0) {
		memmove(reply, reply + 3, strlen(reply + 3) + 1);
		*payload = reply;
		return 0;
	}
	if (strncmp(reply, "error\t", 6) == 0)
		fprintf(stderr, "relocctl: %s", reply + 6);
	else
		fprintf(stderr, "relocctl: unexpected reply from the daemon of %s\n", m->point);
	if (reply[0] == '\0' || reply[strlen(reply) - 1] != '\n')
		fputc('\n', stderr);
	free(reply);
	return -1;
}

static void human(char *buf, size_t len, double b)
{
	if (b >= 1073741824.0)
		snprintf(buf, len, "%.2f GiB", b / 1073741824.0);
	else
		snprintf(buf, len, "%.1f MiB", b / 1048576.0);
}

/* Follows relocation id to its end; the exit status of migrate --wait. */
static int follow(const struct mount *m, const char *home, const char *id)
{
	const char *argv[] = { "progress", id };
	bool tty = isatty(STDERR_FILENO);
	char last_phase[32] = "";
	time_t last_print = 0;

	for (;;) {
		char *p = NULL, *f[10], *s;
		char copied[32], total[32], rate[32], journal[32];
		const char *phase;
		int k = 0;

		if (call(m, 2, argv, &p) < 0)
			return EXIT_FAIL;
		p[strcspn(p, "\n")] = '\0';
		/* phase, copied, total, rate, eta, journal, rounds, pause, error
		 * (may be empty), then yielding from daemons that send it. */
		for (s = p; s != NULL && k < 10;)
			f[k++] = strsep(&s, "\t");
		if (k < 9) {
			fprintf(stderr, "relocctl: malformed progress from the daemon\n");
			free(p);
			return EXIT_FAIL;
		}
		human(copied, sizeof(copied), strtod(f[1], NULL));
		human(total, sizeof(total), strtod(f[2], NULL));
		human(rate, sizeof(rate), strtod(f[3], NULL));
		human(journal, sizeof(journal), strtod(f[5], NULL));
		if (strcmp(f[0], "done") == 0) {
			if (tty)
				fputc('\n', stderr);
			printf("relocation %s of %s done: %s copied, %s round%s, cutover pause %s ms\n",
			       id, home, total, f[6], strcmp(f[6], "1") == 0 ? "" : "s", f[7]);
			free(p);
			return 0;
		}
		if (strcmp(f[0], "failed") == 0 || strcmp(f[0], "aborted") == 0) {
			if (tty)
				fputc('\n', stderr);
			if (strcmp(f[0], "aborted") == 0)
				fprintf(stderr, "relocctl: relocation %s of %s was aborted; the source is current\n",
					id, home);
			else
				fprintf(stderr, "relocctl: relocation %s of %s failed and was rolled back: %s\n",
					id, home, f[8][0] ? f[8] : "unknown error");
			free(p);
			return EXIT_FAIL;
		}
		/* The copy slowed for the application's reads. */
		phase = k > 9 && strcmp(f[9], "1") == 0 ? "copy (yielding to reads)" : f[0];
		if (tty) {
			fprintf(stderr, "\r%-24s %s of %s  %s/s  ETA %ss  journal %s  round %s   ",
				phase, copied, total, rate, f[4], journal, f[6]);
		} else if (strcmp(last_phase, f[0]) != 0 || time(NULL) - last_print >= 2) {
			fprintf(stderr, "relocation %s of %s: %s, %s of %s copied, %s/s, ETA %ss, journal %s, round %s\n",
				id, home, phase, copied, total, rate, f[4], journal, f[6]);
			last_print = time(NULL);
		}
		snprintf(last_phase, sizeof(last_phase), "%s", f[0]);
		free(p);
		usleep(200000);
	}
}

static int need_home(const char *path, struct mount *m, char *home, size_t len)
{
	bool deep;

	if (locate(path, m, home, len, &deep) < 0)
		return -1;
	if (home[0] == '\0' || deep) {
		fprintf(stderr, "relocctl: %s is not a home of the relocfs mount %s\n", path, m->point);
		return -1;
	}
	return 0;
}

static int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "wait", no_argument, NULL, 'w' },
		{ "rate", required_argument, NULL, 'r' },
		{ "pause-budget", required_argument, NULL, 'p' },
		{ "keep-source", no_argument, NULL, 'k' },
		{ "manual-cutover", no_argument, NULL, 'm' },
		{ "verify", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *to = NULL;
	char home[PATH_MAX], dst[2 * PATH_MAX + 2], rate[32] = "0", budget[32] = "0", *payload = NULL, *end;
	bool wait = false, keep = false, manual = false, verify = false;
	struct mount m;
	int c, ret;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'w':
			wait = true;
			break;
		case 'r': {
			double v = strtod(optarg, &end);

			if (end == optarg || *end || !(v > 0) || v > 1e6)
				return usage_error("--rate '%s' is not a positive number of MiB/s", optarg);
			snprintf(rate, sizeof(rate), "%llu", (unsigned long long)llround(v * 1048576.0));
			break;
		}
		case 'p': {
			long v = strtol(optarg, &end, 10);

			if (end == optarg || *end || v < 1 || v > 60000)
				return usage_error("--pause-budget '%s' is not a number of milliseconds (1..60000)", optarg);
			snprintf(budget, sizeof(budget), "%ld", v);
			break;
		}
		case 'k':
			keep = true;
			break;
		case 'm':
			manual = true;
			break;
		case 'v':
			verify = true;
			break;
		default:
			return usage_error("migrate: unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_error("relocctl migrate PATH --to DATASTORE [options]");
	if (to == NULL)
		return usage_error("migrate needs --to DATASTORE");
	if (need_home(argv[optind], &m, home, sizeof(home)) < 0)
		return EXIT_FAIL;
	/* The daemon resolves it again; send an absolute path. */
	if (to[0] != '/') {
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			fprintf(stderr, "relocctl: %s\n", strerror(errno));
			return EXIT_FAIL;
		}
		snprintf(dst, sizeof(dst), "%s/%s", cwd, to);
	} else {
		snprintf(dst, sizeof(dst), "%s", to);
	}
	{
		const char *req[] = { "migrate", home, dst, rate, budget, keep ? "1" : "0",
				      manual ? "1" : "0", verify ? "1" : "0" };

		if (call(&m, 8, req, &payload) < 0)
			return EXIT_FAIL;
	}
	payload[strcspn(payload, "\n")] = '\0';
	printf("%s\n", payload);
	fflush(stdout);
	ret = wait ? follow(&m, home, payload) : 0;
	free(payload);
	return ret;
}

static int cmd_simple(const char *what, int argc, char **argv)
{
	char home[PATH_MAX], *payload = NULL;
	struct mount m;

	if (argc != 2)
		return usage_error("relocctl %s PATH", what);
	if (need_home(argv[1], &m, home, sizeof(home)) < 0)
		return EXIT_FAIL;
	{
		const char *req[] = { what, home };

		if (call(&m, 2, req, &payload) < 0)
			return EXIT_FAIL;
	}
	free(payload);
	return 0;
}

/* Compares any two copies of a tree; needs no daemon. Exit status like
 * diff(1): 0 the same, 1 differences, 2 trouble. */
static int cmd_verify(int argc, char **argv)
{
	const char *path = NULL, *against = NULL;
	struct verify_result res;
	char err[PATH_MAX + 256];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--against") == 0 && i + 1 < argc)
			against = argv[++i];
		else if (strncmp(argv[i], "--against=", 10) == 0)
			against = argv[i] + 10;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return usage_error("verify: unknown or incomplete option '%s'", argv[i]);
		else if (path == NULL)
			path = argv[i];
		else
			return usage_error("relocctl verify PATH --against DIR");
	}
	if (path == NULL || against == NULL || *path == '\0' || *against == '\0')
		return usage_error("relocctl verify PATH --against DIR");
	if (verify_trees(path, against, stdout, &res, err, sizeof(err)) < 0) {
		fflush(stdout);
		fprintf(stderr, "relocctl: verify: %s\n", err);
		return EXIT_USAGE;
	}
	printf("verify: %llu objects, %llu bytes compared: %s%llu differ%s\n",
	       (unsigned long long)res.objects, (unsigned long long)res.bytes,
	       res.differ ? "" : "none, ", (unsigned long long)res.differ,
	       res.differ ? "" : " (the same)");
	return res.differ ? EXIT_FAIL : 0;
}

static int cmd_status(int argc, char **argv)
{
	const char *path = NULL;
	struct mount mounts[64];
	bool json = false;
	int n;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] == '-')
			return usage_error("status: unknown option '%s'", argv[i]);
		else if (path == NULL)
			path = argv[i];
		else
			return usage_error("relocctl status [PATH] [--json]");
	}
	if (path != NULL) {
		char home[PATH_MAX], *payload = NULL;
		struct mount m;
		bool deep;

		if (locate(path, &m, home, sizeof(home), &deep) < 0)
			return EXIT_FAIL;
		if (deep) {
			fprintf(stderr, "relocctl: %s is not a home of the relocfs mount %s\n", path, m.point);
			return EXIT_FAIL;
		}
		const char *req[] = { "status", json ? "json" : "text", home };

		if (call(&m, home[0] ? 3 : 2, req, &payload) < 0)
			return EXIT_FAIL;
		fputs(payload, stdout);
		free(payload);
		return 0;
	}
	n = list_mounts(mounts, 64);
	if (n <= 0) {
		fprintf(stderr, "relocctl: no relocfs mount\n");
		return EXIT_FAIL;
	}
	if (json && n > 1)
		fputs("[", stdout);
	for (int i = 0; i < n; i++) {
		const char *req[] = { "status", json ? "json" : "text" };
		char *payload = NULL;

		if (call(&mounts[i], 2, req, &payload) < 0)
			return EXIT_FAIL;
		if (!json)
			printf("%s%s (%s):\n", i ? "\n" : "", mounts[i].point, mounts[i].source);
		else if (n > 1 && i > 0)
			fputs(",", stdout);
		fputs(payload, stdout);
		free(payload);
	}
	if (json && n > 1)
		fputs("]\n", stdout);
	return 0;
}

int main(int argc, char *argv[])
{
	if (argc < 2)
		return usage_error("relocctl COMMAND [ARGS]");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("relocctl %s\n", RELOCFS_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "migrate") == 0)
		return cmd_migrate(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "cutover") == 0 || strcmp(argv[1], "abort") == 0)
		return cmd_simple(argv[1], argc - 1, argv + 1);
	return usage_error("unknown command '%s'", argv[1]);
}
