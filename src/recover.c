/* recover: owns crash recovery of relocations.
 *
 * A relocation's state dir "reloc-N" holds its state file (phase, home,
 * datastores; written atomically at every phase change) and its journal
 * generations. What recovery does depends only on the phase and on the
 * placement, so it is deterministic, and running it again after a crash in
 * the middle of it gives the same result:
 *
 * - placement names the destination: the flip was committed, once the
 *   destination was complete (flushed in full only after it, before the
 *   journal is deleted); the phase is then cutover or
 *   cleanup (anything else is refused: with a relocation back to the
 *   source, a lost placement entry looks like a flip). In cutover, replay
 *   what is left of the journal onto D (trees checked first), flush it,
 *   record phase cleanup; then remove the source copy (unless keep), drop
 *   the journal.
 * - phase prepare or copy: no generation was ever dropped, so the source
 *   plus every journal record, replayed in order, is the current state. Roll
 *   back: replay onto the source, remove the destination copy.
 * - phase failed or aborted: the rollback had completed. Remove what is left.
 * - phase converge, ready or cutover: generations were applied to the
 *   destination and dropped, so only the destination plus the remaining
 *   records is current. Roll forward: check that the destination tree has
 *   the source tree's names and types, and before cutover no other names
 *   (a crash between a namespace change and its mirror would show here;
 *   then refuse rather than guess), replay
 *   the remaining records onto the destination, copy attributes and times
 *   from the source, flush, record phase cutover, commit the placement,
 *   remove the source copy.
 * - no state file: a relocation that never started (no record in its
 *   journal), or one the engine forgot after a completed rollback (state
 *   renamed to RECOVER_FORGOTTEN). Records otherwise: refuse.
 *
 * Invariants: every generation is read through and checked before anything
 * is written, so a refusal changes nothing; a relocation dir is deleted
 * oldest generation first, then its state, so no crash leaves older records
 * alone to be replayed over newer data; the placement naming D is on disk
 * only with phase cutover or cleanup.
 *
 * Records name files by the source inode number; the map from inode to path
 * comes from a walk of the source home, which holds the namespace. Records
 * of files no longer linked there are dropped: nobody can reach their data.
 * A mapped file that cannot be opened where the journal is replayed is an
 * error: its data is current. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "relocfs/failpoint.h"
#include "relocfs/fileutil.h"
#include "relocfs/journal.h"
#include "relocfs/log.h"
#include "relocfs/recover.h"
#include "relocfs/treeutil.h"

#define STATE_MAX 16384

struct rstate {
	unsigned long long id;
	char home[NAME_MAX + 1];
	char from[PATH_MAX];
	char to[PATH_MAX];
	char phase[32];
	int keep;
};

struct target {
	ino_t ino;
	char *rel;
	int fd;			/* opened on first use */
};

struct replay {
	struct target *v;
	size_t n, cap;
	int root_fd;		/* the home on the datastore replayed onto */
	long records;
	const char *bad;	/* the mapped path that could not be opened */
};

