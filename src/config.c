/* config: owns the table of settings (name, type, range, default) and the
 * reading of a libconfig file against it.
 *
 * Invariants: the file is parsed into a scratch copy, which replaces the
 * caller's config only when every setting in the file is known, of the right
 * type and in range, so a bad file changes nothing. Every error names the
 * file and, where libconfig knows it, the line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <libconfig.h>

#include "relocfs/config.h"

enum setting_type { T_INT, T_FLOAT, T_BOOL, T_STRING, T_LOGLEVEL };

struct setting {
	const char *name;
	enum setting_type type;
	double min, max;
	size_t offset;
	size_t size; /* strings only */
};

#define OFF(f) offsetof(struct config, f)

static const struct setting settings[] = {
	{ "state_dir", T_STRING, 0, 0, OFF(state_dir), sizeof(((struct config *)0)->state_dir) },
	{ "log.level", T_LOGLEVEL, 0, 0, OFF(log_level), 0 },
	{ "fuse.max_threads", T_INT, 1, 1024, OFF(fuse.max_threads), 0 },
	{ "fuse.max_idle_threads", T_INT, 0, 1024, OFF(fuse.max_idle_threads), 0 },
	{ "fuse.clone_fd", T_BOOL, 0, 0, OFF(fuse.clone_fd), 0 },
	{ "fuse.attr_timeout", T_FLOAT, 0, 31536000, OFF(fuse.attr_timeout), 0 },
	{ "fuse.entry_timeout", T_FLOAT, 0, 31536000, OFF(fuse.entry_timeout), 0 },
	{ "fuse.negative_timeout", T_FLOAT, 0, 31536000, OFF(fuse.negative_timeout), 0 },
	{ "fuse.keep_cache", T_BOOL, 0, 0, OFF(fuse.keep_cache), 0 },
	{ "fuse.writeback_cache", T_BOOL, 0, 0, OFF(fuse.writeback_cache), 0 },
	{ "fuse.max_request_kib", T_INT, 4, 1024, OFF(fuse.max_request_kib), 0 },
	{ "fuse.io_uring", T_BOOL, 0, 0, OFF(fuse.io_uring), 0 },
	{ "relocation.pause_budget_ms", T_INT, 1, 60000, OFF(relocation.pause_budget_ms), 0 },
	{ "relocation.copy_threads", T_INT, 1, 16, OFF(relocation.copy_threads), 0 },
	{ "relocation.rate_limit_mib", T_INT, 0, 1000000, OFF(relocation.rate_limit_mib), 0 },
	{ "relocation.busy_rate_mib", T_INT, 0, 1000000, OFF(relocation.busy_rate_mib), 0 },
	{ "relocation.keep_source", T_BOOL, 0, 0, OFF(relocation.keep_source), 0 },
	{ "relocation.journal_max_mib", T_INT, 0, 16777216, OFF(relocation.journal_max_mib), 0 },
};

static const char *const groups[] = { "log", "fuse", "relocation" };

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", CONFIG_DEFAULT_STATE_DIR);
	cfg->log_level = LOG_LVL_INFO;
	cfg->fuse.max_threads = 64;
	cfg->fuse.max_idle_threads = 8;
	cfg->fuse.clone_fd = true;
	cfg->fuse.attr_timeout = 86400.0;
	cfg->fuse.entry_timeout = 86400.0;
	cfg->fuse.negative_timeout = 1.0;
	cfg->fuse.keep_cache = true;
	cfg->fuse.writeback_cache = false;
	cfg->fuse.max_request_kib = 1024;
	cfg->fuse.io_uring = true;
	cfg->relocation.pause_budget_ms = 100;
	cfg->relocation.copy_threads = 4;
	cfg->relocation.rate_limit_mib = 0;
	cfg->relocation.busy_rate_mib = 64;
	cfg->relocation.keep_source = false;
	cfg->relocation.journal_max_mib = 65536;
}

static const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

static int is_group_name(const char *name)
{
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (strcmp(groups[i], name) == 0)
			return 1;
	return 0;
}

static int where(char *err, size_t errlen, const char *file, const config_setting_t *s)
{
	int line = (int)config_setting_source_line(s);

	if (line > 0)
		return snprintf(err, errlen, "%s:%d: ", file, line);
	return snprintf(err, errlen, "%s: ", file);
}

