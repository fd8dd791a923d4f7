/* main: the relocfs daemon: command line, config, state dir lock, mount and
 * the FUSE session loop.
 *
 * Invariants: every check that can refuse the mount (arguments, paths,
 * options, config, the state dir lock) runs before anything is mounted, and
 * a refusal prints one line on stderr; usage errors exit 2, other failures 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <fuse_lowlevel.h>

#include "relocfs/config.h"
#include "relocfs/ctl.h"
#include "relocfs/failpoint.h"
#include "relocfs/fileutil.h"
#include "relocfs/fsops.h"
#include "relocfs/log.h"
#include "relocfs/ring.h"
#include "relocfs/statedir.h"
#include "relocfs/wire.h"

#define EXIT_USAGE 2

struct cli {
	char *source;
	char *mountpoint;
	char *config;
	char *state_dir;
	int show_help;
	int show_version;
	int extra_args;
};

enum { KEY_HELP, KEY_VERSION };

static const struct fuse_opt cli_opts[] = {
	{ "config=%s", offsetof(struct cli, config), 0 },
	{ "state_dir=%s", offsetof(struct cli, state_dir), 0 },
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	struct cli *cli = data;

	(void)out;
	switch (key) {
	case KEY_HELP:
		cli->show_help = 1;
		return 0;
	case KEY_VERSION:
		cli->show_version = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (cli->source == NULL)
			cli->source = strdup(arg);
		else if (cli->mountpoint == NULL)
			cli->mountpoint = strdup(arg);
		else
			cli->extra_args = 1;
		return 0;
	default:
		return 1;
	}
}

static void usage_line(void)
{
	fprintf(stderr, "relocfs: usage: relocfs [options] SOURCE MOUNTPOINT "
		"(relocfs --help for more)\n");
}

static void print_help(void)
{
	printf("usage: relocfs [options] SOURCE MOUNTPOINT\n"
	       "\n"
	       "Presents the datastore SOURCE at MOUNTPOINT; homes in it can be\n"
	       "relocated to other datastores while in use (see relocctl(8)).\n"
	       "\n"
	       "relocfs options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground, log to stderr\n"
	       "    -d                     debug: foreground, log level debug,\n"
	       "                           every FUSE request printed\n"
	       "    -s                     single-threaded\n"
	       "    -o config=FILE         settings file (default %s,\n"
	       "                           if it exists); see relocfs.conf(5)\n"
	       "    -o state_dir=DIR       persistent state (default %s)\n"
	       "    -o default_permissions always on: the kernel checks modes\n"
	       "\n", CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_STATE_DIR);
	fuse_lowlevel_help();
}

/* libfuse's own messages, one line each, through our log. libfuse builds
 * some lines from several calls, so pieces wait for their newline. */
static void fuse_log_to_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static __thread char line[512];
	size_t n = strlen(line);
	const char *msg;

	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	n = strlen(line);
	if (n == 0 || (line[n - 1] != '\n' && n < sizeof(line) - 1))
		return;
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	msg = strncmp(line, "fuse: ", 6) == 0 ? line + 6 : line;
	if (level <= FUSE_LOG_ERR)
		log_error("%s", msg);
	else if (level <= FUSE_LOG_NOTICE)
		log_notice("%s", msg);
	else
		log_debug("%s", msg);
	line[0] = '\0';
}

/* Canonical directory path for a command-line argument; exits on error. */
static int resolve_dir(const char *what, const char *arg, char *out)
{
	struct stat st;

	if (stat(arg, &st) < 0) {
		fprintf(stderr, "relocfs: %s '%s': %s\n", what, arg, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "relocfs: %s '%s' is not a directory\n", what, arg);
		return -1;
	}
	if (realpath(arg, out) == NULL) {
		fprintf(stderr, "relocfs: %s '%s': %s\n", what, arg, strerror(errno));
		return -1;
	}
	return 0;
}