/* Copies a value that must fit; false when it does not. */
static bool field(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

int recover_state_format(char *buf, size_t size, unsigned long long id, const char *home,
			 const char *from, const char *to, const char *phase, bool keep)
{
	int n = snprintf(buf, size, "relocfs-relocation 1\nid %llu\nhome %s\nfrom %s\nto %s\n"
			 "phase %s\nkeep %d\n", id, home, from, to, phase, keep ? 1 : 0);

	if (n <= 0 || (size_t)n + 32 > size)
		return -ENAMETOOLONG;
	n += snprintf(buf + n, size - (size_t)n, "xxh3 %016llx\n",
		      (unsigned long long)XXH3_64bits(buf, (size_t)n));
	return n;
}

static int parse_state(const char *data, size_t len, struct rstate *st)
{
	const char *sum = NULL;
	unsigned long long want;
	char line[PATH_MAX + 16];
	const char *p = data;
	int seen = 0;

	memset(st, 0, sizeof(*st));
	if (len == 0 || data[len - 1] != '\n')
		return -EBADMSG;
	for (const char *q = data; q < data + len - 1; q++)
		if (*q == '\n')
			sum = q + 1;
	if (sum == NULL || sscanf(sum, "xxh3 %16llx\n", &want) != 1 ||
	    XXH3_64bits(data, (size_t)(sum - data)) != want)
		return -EBADMSG;
	if (strncmp(data, "relocfs-relocation 1\n", 21) != 0)
		return -EPROTO;
	p += 21;
	while (p < sum) {
		const char *nl = memchr(p, '\n', (size_t)(sum - p));
		size_t n;

		if (nl == NULL)
			return -EBADMSG;
		n = (size_t)(nl - p);
		if (n >= sizeof(line))
			return -EBADMSG;
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (strncmp(line, "id ", 3) == 0)
			st->id = strtoull(line + 3, NULL, 10);
		else if (strncmp(line, "home ", 5) == 0)
			seen |= field(st->home, sizeof(st->home), line + 5) ? 1 : 0;
		else if (strncmp(line, "from ", 5) == 0)
			seen |= field(st->from, sizeof(st->from), line + 5) ? 2 : 0;
		else if (strncmp(line, "to ", 3) == 0)
			seen |= field(st->to, sizeof(st->to), line + 3) ? 4 : 0;
		else if (strncmp(line, "phase ", 6) == 0)
			seen |= field(st->phase, sizeof(st->phase), line + 6) ? 8 : 0;
		else if (strncmp(line, "keep ", 5) == 0)
			st->keep = atoi(line + 5) != 0;
	}
	if (seen != 15 || st->home[0] == '\0' || strchr(st->home, '/') != NULL ||
	    st->from[0] != '/' || st->to[0] != '/')
		return -EBADMSG;
	return 0;
}

/* ---------------------------------------------------------------- replay */

static int map_add(struct replay *rp, ino_t ino, const char *rel)
{
	for (size_t i = 0; i < rp->n; i++)
		if (rp->v[i].ino == ino)
			return 0;	/* a second link: one path is enough */
	if (rp->n == rp->cap) {
		size_t cap = rp->cap ? rp->cap * 2 : 64;
		struct target *v = realloc(rp->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		rp->v = v;
		rp->cap = cap;
	}
	rp->v[rp->n].ino = ino;
	rp->v[rp->n].fd = -1;
	rp->v[rp->n].rel = strdup(rel);
	if (rp->v[rp->n].rel == NULL)
		return -ENOMEM;
	rp->n++;
	return 0;
}

/* Maps the regular files below dirfd (path prefix rel) by inode. */
static int map_tree(struct replay *rp, int dirfd, const char *rel)
{
	DIR *dp = treeutil_opendir(dirfd, ".");
	int ret = 0;

	if (dp == NULL)
		return -errno;
	for (struct dirent *de; ret == 0 && (de = readdir(dp)) != NULL;) {
		char path[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof(path))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			ret = map_add(rp, st.st_ino, path);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0)
				continue;
			ret = map_tree(rp, sub, path);
			close(sub);
		}
	}
	closedir(dp);
	return ret;
}

static void map_free(struct replay *rp)
{
	for (size_t i = 0; i < rp->n; i++) {
		free(rp->v[i].rel);
		if (rp->v[i].fd >= 0)
			close(rp->v[i].fd);
	}
	free(rp->v);
	rp->v = NULL;
	rp->n = rp->cap = 0;
}

/* The descriptor of the file the source maps ino to, on the datastore
 * replayed onto; NULL *rel when the source has no such file. */
