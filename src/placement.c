/* placement: owns the encoding of the placement table on disk.
 *
 * Format, one text file:
 *
 *   relocfs-placement 1
 *   <name>\t<datastore>\n          (one line per home off the source)
 *   xxh3 <16 hex digits>\n          (XXH3-64 of every byte before this line)
 *
 * Names and paths are stored with '%', '\t', '\n' and '\\' percent-encoded,
 * so any file name survives. The checksum line makes a truncated or
 * bit-flipped file an error rather than a silently shorter table.
 *
 * Invariants: the in-memory table has unique names; it is written only
 * through fileutil_write_atomic, so the file on disk is always a complete
 * old or new table. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "relocfs/fileutil.h"
#include "relocfs/placement.h"

#define PLACEMENT_MAGIC "relocfs-placement 1\n"
#define PLACEMENT_MAX (16u << 20)

void placement_init(struct placement *p)
{
	p->v = NULL;
	p->n = 0;
}

void placement_free(struct placement *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].datastore);
	}
	free(p->v);
	placement_init(p);
}

const char *placement_get(const struct placement *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].name, name) == 0)
			return p->v[i].datastore;
	return NULL;
}

int placement_set(struct placement *p, const char *name, const char *datastore)
{
	struct placement_ent *v;
	char *n, *d;

	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->v[i].name, name) != 0)
			continue;
		if (datastore == NULL) {
			free(p->v[i].name);
			free(p->v[i].datastore);
			p->v[i] = p->v[--p->n];
			return 0;
		}
		d = strdup(datastore);
		if (d == NULL)
			return -ENOMEM;
		free(p->v[i].datastore);
		p->v[i].datastore = d;
		return 0;
	}
	if (datastore == NULL)
		return 0;
	v = realloc(p->v, (p->n + 1) * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	p->v = v;
	n = strdup(name);
	d = strdup(datastore);
	if (n == NULL || d == NULL) {
		free(n);
		free(d);
		return -ENOMEM;
	}
	p->v[p->n].name = n;
	p->v[p->n].datastore = d;
	p->n++;
	return 0;
}

static int encode(FILE *fp, const char *s)
{
	for (; *s; s++) {
		if (*s == '%' || *s == '\t' || *s == '\n' || *s == '\\') {
			if (fprintf(fp, "%%%02x", (unsigned char)*s) < 0)
				return -EIO;
		} else if (fputc(*s, fp) == EOF) {
			return -EIO;
		}
	}
	return 0;
}

/* Decodes s[0..len) into a new string; NULL on a bad escape. */
static char *decode(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
		    !isxdigit((unsigned char)s[i + 2]) || sscanf(s + i + 1, "%2x", &v) != 1 || v == 0) {
			free(out);
			return NULL;
		}
		*o++ = (char)v;
		i += 2;
	}
	*o = '\0';
	return out;
}

int placement_save(int dirfd, const struct placement *p, bool *renamed)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	int ret = 0;

	if (renamed != NULL)
		*renamed = false;
	if (fp == NULL)
		return -ENOMEM;
	fputs(PLACEMENT_MAGIC, fp);
	for (size_t i = 0; i < p->n && ret == 0; i++) {
		ret = encode(fp, p->v[i].name);
		if (ret == 0 && fputc('\t', fp) == EOF)
			ret = -EIO;
		if (ret == 0)
			ret = encode(fp, p->v[i].datastore);
		if (ret == 0 && fputc('\n', fp) == EOF)
			ret = -EIO;
	}
	if (fflush(fp) != 0)
		ret = -ENOMEM;
	if (ret == 0)
		fprintf(fp, "xxh3 %016llx\n", (unsigned long long)XXH3_64bits(buf, len));
	if (fclose(fp) != 0 && ret == 0)
		ret = -ENOMEM;
	if (ret == 0)
		ret = fileutil_write_atomic(dirfd, PLACEMENT_FILE, buf, len, renamed);
	free(buf);
	return ret;
}

int placement_load(int dirfd, struct placement *p, char *err, size_t errlen)
{
	struct placement tmp;
	char *data = NULL, *line, *sumline;
	unsigned long long want;
	size_t len = 0, body;
	int ret, lineno = 1;

	placement_init(&tmp);
	ret = fileutil_read_all(dirfd, PLACEMENT_FILE, PLACEMENT_MAX, &data, &len);
	if (ret == -ENOENT) {
		placement_free(p);
		return 0;
	}
	if (ret < 0) {
		snprintf(err, errlen, "cannot read: %s",
			 ret == -EINVAL ? "not a regular file" : strerror(-ret));
		return ret;
	}
	ret = -EBADMSG;
	if (len < strlen(PLACEMENT_MAGIC) || memcmp(data, PLACEMENT_MAGIC, strlen(PLACEMENT_MAGIC)) != 0) {
		snprintf(err, errlen, "not a relocfs placement file of version 1");
		goto out;
	}
	/* The checksum line is the last one. */
	if (len < 2 || data[len - 1] != '\n') {
		snprintf(err, errlen, "truncated (no checksum line)");
		goto out;
	}
	data[len - 1] = '\0';
	sumline = strrchr(data, '\n');
	if (sumline == NULL || sscanf(sumline + 1, "xxh3 %16llx", &want) != 1 ||
	    strlen(sumline + 1) != 21) {
		snprintf(err, errlen, "truncated (no checksum line)");
		goto out;
	}
	body = (size_t)(sumline + 1 - data);
	if (XXH3_64bits(data, body) != want) {
		snprintf(err, errlen, "checksum mismatch (damaged)");
		goto out;
	}
	sumline[1] = '\0';	/* the body ends where the checksum line begins */
	line = data + strlen(PLACEMENT_MAGIC);
	while (*line) {
		char *nl = strchr(line, '\n'), *tab, *name, *ds;

		lineno++;
		if (nl != NULL)
			*nl = '\0';
		tab = strchr(line, '\t');
		if (tab == NULL) {
			snprintf(err, errlen, "line %d: no tab between home and datastore", lineno);
			goto out;
		}
		name = decode(line, (size_t)(tab - line));
		ds = decode(tab + 1, strlen(tab + 1));
		if (name == NULL || ds == NULL || *name == '\0' || ds[0] != '/' ||
		    strchr(name, '/') != NULL || placement_get(&tmp, name) != NULL ||
		    placement_set(&tmp, name, ds) < 0) {
			free(name);
			free(ds);
			snprintf(err, errlen, "line %d: bad entry", lineno);
			goto out;
		}
		free(name);
		free(ds);
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	placement_free(p);
	*p = tmp;
	placement_init(&tmp);
	ret = 0;
out:
	placement_free(&tmp);
	free(data);
	return ret;
}