/* "-ofsname=PATH" with the commas of PATH escaped for fuse_opt. */
static char *fsname_arg(const char *source)
{
	size_t n = strlen(source);
	char *s = malloc(n * 2 + 16);
	char *p;

	if (s == NULL)
		return NULL;
	p = s + sprintf(s, "-ofsname=");
	for (const char *q = source; *q; q++) {
		if (*q == ',' || *q == '\\')
			*p++ = '\\';
		*p++ = *q;
	}
	*p = '\0';
	return s;
}

static void raise_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Ring threads per kernel queue: fuse.max_threads spread over the queues
 * (one per possible CPU, every one needing an entry), at least one each;
 * 0 for no ring. */
static unsigned ring_threads_per_queue(const struct config *cfg, bool singlethread)
{
	unsigned nq = ring_queues();

	if (!cfg->fuse.io_uring || singlethread)
		return 0;
	return ((unsigned)cfg->fuse.max_threads + nq - 1) / nq;
}

/* Parses a decimal u64 field; false on anything else. */
static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* The control protocol's requests (see src/ctl.c and relocctl). */
static int ctl_dispatch(void *arg, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
	struct fs *fs = arg;
	const char *cmd = argv[0];
	uint64_t v[5];

	if (strcmp(cmd, "migrate") == 0 && argc == 8) {
		struct migrate_req req = { .home = argv[1], .datastore = argv[2] };
		uint64_t id;
		int ret;

		if (!parse_u64(argv[3], &v[0]) || !parse_u64(argv[4], &v[1]) ||
		    !parse_u64(argv[5], &v[2]) || !parse_u64(argv[6], &v[3]) ||
		    !parse_u64(argv[7], &v[4]) ||
		    v[1] > 60000 || v[2] > 1 || v[3] > 1 || v[4] > 1 || argv[2][0] != '/') {
			snprintf(err, errlen, "malformed migrate request");
			return -EINVAL;
		}
		req.opts.rate_bps = v[0];
		req.opts.pause_budget_ms = v[1] ? (unsigned)v[1] : (unsigned)fs->cfg->relocation.pause_budget_ms;
		if (req.opts.rate_bps == 0)
			req.opts.rate_bps = (uint64_t)fs->cfg->relocation.rate_limit_mib << 20;
		req.opts.busy_rate_bps = (uint64_t)fs->cfg->relocation.busy_rate_mib << 20;
		req.opts.copy_threads = (unsigned)fs->cfg->relocation.copy_threads;
		req.opts.journal_max_bytes = (uint64_t)fs->cfg->relocation.journal_max_mib << 20;
		req.opts.keep_source = v[2] || fs->cfg->relocation.keep_source;
		req.opts.manual_cutover = v[3];
		req.opts.verify = v[4];
		ret = home_migrate(fs, &req, &id, err, errlen);
		if (ret == 0)
			fprintf(out, "%llu\n", (unsigned long long)id);
		return ret;
	}
	if (strcmp(cmd, "status") == 0 && (argc == 2 || argc == 3) &&
	    (strcmp(argv[1], "json") == 0 || strcmp(argv[1], "text") == 0))
		return home_status(fs, argc == 3 ? argv[2] : NULL, strcmp(argv[1], "json") == 0, out);
	if (strcmp(cmd, "progress") == 0 && argc == 2) {
		if (!parse_u64(argv[1], &v[0])) {
			snprintf(err, errlen, "malformed progress request");
			return -EINVAL;
		}
		return home_progress(fs, v[0], out, err, errlen);
	}
	if (strcmp(cmd, "abort") == 0 && argc == 2)
		return home_abort(fs, argv[1], err, errlen);
	if (strcmp(cmd, "cutover") == 0 && argc == 2)
		return home_cutover(fs, argv[1], err, errlen);
	snprintf(err, errlen, "unknown or malformed request '%.32s'", cmd);
	return -EINVAL;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fopts;
	struct fuse_loop_config *loop_cfg = NULL;
	struct fuse_session *se = NULL;
	struct statedir sd = { .dirfd = -1, .lockfd = -1 };
	char source[PATH_MAX], mountpoint[PATH_MAX], err[PATH_MAX + 256];
	struct cli cli;
	struct config cfg;
	struct fs fs;
	int fs_ready = 0, mounted = 0, handlers = 0, ret = 1;
	struct ctl_server *ctl = NULL;
	char sock[PATH_MAX];
	char *fsname = NULL;
	int root_fd, r;

	memset(&cli, 0, sizeof(cli));
	memset(&fopts, 0, sizeof(fopts));
	log_init("relocfs", LOG_LVL_INFO);
	/* Buffers of 128 KiB and more (each worker's request buffer, copy and
	 * apply chunks, large indexes) are mmap'ed and given back when freed.
	 * glibc's default threshold slides up after such a free, after which
	 * they stay in the arenas of worker threads long gone: 140 MiB RSS
	 * after the bench's workloads instead of 6. Setting it stops that. */
	if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1)
		log_warning("could not set malloc's mmap threshold; memory may stay reserved");
	fuse_set_log_func(fuse_log_to_log);
	if (fuse_opt_parse(&args, &cli, cli_opts, cli_proc) < 0) {
		ret = EXIT_USAGE;
		goto out;
	}
	if (cli.show_help) {
		print_help();
		ret = 0;
		goto out;
	}
	if (cli.show_version) {
		printf("relocfs %s (libfuse %s)\n", RELOCFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (failpoint_init() < 0) {
		fprintf(stderr, "relocfs: RELOCFS_FAILPOINT '%s' is not NAME or NAME@N, or "
			"RELOCFS_FAILPOINT_HOLD '%s' is not NAME:/FILE, or up to 4 of them separated by commas\n",
			getenv("RELOCFS_FAILPOINT") ? getenv("RELOCFS_FAILPOINT") : "",
			getenv("RELOCFS_FAILPOINT_HOLD") ? getenv("RELOCFS_FAILPOINT_HOLD") : "");
		ret = EXIT_USAGE;
		goto out;
	}
	if (cli.source == NULL || cli.mountpoint == NULL || cli.extra_args) {
		usage_line();
		ret = EXIT_USAGE;
		goto out;
	}
	if (resolve_dir("SOURCE", cli.source, source) < 0 ||
	    resolve_dir("MOUNTPOINT", cli.mountpoint, mountpoint) < 0) {
		ret = EXIT_USAGE;
		goto out;
	}
	if (fileutil_path_within(mountpoint, source)) {
		fprintf(stderr, "relocfs: MOUNTPOINT '%s' is inside SOURCE '%s'\n",
			mountpoint, source);
		ret = EXIT_USAGE;
		goto out;
	}
	if (fileutil_path_within(source, mountpoint)) {
		fprintf(stderr, "relocfs: SOURCE '%s' is inside MOUNTPOINT '%s'\n",
			source, mountpoint);
		ret = EXIT_USAGE;
		goto out;
	}

	config_defaults(&cfg);
	if (cli.config != NULL || access(CONFIG_DEFAULT_PATH, F_OK) == 0) {
		if (config_load(&cfg, cli.config ? cli.config : CONFIG_DEFAULT_PATH,
				err, sizeof(err)) < 0) {
			fprintf(stderr, "relocfs: %s\n", err);
			goto out;
		}
	}
	if (cli.state_dir != NULL) {
		if (cli.state_dir[0] != '/') {
			fprintf(stderr, "relocfs: state_dir '%s' must be an absolute path\n",
				cli.state_dir);
			ret = EXIT_USAGE;
			goto out;
		}
		snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", cli.state_dir);
	}

	/* Our options first, so that a user's later subtype= wins. */
	fsname = fsname_arg(source);
	if (fsname == NULL ||
	    fuse_opt_insert_arg(&args, 1, "-osubtype=relocfs,default_permissions") < 0 ||
	    fuse_opt_insert_arg(&args, 1, fsname) < 0) {
		fprintf(stderr, "relocfs: out of memory\n");
		goto out;
	}
	if (fuse_parse_cmdline(&args, &fopts) != 0) {
		ret = EXIT_USAGE;
		goto out;
	}
	if (fopts.debug) {
		cfg.log_level = LOG_LVL_DEBUG;
		fopts.foreground = 1;
	}
	log_set_level(cfg.log_level);

	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
	if (se == NULL) {
		/* libfuse said why (an unknown option, mostly). */
		ret = EXIT_USAGE;
		goto out;
	}
	r = statedir_open(&sd, cfg.state_dir, source);
	if (r == -EBUSY) {
		fprintf(stderr, "relocfs: SOURCE '%s' is already mounted by another relocfs "
			"(lock %s/lock is held)\n", source, sd.path);
		goto out;
	}
	if (r == -EXDEV) {
		fprintf(stderr, "relocfs: state dir %s belongs to another source "
			"(see its 'source' file); use another state_dir\n", sd.path);
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "relocfs: state dir %s: %s\n", sd.path, strerror(-r));
		goto out;
	}
	root_fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0) {
		fprintf(stderr, "relocfs: SOURCE '%s': %s\n", source, strerror(errno));
		goto out;
	}
	r = fs_init(&fs, &cfg, root_fd, source, mountpoint, sd.dirfd);
	if (r < 0) {
		/* The state dir's problems were logged with their file names. */
		if (r != -EUCLEAN && r != -EBADMSG)
			fprintf(stderr, "relocfs: SOURCE '%s': %s\n", source, strerror(-r));
		goto out;
	}
	fs_ready = 1;
	fs.se = se;
	raise_nofile_limit();
	umask(0);	/* fsops applies the caller's umask (FUSE_CAP_DONT_MASK): no second one */
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = 1;
	if (fuse_session_mount(se, mountpoint) != 0)
		goto out;
	mounted = 1;
	r = wire_install(se, ring_threads_per_queue(&cfg, fopts.singlethread));
	if (r < 0) {
		fprintf(stderr, "relocfs: FUSE I/O hooks: %s\n", strerror(-r));
		goto out;
	}
	if (fuse_daemonize(fopts.foreground) != 0)
		goto out;
	if (!fopts.foreground)
		log_use_syslog();
	ctl_socket_path(mountpoint, sock, sizeof(sock));
	r = ctl_server_start(&ctl, sock, ctl_dispatch, &fs);
	if (r < 0)
		log_error("control socket %s: %s; relocctl cannot reach this mount",
			  sock, strerror(-r));
	log_notice("serving %s on %s (state %s, control %s)", source, mountpoint, sd.path, sock);

	if (fopts.singlethread) {
		r = fuse_session_loop(se);
	} else {
		loop_cfg = fuse_loop_cfg_create();
		if (loop_cfg == NULL)
			goto out;
		fuse_loop_cfg_set_clone_fd(loop_cfg, cfg.fuse.clone_fd || fopts.clone_fd);
		fuse_loop_cfg_set_max_threads(loop_cfg, (unsigned)cfg.fuse.max_threads);
		fuse_loop_cfg_set_idle_threads(loop_cfg, (unsigned)cfg.fuse.max_idle_threads);
		r = fuse_session_loop_mt(se, loop_cfg);
	}
	/* The loop returns the signal that ended it (libfuse's handler):
	 * SIGTERM, SIGINT and SIGHUP are a normal stop, as an unmount is. */
	ret = r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP ? 0 : 1;
	log_notice("unmounted %s", mountpoint);
out:
	/* Before the unmount (the ring's pending commands hold the device),
	 * and as libfuse's workers, before the control socket goes. */
	wire_stop();
	ctl_server_stop(ctl);
	if (mounted)
		fuse_session_unmount(se);
	if (se != NULL) {
		if (handlers)
			fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	if (loop_cfg != NULL)
		fuse_loop_cfg_destroy(loop_cfg);
	if (fs_ready)
		fs_destroy(&fs);
	statedir_close(&sd);
	free(fsname);
	free(fopts.mountpoint);
	free(cli.source);
	free(cli.mountpoint);
	free(cli.config);
	free(cli.state_dir);
	fuse_opt_free_args(&args);
	return ret;
}