static int target_fd(struct replay *rp, ino_t ino, const char **rel)
{
	*rel = NULL;
	for (size_t i = 0; i < rp->n; i++) {
		if (rp->v[i].ino != ino)
			continue;
		*rel = rp->v[i].rel;
		if (rp->v[i].fd < 0) {
			int fd = treeutil_open_beneath(rp->root_fd, rp->v[i].rel, O_WRONLY);

			if (fd < 0)
				return fd;
			rp->v[i].fd = fd;
		}
		return rp->v[i].fd;
	}
	return -ENOENT;
}

static int replay_rec(const struct journal_rec *rec, const void *data,
		      const struct journal_loc *loc, void *arg)
{
	struct replay *rp = arg;
	const char *rel;
	int fd = target_fd(rp, (ino_t)rec->file_id, &rel);
	int ret = 0;

	(void)loc;
	if (rel == NULL)
		return 0;	/* unlinked since: unreachable data */
	if (fd < 0) {
		/* The source has it, so its data is current: a copy that cannot
		 * be opened (lost by a power cut, say) is an error, never a
		 * reason to drop acknowledged records. */
		rp->bad = rel;
		return fd;
	}
	switch (rec->type) {
	case JOURNAL_WRITE:
		ret = fileutil_pwrite_full(fd, data, rec->length, (off_t)rec->offset);
		break;
	case JOURNAL_TRUNCATE:
		if (ftruncate(fd, (off_t)rec->offset) < 0)
			ret = -errno;
		break;
	case JOURNAL_ZERO:
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)rec->offset, (off_t)rec->length) < 0)
			ret = -errno;
		break;
	default:
		ret = -EBADMSG;
	}
	if (ret == 0)
		rp->records++;
	return ret;
}

static int check_rec(const struct journal_rec *rec, const void *data,
		     const struct journal_loc *loc, void *arg)
{
	(void)rec;
	(void)data;
	(void)loc;
	(void)arg;
	return 0;
}

static const char *gen_problem(long n)
{
	switch (n) {
	case -EBADMSG:
		return "not a relocfs journal generation of version 1 (damaged)";
	case -EINVAL:
		return "not a regular file";
	case -ENODATA:
		return "holds no complete header, and is not the newest generation";
	case -ERANGE:
		return "a record's offset and length overflow a file offset (damaged)";
	default:
		return strerror((int)-n);
	}
}

/* Reads every generation of rdir through before anything is written, so a
 * damaged one refuses the recovery with nothing changed. *gens (malloc'd)
 * and *ng receive the generations to replay, oldest first: a newest one
 * left with no complete header (a crash while it was created) is left out,
 * with a warning. *records receives the number of good records. */
static int check_journal(int rdir, const char *rname, uint32_t **gens, size_t *ng,
			 long *records, char *err, size_t errlen)
{
	int ret = journal_list(rdir, gens, ng);

	*records = 0;
	if (ret < 0) {
		snprintf(err, errlen, "%s: listing its journal: %s", rname, strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < *ng; i++) {
		uint64_t torn = 0;
		long n = journal_scan(rdir, (*gens)[i], check_rec, NULL, &torn);

		if (n == -ENODATA && i + 1 == *ng) {
			log_warning("recovery: %s/gen-%08x: no complete header (relocfs stopped while "
				    "creating it); treated as empty", rname, (*gens)[i]);
			(*ng)--;
			break;
		}
		if (n < 0) {
			snprintf(err, errlen, "%s/gen-%08x: %s", rname, (*gens)[i], gen_problem(n));
			ret = (int)n;
			break;
		}
		*records += n;
		if (torn > 0)
			log_warning("recovery: %s/gen-%08x: dropped a torn tail of %llu bytes "
				    "(a write that was never acknowledged)", rname, (*gens)[i],
				    (unsigned long long)torn);
	}
	if (ret < 0) {
		free(*gens);
		*gens = NULL;
		*ng = 0;
	}
	return ret;
}

/* Replays every generation of rdir, oldest first, onto rp->root_fd (named
 * root in messages), once all of them were checked. */
static int replay_journal(int rdir, const char *rname, const char *root, struct replay *rp,
			  char *err, size_t errlen)
{
	uint32_t *gens;
	size_t ng;
	long records;
	int ret = check_journal(rdir, rname, &gens, &ng, &records, err, errlen);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < ng; i++) {
		uint64_t torn = 0;
		long n = journal_scan(rdir, gens[i], replay_rec, rp, &torn);

		if (n < 0) {
			if (rp->bad != NULL)
				snprintf(err, errlen, "%s/gen-%08x: replaying onto %s/%s: %s; the source "
					 "has that file", rname, gens[i], root, rp->bad,
					 strerror((int)-n));
			else
				snprintf(err, errlen, "%s/gen-%08x: replaying onto %s: %s", rname,
					 gens[i], root, gen_problem(n));
			ret = (int)n;
			break;
		}
	}
	free(gens);
	for (size_t i = 0; ret == 0 && i < rp->n; i++)
		if (rp->v[i].fd >= 0 && fdatasync(rp->v[i].fd) < 0)
			ret = -errno;
	return ret;
}