__attribute__((format(printf, 5, 6)))
static int fail(char *err, size_t errlen, const char *file,
		const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	int n = where(err, errlen, file, s);

	if (n < 0 || (size_t)n >= errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int apply_one(struct config *cfg, const struct setting *def,
		     const config_setting_t *s, const char *file,
		     char *err, size_t errlen)
{
	char *field = (char *)cfg + def->offset;
	int type = config_setting_type(s);
	enum log_level lvl;
	long long iv;
	double fv;

	switch (def->type) {
	case T_INT:
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
			return fail(err, errlen, file, s, "'%s' must be an integer", def->name);
		iv = config_setting_get_int64(s);
		if (iv < (long long)def->min || iv > (long long)def->max)
			return fail(err, errlen, file, s, "'%s' is out of range (%.0f..%.0f): %lld",
				    def->name, def->min, def->max, iv);
		{
			int v = (int)iv;

			memcpy(field, &v, sizeof(v));
		}
		return 0;
	case T_FLOAT:
		if (type == CONFIG_TYPE_FLOAT)
			fv = config_setting_get_float(s);
		else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
			fv = (double)config_setting_get_int64(s);
		else
			return fail(err, errlen, file, s, "'%s' must be a number", def->name);
		if (!(fv >= def->min && fv <= def->max))
			return fail(err, errlen, file, s, "'%s' is out of range (%.0f..%.0f): %g",
				    def->name, def->min, def->max, fv);
		memcpy(field, &fv, sizeof(fv));
		return 0;
	case T_BOOL:
		if (type != CONFIG_TYPE_BOOL)
			return fail(err, errlen, file, s, "'%s' must be a boolean (true or false)", def->name);
		{
			bool v = config_setting_get_bool(s) != 0;

			memcpy(field, &v, sizeof(v));
		}
		return 0;
	case T_STRING:
		if (type != CONFIG_TYPE_STRING)
			return fail(err, errlen, file, s, "'%s' must be a string", def->name);
		if (config_setting_get_string(s)[0] == '\0')
			return fail(err, errlen, file, s, "'%s' must not be empty", def->name);
		if (def->offset == OFF(state_dir) && config_setting_get_string(s)[0] != '/')
			return fail(err, errlen, file, s, "'%s' must be an absolute path", def->name);
		if (strlen(config_setting_get_string(s)) >= def->size)
			return fail(err, errlen, file, s, "'%s' is too long", def->name);
		snprintf(field, def->size, "%s", config_setting_get_string(s));
		return 0;
	case T_LOGLEVEL:
		if (type != CONFIG_TYPE_STRING ||
		    log_level_parse(config_setting_get_string(s), &lvl) < 0)
			return fail(err, errlen, file, s,
				    "'%s' must be one of error, warning, notice, info, debug", def->name);
		memcpy(field, &lvl, sizeof(lvl));
		return 0;
	}
	return fail(err, errlen, file, s, "'%s': internal error", def->name);
}

static int apply_group(struct config *cfg, const config_setting_t *grp,
		       const char *prefix, const char *file, char *err, size_t errlen)
{
	int n = config_setting_length(grp);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		char full[256];
		const struct setting *def;
		int ret;

		if (name == NULL)
			return fail(err, errlen, file, s, "unnamed setting in '%s'", prefix);
		snprintf(full, sizeof(full), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (config_setting_type(s) == CONFIG_TYPE_GROUP) {
			if (*prefix || !is_group_name(name))
				return fail(err, errlen, file, s, "unknown setting '%s'", full);
			ret = apply_group(cfg, s, full, file, err, errlen);
			if (ret < 0)
				return ret;
			continue;
		}
		def = setting_find(full);
		if (def == NULL) {
			if (!*prefix && is_group_name(name))
				return fail(err, errlen, file, s, "'%s' must be a group ({ ... })", full);
			return fail(err, errlen, file, s, "unknown setting '%s'", full);
		}
		ret = apply_one(cfg, def, s, file, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int config_load(struct config *cfg, const char *file, char *err, size_t errlen)
{
	struct config scratch = *cfg;
	config_t lc;
	struct stat st;
	FILE *fp;
	int ret;

	fp = fopen(file, "r");
	if (fp == NULL) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", file, strerror(-ret));
		return ret;
	}
	/* libconfig's scanner exits the process on a directory. */
	if (fstat(fileno(fp), &st) == 0 && !S_ISREG(st.st_mode)) {
		fclose(fp);
		snprintf(err, errlen, "%s: %s", file,
			 S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	config_init(&lc);
	if (config_read(&lc, fp) != CONFIG_TRUE) {
		snprintf(err, errlen, "%s:%d: syntax error: %s", file,
			 config_error_line(&lc), config_error_text(&lc));
		ret = -EINVAL;
		goto out;
	}
	ret = apply_group(&scratch, config_root_setting(&lc), "", file, err, errlen);
	if (ret == 0)
		*cfg = scratch;
out:
	config_destroy(&lc);
	fclose(fp);
	return ret;
}
