/* log: one line per event, to stderr in the foreground, to syslog when
 * daemonized. */
#ifndef RELOCFS_LOG_H
#define RELOCFS_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARNING,
	LOG_LVL_NOTICE,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Name of a level ("error", ...) or NULL; parse returns -EINVAL on unknown. */
const char *log_level_name(enum log_level lvl);
int log_level_parse(const char *name, enum log_level *out);

void log_init(const char *ident, enum log_level lvl);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* From now on lines go to syslog instead of stderr. */
void log_use_syslog(void);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...)   log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                   \
	do {                                                             \
		if (log_get_level() >= LOG_LVL_DEBUG)                    \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);             \
	} while (0)

#endif