/* ------------------------------------------------------------ tree checks */

/* True when every name below a (dir fd) exists below b with the same type. */
static int same_names(int a, int b, const char *rel, char *bad, size_t badlen)
{
	DIR *dp = treeutil_opendir(a, ".");
	int ret = 1;

	if (dp == NULL)
		return -errno;
	for (struct dirent *de; ret == 1 && (de = readdir(dp)) != NULL;) {
		struct stat sa, sb;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(bad, badlen, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		if (fstatat(a, de->d_name, &sa, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (fstatat(b, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    (sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
			ret = 0;
			break;
		}
		if (S_ISDIR(sa.st_mode)) {
			int x = openat(a, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int y = openat(b, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			char sub[PATH_MAX];

			snprintf(sub, sizeof(sub), "%s", bad);
			ret = x < 0 || y < 0 ? -EIO : same_names(x, y, sub, bad, badlen);
			if (x >= 0)
				close(x);
			if (y >= 0)
				close(y);
		}
	}
	closedir(dp);
	return ret;
}

/* Attributes and times of every object of the source tree onto the
 * destination's, then a flush of the destination's directories. */
static int sync_attrs(int s, int d)
{
	DIR *dp = treeutil_opendir(s, ".");
	int ret = 0;

	if (dp == NULL)
		return -errno;
	for (struct dirent *de; ret == 0 && (de = readdir(dp)) != NULL;) {
		struct stat st;
		int so, dob;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(s, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int x = openat(s, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int y = openat(d, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			ret = x < 0 || y < 0 ? -EIO : sync_attrs(x, y);
			if (x >= 0)
				close(x);
			if (y >= 0)
				close(y);
			if (ret < 0)
				break;
		}
		so = openat(s, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		dob = openat(d, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (so >= 0 && dob >= 0) {
			ret = treeutil_copy_attrs(so, dob, &st);
			if (ret == 0 && !S_ISREG(st.st_mode))
				ret = treeutil_set_times(dob, &st, NULL);
		}
		if (so >= 0)
			close(so);
		if (dob >= 0)
			close(dob);
	}
	closedir(dp);
	if (ret == 0 && fsync(d) < 0)
		ret = -errno;
	return ret;
}

/* -------------------------------------------------------------- recovery */

/* The generations oldest first, each unlink flushed, then the state, then
 * the directory: a crash in between leaves the state with the newest
 * generations, whose replay in order ends on current data, never older
 * ones alone (which would be replayed over newer data). */
static void remove_rdir(int state_dirfd, const char *rname)
{
	int rdir = openat(state_dirfd, rname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int ret;

	if (rdir < 0) {
		log_warning("recovery: could not open %s to remove it: %s", rname, strerror(errno));
		return;
	}
	ret = journal_remove(rdir);
	if (ret == 0 && unlinkat(rdir, "state", 0) < 0 && errno != ENOENT)
		ret = -errno;
	if (ret == 0 && fsync(rdir) < 0)
		ret = -errno;
	close(rdir);
	if (ret == 0)
		ret = treeutil_remove(state_dirfd, rname);
	if (ret < 0)
		log_warning("recovery: could not remove %s: %s (what is left is replayed again, "
			    "which changes nothing)", rname, strerror(-ret));
	fsync(state_dirfd);
}

static int open_home(const char *ds, const char *home)
{
	int dfd = open(ds, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;

	if (dfd < 0)
		return -errno;
	fd = openat(dfd, home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(dfd);
	return fd;
}

static void remove_home(const char *ds, const char *home)
{
	int dfd = open(ds, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return;
	if (treeutil_remove(dfd, home) < 0)
		log_warning("recovery: could not remove %s/%s", ds, home);
	fsync(dfd);
	close(dfd);
}

static bool phase_is(const struct rstate *st, const char *a, const char *b, const char *c)
{
	return strcmp(st->phase, a) == 0 || (b && strcmp(st->phase, b) == 0) ||
	       (c && strcmp(st->phase, c) == 0);
}

/* Stores the state file with its phase set to phase: recovery records its
 * progress as the engine does, so that the placement naming the
 * destination always comes with phase cutover or cleanup on disk. */
static int record_phase(int rdir, const struct rstate *st, const char *phase)
{
	char buf[3 * PATH_MAX];
	int n = recover_state_format(buf, sizeof(buf), st->id, st->home, st->from, st->to,
				     phase, st->keep);

	return n < 0 ? n : fileutil_write_atomic(rdir, "state", buf, (size_t)n, NULL);
}

/* Both homes of a relocation, each failure naming the one that failed. */
static int open_both(const struct rstate *st, const char *rname, int *s, int *d,
		     char *err, size_t errlen)
{
	*s = open_home(st->from, st->home);
	if (*s < 0) {
		snprintf(err, errlen, "%s: the source home %s/%s: %s", rname, st->from, st->home,
			 strerror(-*s));
		return *s;
	}
	*d = open_home(st->to, st->home);
	if (*d < 0) {
		snprintf(err, errlen, "%s: the destination home %s/%s: %s", rname, st->to, st->home,
			 strerror(-*d));
		return *d;
	}
	return 0;
}

/* Refuses unless every name of the source tree is in the destination's with
 * its type: then the map of the source's inodes names files D has. With
 * both, also unless every name of D is in the source: before the cutover
 * the source holds the namespace and changes reach D after it, so an extra
 * name in D is a rename or unlink not yet mirrored (a RENAME_EXCHANGE of
 * two names of one type would still pass: it would need a marker). */
static int check_trees(const struct rstate *st, const char *rname, int s, int d, bool both,
		       char *err, size_t errlen)
{
	char bad[PATH_MAX] = "";
	int ret = same_names(s, d, "", bad, sizeof(bad));

	if (ret > 0 && !both)
		return 0;
	if (ret <= 0) {
		if (ret == 0)
			ret = -EUCLEAN;
		snprintf(err, errlen, "%s: %s/%s and %s/%s differ at '%s'; relocfs will not guess "
			 "which is current", rname, st->from, st->home, st->to, st->home, bad);
		return ret;
	}
	ret = same_names(d, s, "", bad, sizeof(bad));
	if (ret > 0)
		return 0;
	if (ret == 0)
		ret = -EUCLEAN;
	snprintf(err, errlen, "%s: %s/%s has '%s', which %s/%s lacks or holds with another type "
		 "(a namespace change not yet mirrored?); relocfs will not guess which is current",
		 rname, st->to, st->home, bad, st->from, st->home);
	return ret;
}

/* Replays the journal of a flipped relocation onto D and flushes D: the
 * map comes from the source tree, which must match D's. */
static int replay_flip(int rdir, const char *rname, const struct rstate *st,
		       char *err, size_t errlen)
{
	struct replay rp = { .root_fd = -1 };
	char root[PATH_MAX + NAME_MAX + 2];
	int s = -1, d = -1, ret;

	ret = open_both(st, rname, &s, &d, err, errlen);
	if (ret == 0)
		ret = check_trees(st, rname, s, d, false, err, errlen);
	if (ret < 0)
		goto out;
	snprintf(root, sizeof(root), "%s/%s", st->to, st->home);
	ret = map_tree(&rp, s, "");
	if (ret == 0) {
		rp.root_fd = d;
		ret = replay_journal(rdir, rname, root, &rp, err, errlen);
	}
	if (ret == 0)
		ret = treeutil_sync_tree(d);
	if (ret < 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s: replaying onto %s: %s", rname, root, strerror(-ret));
		goto out;
	}
	failpoint("recover-replayed");
	log_notice("recovery: %s of %s had cut over to %s; %ld journal records replayed onto it",
		   rname, st->home, st->to, rp.records);
out:
	map_free(&rp);
	if (s >= 0)
		close(s);
	if (d >= 0)
		close(d);
	return ret;
}

/* The placement names the destination: the flip was committed. In phase
 * cutover the destination may not be durable yet, but the journal is (no
 * fsync was acknowledged since: they waited): replay it onto D, flush D,
 * then record phase cleanup before the source goes, as the engine does, so
 * a crash in the removal leaves a state that does not need the source. */
static int finish_flip(int state_dirfd, int rdir, const char *rname,
		       const struct rstate *st, char *err, size_t errlen)
{
	uint32_t *gens = NULL;
	size_t ng = 0;
	long records = 0;
	int ret = 0;

	if (!phase_is(st, "cutover", "cleanup", NULL)) {
		/* The engine writes that placement only in phase cutover; with a
		 * relocation back to the source, a lost placement file looks the
		 * same as a flip: refuse rather than remove the only copy. */
		ret = -EUCLEAN;
		snprintf(err, errlen, "%s/state: the placement has %s on %s, its destination, but "
			 "the phase is '%s' (a flip is recorded only in phase cutover or cleanup); "
			 "relocfs will not guess which copy is current", rname, st->home, st->to,
			 st->phase);
		goto out;
	}
	if (phase_is(st, "cutover", NULL, NULL)) {
		/* The engine deletes the journal only once D is flushed: with
		 * no record left there is nothing to replay, and D's names may
		 * have moved on from the source's since the flip (the home lives
		 * there). With records left, a name changed on D since the flip
		 * refuses the recovery, as a file D lost does. */
		ret = check_journal(rdir, rname, &gens, &ng, &records, err, errlen);
		if (ret == 0 && records > 0)
			ret = replay_flip(rdir, rname, st, err, errlen);
		if (ret < 0)
			goto out;
		ret = record_phase(rdir, st, "cleanup");
		if (ret < 0) {
			snprintf(err, errlen, "%s/state: recording the phase cleanup: %s", rname,
				 strerror(-ret));
			goto out;
		}
	}
	log_notice("recovery: %s of %s had cut over to %s; finishing its cleanup", rname,
		   st->home, st->to);
	if (!st->keep && strcmp(st->from, st->to) != 0)
		remove_home(st->from, st->home);
	remove_rdir(state_dirfd, rname);
out:
	free(gens);
	return ret;
}

/* No state file: the relocation died before its first state write, when
 * its journal could hold no record yet, or the engine had forgotten it
 * after a completed rollback. Records otherwise mean the state was lost:
 * refuse, as they may be acknowledged writes the source lacks. */
static int no_state(int state_dirfd, int rdir, const char *rname, char *err, size_t errlen)
{
	uint32_t *gens = NULL;
	size_t ng = 0;
	long records = 0;
	int ret;

	if (faccessat(rdir, RECOVER_FORGOTTEN, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		log_notice("recovery: %s had rolled back, and its state was forgotten (the state "
			   "dir could not take the final phase); removed", rname);
		remove_rdir(state_dirfd, rname);
		return 0;
	}
	ret = check_journal(rdir, rname, &gens, &ng, &records, err, errlen);
	free(gens);
	if (ret < 0)
		return ret;
	if (records > 0) {
		snprintf(err, errlen, "%s: no state file, but its journal holds %ld records (writes "
			 "the source may not have); keep the directory and see relocfs(8), RECOVERY",
			 rname, records);
		return -EUCLEAN;
	}
	log_notice("recovery: %s has no state file and an empty journal: a relocation that never "
		   "started; removed", rname);
	remove_rdir(state_dirfd, rname);
	return 0;
}

static int recover_one(int state_dirfd, const char *rname, const char *source,
		       struct placement *pl, char *err, size_t errlen)
{
	struct replay rp = { .root_fd = -1 };
	struct rstate st;
	struct stat pst;
	const char *cur;
	char *data = NULL, root[PATH_MAX + NAME_MAX + 2];
	size_t len = 0;
	int rdir = -1, s = -1, d = -1, ret;

	rdir = openat(state_dirfd, rname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rdir < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", rname, strerror(errno));
		goto out;
	}
	ret = fileutil_read_all(rdir, "state", STATE_MAX, &data, &len);
	if (ret == -ENOENT) {
		ret = no_state(state_dirfd, rdir, rname, err, errlen);
		goto out;
	}
	if (ret == 0)
		ret = parse_state(data, len, &st);
	if (ret < 0) {
		snprintf(err, errlen, "%s/state: %s; keep the directory (its journal holds writes "
			 "the source may not have) and see relocfs(8), RECOVERY", rname,
			 ret == -EPROTO ? "written by another version of relocfs" :
			 ret == -EBADMSG ? "damaged (checksum or format)" :
			 ret == -EINVAL ? "not a regular file" : strerror(-ret));
		goto out;
	}
	/* placement_load takes a missing file for an empty table (a state dir
	 * that never relocated anything), but only the placement file can have
	 * put the home on a datastore other than the source. */
	if (strcmp(st.from, source) != 0 &&
	    fstatat(state_dirfd, PLACEMENT_FILE, &pst, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -EUCLEAN;
		snprintf(err, errlen, "%s/state: home %s moves from %s, which only the placement file "
			 "can record, but the state dir has no placement file; relocfs will not guess "
			 "where the home is", rname, st.home, st.from);
		goto out;
	}
	cur = placement_get(pl, st.home);
	if (cur == NULL)
		cur = source;
	if (strcmp(cur, st.to) == 0) {
		ret = finish_flip(state_dirfd, rdir, rname, &st, err, errlen);
		goto out;
	}
	if (strcmp(cur, st.from) != 0) {
		ret = -EBADMSG;
		snprintf(err, errlen, "%s/state: home %s moves from %s, but the placement has it on %s",
			 rname, st.home, st.from, cur);
		goto out;
	}
	s = open_home(st.from, st.home);
	if (s < 0) {
		ret = s;
		snprintf(err, errlen, "%s: the source home %s/%s: %s", rname, st.from, st.home, strerror(-s));
		goto out;
	}
	if (phase_is(&st, "failed", "aborted", NULL)) {
		log_notice("recovery: %s of %s had rolled back; removing what was left", rname, st.home);
		remove_home(st.to, st.home);
		remove_rdir(state_dirfd, rname);
		goto out;
	}
	ret = map_tree(&rp, s, "");
	if (ret < 0) {
		snprintf(err, errlen, "%s: walking %s/%s: %s", rname, st.from, st.home, strerror(-ret));
		goto out;
	}
	if (phase_is(&st, "prepare", "copy", NULL)) {
		snprintf(root, sizeof(root), "%s/%s", st.from, st.home);
		rp.root_fd = s;
		ret = replay_journal(rdir, rname, root, &rp, err, errlen);
		if (ret < 0)
			goto out;
		failpoint("recover-replayed");
		log_notice("recovery: %s of %s rolled back: %ld journal records replayed onto %s",
			   rname, st.home, rp.records, st.from);
		remove_home(st.to, st.home);
		remove_rdir(state_dirfd, rname);
		goto out;
	}
	if (!phase_is(&st, "converge", "ready", "cutover")) {
		ret = -EBADMSG;
		snprintf(err, errlen, "%s/state: unknown phase '%s'", rname, st.phase);
		goto out;
	}
	d = open_home(st.to, st.home);
	if (d < 0) {
		ret = d;
		snprintf(err, errlen, "%s: the destination home %s/%s, which holds data the source "
			 "lacks, cannot be opened: %s", rname, st.to, st.home, strerror(-d));
		goto out;
	}
	/* In cutover the flip may have happened, and D's names moved on. */
	ret = check_trees(&st, rname, s, d, !phase_is(&st, "cutover", NULL, NULL), err, errlen);
	if (ret < 0)
		goto out;
	snprintf(root, sizeof(root), "%s/%s", st.to, st.home);
	rp.root_fd = d;
	ret = replay_journal(rdir, rname, root, &rp, err, errlen);
	if (ret == 0)
		failpoint("recover-replayed");
	if (ret == 0)
		ret = sync_attrs(s, d);
	/* The placement names D from here on: every file of it durable first
	 * (the copy's own flushes may not have reached it before the crash). */
	if (ret == 0)
		ret = treeutil_sync_tree(d);
	if (ret < 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s: completing %s on %s: %s", rname, st.home, st.to,
				 strerror(-ret));
		goto out;
	}
	/* Phase cutover before the placement names D, as the engine has it:
	 * a placement naming D in an earlier phase is refused. */
	ret = record_phase(rdir, &st, "cutover");
	if (ret < 0) {
		snprintf(err, errlen, "%s/state: recording the phase cutover: %s", rname, strerror(-ret));
		goto out;
	}
	ret = placement_set(pl, st.home, strcmp(st.to, source) == 0 ? NULL : st.to);
	if (ret == 0)
		ret = placement_save(state_dirfd, pl, NULL);
	if (ret < 0) {
		snprintf(err, errlen, "%s: saving the placement: %s", rname, strerror(-ret));
		goto out;
	}
	failpoint("recover-committed");
	log_notice("recovery: %s of %s completed on %s: %ld journal records replayed",
		   rname, st.home, st.to, rp.records);
	if (!st.keep)
		remove_home(st.from, st.home);
	remove_rdir(state_dirfd, rname);
out:
	map_free(&rp);
	free(data);
	if (s >= 0)
		close(s);
	if (d >= 0)
		close(d);
	if (rdir >= 0)
		close(rdir);
	return ret;
}

int recover_relocations(int state_dirfd, const char *source, struct placement *pl,
			char *err, size_t errlen)
{
	DIR *dp = treeutil_opendir(state_dirfd, ".");
	int ret = 0;
	char names[64][NAME_MAX + 1];
	int n = 0;

	err[0] = '\0';
	if (dp == NULL)
		return -errno;
	for (struct dirent *de; (de = readdir(dp)) != NULL;) {
		if (strncmp(de->d_name, "reloc-", 6) != 0)
			continue;
		if (n == 64) {
			closedir(dp);
			snprintf(err, errlen, "more than 64 unfinished relocations in the state dir");
			return -E2BIG;
		}
		snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
	}
	closedir(dp);
	for (int i = 0; i < n && ret == 0; i++)
		ret = recover_one(state_dirfd, names[i], source, pl, err, errlen);
	return ret;
}
