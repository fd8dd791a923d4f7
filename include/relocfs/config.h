/* config: the settings of one relocfs instance, their defaults and the
 * libconfig file that overrides them. */
#ifndef RELOCFS_CONFIG_H
#define RELOCFS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "relocfs/log.h"

#ifndef RELOCFS_SYSCONFDIR
#define RELOCFS_SYSCONFDIR "/etc"
#endif
#define CONFIG_DEFAULT_PATH RELOCFS_SYSCONFDIR "/relocfs/relocfs.conf"
#define CONFIG_DEFAULT_STATE_DIR "/var/lib/relocfs"

struct config_fuse {
	int max_threads;
	int max_idle_threads;
	bool clone_fd;
	double attr_timeout;
	double entry_timeout;
	double negative_timeout;
	bool keep_cache;
	bool writeback_cache;
	int max_request_kib;
	bool io_uring;		/* when the kernel offers it */
};

struct config_relocation {
	int pause_budget_ms;
	int copy_threads;
	int rate_limit_mib;
	int busy_rate_mib;
	bool keep_source;
	int journal_max_mib;
};

struct config {
	char state_dir[PATH_MAX];
	enum log_level log_level;
	struct config_fuse fuse;
	struct config_relocation relocation;
};

void config_defaults(struct config *cfg);

/* Reads FILE over the values already in cfg. On error returns a negative
 * errno, leaves cfg untouched and writes "FILE[:LINE]: reason" to err. */
int config_load(struct config *cfg, const char *file, char *err, size_t errlen);

#endif
