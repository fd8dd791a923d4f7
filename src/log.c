/* log: owns where diagnostic lines go and the current level.
 *
 * Invariants: one call, one line (a trailing newline is added, embedded ones
 * are not produced by callers); the level check is a relaxed atomic load so
 * that debug calls on the data path cost nothing when disabled. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <syslog.h>

#include "relocfs/log.h"

static const char *const level_names[] = {
	"error", "warning", "notice", "info", "debug",
};

static const int level_syslog[] = {
	LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG,
};

static int cur_level = LOG_LVL_INFO;
static int to_syslog;
static const char *log_ident = "relocfs";

const char *log_level_name(enum log_level lvl)
{
	if ((unsigned)lvl >= sizeof(level_names) / sizeof(level_names[0]))
		return NULL;
	return level_names[lvl];
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_init(const char *ident, enum log_level lvl)
{
	log_ident = ident;
	log_set_level(lvl);
}

void log_set_level(enum log_level lvl)
{
	__atomic_store_n(&cur_level, (int)lvl, __ATOMIC_RELAXED);
}

enum log_level log_get_level(void)
{
	return (enum log_level)__atomic_load_n(&cur_level, __ATOMIC_RELAXED);
}

void log_use_syslog(void)
{
	openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	__atomic_store_n(&to_syslog, 1, __ATOMIC_RELEASE);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if ((int)lvl > __atomic_load_n(&cur_level, __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (__atomic_load_n(&to_syslog, __ATOMIC_ACQUIRE)) {
		syslog(level_syslog[lvl], "%s", line);
		return;
	}
	/* One fprintf so that concurrent threads do not interleave a line. */
	if (lvl == LOG_LVL_ERROR || lvl == LOG_LVL_WARNING || lvl == LOG_LVL_NOTICE)
		fprintf(stderr, "%s: %s\n", log_ident, line);
	else
		fprintf(stderr, "%s: %s: %s\n", log_ident, level_names[lvl], line);
}
