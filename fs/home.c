/* home: owns the homes of a mount and the datastores they live on (the
 * placement table in memory and on disk), and is the engine's host: it
 * validates and starts relocations, quiesces homes for them, and keeps the
 * relocations of this mount for status.
 *
 * Invariants:
 * - A home's datastore changes only inside a quiesced flip, and only after
 *   the new placement is in the state dir: a crash finds either the old
 *   placement with the journal, or the new one with the data on the
 *   destination. Both recover to the destination (the state says cutover).
 * - Once the new placement is renamed into place the flip goes on, even if
 *   the directory's flush failed: a rollback would delete the copy that
 *   placement names. It is then flushed again (host_placement_sync) before
 *   the relocation may remove the source copy.
 * - At most one relocation is attached to a home; home->reloc changes only
 *   with the home quiesced.
 * - Names, datastores, placement and the relocation list change under
 *   fs->homes_lock; no syscall on a datastore runs under it except opening
 *   a datastore root once.
 * - A home is allocated only for an entry that exists or is being created
 *   at the root, or that the placement names (home_get; home_find never
 *   allocates otherwise): looking up missing names costs no memory. Homes
 *   are hashed by name; a rename at the root rehashes both. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "relocfs/fileutil.h"
#include "relocfs/failpoint.h"
#include "relocfs/fsops.h"
#include "relocfs/home.h"
#include "relocfs/log.h"
#include "relocfs/recover.h"
#include "relocfs/treeutil.h"

#define RELOC_ID_FILE "relocation-id"
#define HISTORY_MAX 64

struct fs_datastore {
	struct fs_datastore *next;
	char path[PATH_MAX];
	int fd;
};

struct reloc_entry {
	struct reloc_entry *next;
	struct reloc *r;
	struct home *home;
	uint64_t id;
	bool finished;
};

/* --------------------------------------------------------- datastores */

static int datastore_fd_locked(struct fs *fs, const char *path)
{
	struct fs_datastore *d;
	int fd;

	if (strcmp(path, fs->source) == 0)
		return fs->inodes.root.fd;
	for (d = fs->datastores; d != NULL; d = d->next)
		if (strcmp(d->path, path) == 0)
			return d->fd;
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		close(fd);
		return -ENOMEM;
	}
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->fd = fd;
	d->next = fs->datastores;
	fs->datastores = d;
	return fd;
}

int fs_datastore_fd(struct fs *fs, const char *path)
{
	int fd;

	pthread_mutex_lock(&fs->homes_lock);
	fd = datastore_fd_locked(fs, path);
	pthread_mutex_unlock(&fs->homes_lock);
	return fd;
}

/* Canonical path of the datastore h lives on. */
static void home_datastore(struct fs *fs, struct home *h, char *buf, size_t len)
{
	const char *p;

	pthread_mutex_lock(&fs->homes_lock);
	p = placement_get(&fs->placement, h->name);
	snprintf(buf, len, "%s", p != NULL ? p : fs->source);
	pthread_mutex_unlock(&fs->homes_lock);
}

/* -------------------------------------------------------------- homes */

/* FNV-1a: homes are looked up by name on every root-level request. */
static size_t home_bucket(const char *name)
{
	uint32_t x = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
		x = (x ^ *p) * 16777619u;
	return x % HOME_BUCKETS;
}

static struct home *find_locked(struct fs *fs, const char *name)
{
	struct home *h;

	for (h = fs->homes[home_bucket(name)]; h != NULL; h = h->next)
		if (strcmp(h->name, name) == 0)
			break;
	return h;
}

static void link_locked(struct fs *fs, struct home *h)
{
	struct home **pp = &fs->homes[home_bucket(h->name)];

	h->next = *pp;
	*pp = h;
}

static void unlink_locked(struct fs *fs, struct home *h)
{
	struct home **pp = &fs->homes[home_bucket(h->name)];

	while (*pp != h)
		pp = &(*pp)->next;
	*pp = h->next;
}

static struct home *new_locked(struct fs *fs, const char *name)
{
	pthread_rwlockattr_t attr;
	const char *placed;
	struct home *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->fs = fs;
	snprintf(h->name, sizeof(h->name), "%s", name);
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&h->gate, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&h->files_lock, NULL);
	pthread_cond_init(&h->flush_cond, NULL);
	h->ds_fd = fs->inodes.root.fd;
	placed = placement_get(&fs->placement, name);
	if (placed != NULL) {
		int fd = datastore_fd_locked(fs, placed);

		if (fd >= 0)
			h->ds_fd = fd;
		else
			log_error("home %s: its datastore %s cannot be opened: %s",
				  name, placed, strerror(-fd));
	}
	link_locked(fs, h);
	fs->nhomes++;
	return h;
}

struct home *home_get(struct fs *fs, const char *name)
{
	struct home *h;

	pthread_mutex_lock(&fs->homes_lock);
	h = find_locked(fs, name);
	if (h == NULL)
		h = new_locked(fs, name);
	pthread_mutex_unlock(&fs->homes_lock);
	return h;
}

struct home *home_find(struct fs *fs, const char *name)
{
	struct home *h;

	pthread_mutex_lock(&fs->homes_lock);
	h = find_locked(fs, name);
	/* The placement table is bounded by the admin's relocations. */
	if (h == NULL && placement_get(&fs->placement, name) != NULL)
		h = new_locked(fs, name);
	pthread_mutex_unlock(&fs->homes_lock);
	return h;
}

int home_lookup(struct fs *fs, const char *name, struct home **hp)
{
	struct stat st;
	int ret;

	*hp = home_find(fs, name);
	if (*hp != NULL)
		return 0;
	if (fstatat(fs->inodes.root.fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		/* Made (and maybe placed) meanwhile: its home says where. */
		*hp = home_find(fs, name);
		return *hp != NULL ? 0 : ret;
	}
	*hp = home_get(fs, name);
	return *hp != NULL ? 0 : -ENOMEM;
}

size_t home_count(struct fs *fs)
{
	size_t n;

	pthread_mutex_lock(&fs->homes_lock);
	n = fs->nhomes;
	pthread_mutex_unlock(&fs->homes_lock);
	return n;
}

void home_swap_names(struct fs *fs, struct home *a, struct home *b)
{
	char tmp[NAME_MAX + 1];

	if (a == b)
		return;
	pthread_mutex_lock(&fs->homes_lock);
	unlink_locked(fs, a);
	unlink_locked(fs, b);
	memcpy(tmp, a->name, sizeof(tmp));
	memcpy(a->name, b->name, sizeof(tmp));
	memcpy(b->name, tmp, sizeof(tmp));
	link_locked(fs, a);
	link_locked(fs, b);
	pthread_mutex_unlock(&fs->homes_lock);
}

/* Under homes_lock: the table to disk. Once a save succeeded, the whole
 * table is durable, an earlier unflushed one's entries too. */
static int save_placement(struct fs *fs, bool *renamed)
{
	int ret = placement_save(fs->state_dirfd, &fs->placement, renamed);

	if (ret == 0)
		fs->placement_unflushed = false;
	return ret;
}

int home_removed(struct fs *fs, struct home *h)
{
	int ret = 0;

	pthread_mutex_lock(&fs->homes_lock);
	if (placement_get(&fs->placement, h->name) != NULL) {
		placement_set(&fs->placement, h->name, NULL);
		ret = save_placement(fs, NULL);
		if (ret < 0)
			log_error("home %s: cannot save the placement: %s", h->name, strerror(-ret));
	}
	h->ds_fd = fs->inodes.root.fd;
	pthread_mutex_unlock(&fs->homes_lock);
	return ret;
}

static uint64_t load_next_id(struct fs *fs)
{
	char *data = NULL;
	size_t len;
	uint64_t id = 1;

	if (fileutil_read_all(fs->state_dirfd, RELOC_ID_FILE, 64, &data, &len) == 0) {
		char *end;
		unsigned long long v = strtoull(data, &end, 10);

		if (end != data && (*end == '\n' || *end == '\0') && v > 0)
			id = v;
		else
			log_warning("%s: not a number; relocation ids start at 1 again", RELOC_ID_FILE);
	}
	free(data);
	return id;
}

int homes_init(struct fs *fs)
{
	char err[PATH_MAX + 512];
	int ret;

	pthread_mutex_init(&fs->homes_lock, NULL);
	placement_init(&fs->placement);
	ret = placement_load(fs->state_dirfd, &fs->placement, err, sizeof(err));
	if (ret < 0) {
		log_error("placement file in the state dir: %s; refusing to mount rather than "
			  "serve homes from the wrong datastore", err);
		return ret;
	}
	/* A relocfs killed during a relocation left its journal: finish or
	 * undo that relocation before serving anything. */
	ret = recover_relocations(fs->state_dirfd, fs->source, &fs->placement, err, sizeof(err));
	if (ret < 0) {
		log_error("recovering a relocation in the state dir: %s; refusing to mount", err);
		return -EUCLEAN;
	}
	for (size_t i = 0; i < fs->placement.n; i++) {
		const struct placement_ent *pe = &fs->placement.v[i];

		/* Serving such a home from the source could show a stale copy. */
		ret = datastore_fd_locked(fs, pe->datastore);
		if (ret < 0) {
			log_error("home %s lives on datastore %s, which cannot be opened (%s); "
				  "refusing to mount rather than serve it from elsewhere",
				  pe->name, pe->datastore, strerror(-ret));
			return -EUCLEAN;
		}
		log_info("home %s is on %s", pe->name, pe->datastore);
	}
	fs->next_reloc_id = load_next_id(fs);
	return 0;
}

void homes_destroy(struct fs *fs)
{
	struct reloc_entry *e;

	/* Unmounted with relocations going: roll back what has not cut over
	 * yet (the source is current again), let the others finish. */
	for (e = fs->relocs; e != NULL; e = e->next)
		reloc_abort(e->r);
	while ((e = fs->relocs) != NULL) {
		fs->relocs = e->next;
		reloc_free(e->r);
		free(e);
	}
	for (size_t i = 0; i < HOME_BUCKETS; i++)
		while (fs->homes[i] != NULL) {
			struct home *h = fs->homes[i];

			fs->homes[i] = h->next;
			pthread_rwlock_destroy(&h->gate);
			pthread_mutex_destroy(&h->files_lock);
			pthread_cond_destroy(&h->flush_cond);
			free(h);
		}
	fs->nhomes = 0;
	while (fs->datastores != NULL) {
		struct fs_datastore *d = fs->datastores;

		fs->datastores = d->next;
		close(d->fd);
		free(d);
	}
	placement_free(&fs->placement);
	pthread_mutex_destroy(&fs->homes_lock);
}

/* --------------------------------------------------------- engine host */

static void host_quiesce(void *home)
{
	pthread_rwlock_wrlock(&((struct home *)home)->gate);
}

static void host_resume(void *home)
{
	pthread_rwlock_unlock(&((struct home *)home)->gate);
}

static void host_attach(void *home, struct reloc *r)
{
	struct home *h = home;

	fsops_attach(h->fs, h, r);
}

static void host_detach(void *home, struct reloc *r)
{
	struct home *h = home;

	(void)r;
	fsops_attach(h->fs, h, NULL);
}

static int commit_placement(struct fs *fs, struct home *h, struct reloc *r)
{
	struct reloc_status *st = malloc(sizeof(*st));
	const char *old;
	char *prev = NULL;
	bool renamed = false;
	int ret;

	if (st == NULL)
		return -ENOMEM;
	reloc_get_status(r, st);
	pthread_mutex_lock(&fs->homes_lock);
	old = placement_get(&fs->placement, h->name);
	if (old != NULL && (prev = strdup(old)) == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	ret = placement_set(&fs->placement, h->name,
			    strcmp(st->to, fs->source) == 0 ? NULL : st->to);
	if (ret == 0)
		ret = save_placement(fs, &renamed);
	if (ret < 0 && renamed) {
		log_warning("home %s: the placement naming %s is in the state dir, but flushing "
			    "the state dir failed: %s; the flip goes on, the placement is flushed "
			    "again before the source copy is removed", h->name, st->to, strerror(-ret));
		fs->placement_unflushed = true;
		ret = 0;
	}
	if (ret < 0)
		placement_set(&fs->placement, h->name, prev);	/* back as it was */
	else
		failpoint("flip-committed");
out:
	pthread_mutex_unlock(&fs->homes_lock);
	free(prev);
	free(st);
	return ret;
}

static int host_flip(void *home, struct reloc *r)
{
	struct home *h = home;
	struct reloc_status *st = malloc(sizeof(*st));
	int fd;

	if (st == NULL)
		return -ENOMEM;
	reloc_get_status(r, st);
	fd = fs_datastore_fd(h->fs, st->to);
	free(st);
	if (fd < 0)
		return fd;
	return fsops_flip(h->fs, h, r, fd, commit_placement);
}

/* The placement table is durable: saved again if a flip could not flush
 * it. Any later save that succeeded did so already. */
static int host_placement_sync(void *home)
{
	struct home *h = home;
	struct fs *fs = h->fs;
	int ret = 0;

	pthread_mutex_lock(&fs->homes_lock);
	if (fs->placement_unflushed) {
		ret = save_placement(fs, NULL);
		if (ret == 0)
			log_notice("home %s: the placement is flushed now", h->name);
	}
	pthread_mutex_unlock(&fs->homes_lock);
	return ret;
}

static void host_durable(void *home, int err)
{
	struct home *h = home;

	pthread_mutex_lock(&h->files_lock);
	/* Before flushing drops: wait_durable reads both without the lock. */
	__atomic_store_n(&h->durable_err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&h->flushing, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&h->flush_cond);
	pthread_mutex_unlock(&h->files_lock);
}

static void host_finished(void *home, struct reloc *r)
{
	struct home *h = home;
	struct reloc_entry *e;

	pthread_mutex_lock(&h->fs->homes_lock);
	/* A relocation whose rollback failed stays attached (its journal
	 * serves the home): it stays the home's active one. */
	for (e = h->fs->relocs; e != NULL; e = e->next)
		if (e->r == r)
			e->finished = h->reloc != r;
	pthread_mutex_unlock(&h->fs->homes_lock);
}

static const struct reloc_host host = {
	.quiesce = host_quiesce,
	.resume = host_resume,
	.attach = host_attach,
	.flip = host_flip,
	.placement_sync = host_placement_sync,
	.durable = host_durable,
	.detach = host_detach,
	.finished = host_finished,
};

/* ------------------------------------------------------------ requests */

static int valid_name(const char *name)
{
	return *name != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0 && strlen(name) <= NAME_MAX;
}

/* Allocated bytes of the tree under dirfd/name (never following links). */
static int tree_usage(int parent, const char *name, uint64_t *bytes)
{
	struct stat st;
	int fd, ret = 0;
	DIR *dp;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*bytes += (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return 0;
	dp = treeutil_opendir(parent, name);
	if (dp == NULL)
		return -errno;
	fd = dirfd(dp);
	for (struct dirent *de; ret == 0 && (de = readdir(dp)) != NULL;)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			ret = tree_usage(fd, de->d_name, bytes);
	closedir(dp);
	return ret;
}

static struct reloc_entry *active_reloc(struct fs *fs, struct home *h)
{
	for (struct reloc_entry *e = fs->relocs; e != NULL; e = e->next)
		if (e->home == h && !e->finished)
			return e;
	return NULL;
}

static void trim_history(struct fs *fs)
{
	struct reloc_entry **pp = &fs->relocs;
	unsigned n = 0;

	while (*pp != NULL) {
		struct reloc_entry *e = *pp;

		if (e->finished && ++n > HISTORY_MAX) {
			*pp = e->next;
			reloc_free(e->r);
			free(e);
			continue;
		}
		pp = &e->next;
	}
}

int home_migrate(struct fs *fs, const struct migrate_req *req, uint64_t *id,
		 char *err, size_t errlen)
{
	char dst[PATH_MAX], cur[PATH_MAX], home_path[2 * PATH_MAX], idbuf[32];
	struct reloc_params p;
	struct reloc_entry *e = NULL;
	struct statvfs sv;
	struct stat st;
	uint64_t need = 0;
	struct home *h;
	int ret, derr;

	if (!valid_name(req->home)) {
		snprintf(err, errlen, "'%s' is not a home of %s", req->home, fs->mountpoint);
		return -EINVAL;
	}
	ret = home_lookup(fs, req->home, &h);
	if (ret == -ENOMEM)
		return ret;
	if (ret < 0) {
		snprintf(err, errlen, "%s/%s: %s", fs->mountpoint, req->home, strerror(-ret));
		return ret;
	}
	if (fstatat(h->ds_fd, h->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s/%s: %s", fs->mountpoint, req->home, strerror(errno));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s/%s is not a home (not a directory)", fs->mountpoint, req->home);
		return -ENOTDIR;
	}
	if (stat(req->datastore, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "DATASTORE '%s': %s", req->datastore, strerror(errno));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "DATASTORE '%s' is not a directory", req->datastore);
		return -ENOTDIR;
	}
	if (realpath(req->datastore, dst) == NULL) {
		ret = -errno;
		snprintf(err, errlen, "DATASTORE '%s': %s", req->datastore, strerror(errno));
		return ret;
	}
	if (access(dst, W_OK) < 0 || (statvfs(dst, &sv) == 0 && (sv.f_flag & ST_RDONLY))) {
		snprintf(err, errlen, "DATASTORE '%s' is not writable", dst);
		return -EACCES;
	}
	home_datastore(fs, h, cur, sizeof(cur));
	snprintf(home_path, sizeof(home_path), "%s/%s", strcmp(cur, "/") ? cur : "", h->name);
	if (fileutil_path_within(dst, home_path)) {
		snprintf(err, errlen, "DATASTORE '%s' is inside the home %s", dst, home_path);
		return -EINVAL;
	}
	if (fileutil_path_within(dst, fs->mountpoint)) {
		snprintf(err, errlen, "DATASTORE '%s' is inside the mount %s", dst, fs->mountpoint);
		return -EINVAL;
	}
	if (strcmp(dst, cur) == 0) {
		snprintf(err, errlen, "%s is already on datastore %s", req->home, dst);
		return -EALREADY;
	}
	if (strcmp(dst, fs->source) != 0 && fileutil_path_within(dst, fs->source)) {
		snprintf(err, errlen, "DATASTORE '%s' is inside the source datastore %s", dst, fs->source);
		return -EINVAL;
	}
	if (fstatat(AT_FDCWD, dst, &st, 0) == 0) {
		int dfd = open(dst, O_PATH | O_DIRECTORY | O_CLOEXEC);
		int exists = dfd >= 0 && faccessat(dfd, h->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;

		if (dfd >= 0)
			close(dfd);
		if (exists) {
			snprintf(err, errlen, "DATASTORE '%s' already has an entry named '%s'", dst, h->name);
			return -EEXIST;
		}
	}
	ret = tree_usage(h->ds_fd, h->name, &need);
	if (ret < 0) {
		snprintf(err, errlen, "%s/%s: %s", fs->mountpoint, h->name, strerror(-ret));
		return ret;
	}
	if (statvfs(dst, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < need) {
		snprintf(err, errlen, "not enough free space on %s: the home needs %" PRIu64
			 " MiB, %" PRIu64 " MiB are free", dst, need >> 20,
			 ((uint64_t)sv.f_bavail * sv.f_frsize) >> 20);
		return -ENOSPC;
	}

	pthread_mutex_lock(&fs->homes_lock);
	if (active_reloc(fs, h) != NULL) {
		pthread_mutex_unlock(&fs->homes_lock);
		snprintf(err, errlen, "%s is already relocating", h->name);
		return -EBUSY;
	}
	/* Its last move waits for the recovery at the next mount, which
	 * needs the placement it recorded. */
	derr = __atomic_load_n(&h->durable_err, __ATOMIC_RELAXED);
	if (derr != 0) {
		pthread_mutex_unlock(&fs->homes_lock);
		snprintf(err, errlen, "the last relocation of %s could not be made durable (%s); "
			 "unmount and mount relocfs again, so that its recovery completes it",
			 h->name, strerror(-derr));
		return -EIO;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		pthread_mutex_unlock(&fs->homes_lock);
		return -ENOMEM;
	}
	e->id = fs->next_reloc_id++;
	e->home = h;
	snprintf(idbuf, sizeof(idbuf), "%" PRIu64 "\n", fs->next_reloc_id);
	fileutil_write_atomic(fs->state_dirfd, RELOC_ID_FILE, idbuf, strlen(idbuf), NULL);
	memset(&p, 0, sizeof(p));
	p.id = e->id;
	p.home = h->name;
	p.src_ds = cur;
	p.dst_ds = dst;
	p.state_dirfd = fs->state_dirfd;
	p.opts = req->opts;
	p.host = &host;
	p.host_home = h;
	ret = reloc_start(&e->r, &p);
	if (ret < 0) {
		pthread_mutex_unlock(&fs->homes_lock);
		snprintf(err, errlen, "cannot start the relocation: %s", strerror(-ret));
		free(e);
		return ret;
	}
	e->next = fs->relocs;
	fs->relocs = e;
	trim_history(fs);
	pthread_mutex_unlock(&fs->homes_lock);
	log_notice("relocation %" PRIu64 ": %s from %s to %s", e->id, h->name, cur, dst);
	*id = e->id;
	return 0;
}

static struct reloc_entry *find_active(struct fs *fs, const char *name, char *err, size_t errlen)
{
	struct reloc_entry *e = NULL;
	struct home *h;

	if (!valid_name(name)) {
		snprintf(err, errlen, "'%s' is not a home of %s", name, fs->mountpoint);
		return NULL;
	}
	h = home_find(fs, name);
	pthread_mutex_lock(&fs->homes_lock);
	if (h != NULL)
		e = active_reloc(fs, h);
	pthread_mutex_unlock(&fs->homes_lock);
	if (e == NULL)
		snprintf(err, errlen, "%s is not relocating", name);
	return e;
}

int home_abort(struct fs *fs, const char *name, char *err, size_t errlen)
{
	struct reloc_entry *e = find_active(fs, name, err, errlen);

	if (e == NULL)
		return -ENOENT;
	if (reloc_abort(e->r) < 0) {
		snprintf(err, errlen, "%s is cutting over already; it can no longer be aborted", name);
		return -EINVAL;
	}
	return 0;
}

int home_cutover(struct fs *fs, const char *name, char *err, size_t errlen)
{
	struct reloc_entry *e = find_active(fs, name, err, errlen);

	if (e == NULL)
		return -ENOENT;
	if (reloc_cutover(e->r) < 0) {
		snprintf(err, errlen, "%s is not waiting for a manual cutover "
			 "(started without --manual-cutover, or past it)", name);
		return -EINVAL;
	}
	return 0;
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void fmt_bytes(char *buf, size_t len, uint64_t b)
{
	if (b >= (1ull << 30))
		snprintf(buf, len, "%.1f GiB", (double)b / (double)(1ull << 30));
	else if (b >= (1ull << 20))
		snprintf(buf, len, "%.1f MiB", (double)b / (double)(1ull << 20));
	else
		snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
}

/* Appends a copy of name; on failure frees everything and returns NULL. */
static char **names_push(char **v, size_t *n, size_t *cap, const char *name)
{
	if (*n == *cap) {
		char **p = realloc(v, *cap * 2 * sizeof(*v));

		if (p == NULL) {
			for (size_t i = 0; i < *n; i++)
				free(v[i]);
			free(v);
			return NULL;
		}
		v = p;
		*cap *= 2;
	}
	v[(*n)++] = strdup(name);
	return v;
}

/* Names of the directories at the root of the mount, sorted. */
static int list_homes(struct fs *fs, char ***names, size_t *n)
{
	size_t k = 0, cap = 16;
	char **v = malloc(cap * sizeof(*v));
	DIR *dp = treeutil_opendir(fs->inodes.root.fd, ".");

	if (dp == NULL || v == NULL) {
		int ret = dp == NULL ? -errno : -ENOMEM;

		if (dp != NULL)
			closedir(dp);
		free(v);
		return ret;
	}
	pthread_mutex_lock(&fs->homes_lock);
	for (size_t i = 0; v != NULL && i < fs->placement.n; i++)
		v = names_push(v, &k, &cap, fs->placement.v[i].name);
	pthread_mutex_unlock(&fs->homes_lock);
	for (struct dirent *de; v != NULL && (de = readdir(dp)) != NULL;) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		pthread_mutex_lock(&fs->homes_lock);
		bool placed = placement_get(&fs->placement, de->d_name) != NULL;

		pthread_mutex_unlock(&fs->homes_lock);
		if (!placed)
			v = names_push(v, &k, &cap, de->d_name);
	}
	closedir(dp);
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 1; i < k; i++)	/* few homes: insertion sort */
		for (size_t j = i; j > 0 && v[j - 1] && v[j] && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*names = v;
	*n = k;
	return 0;
}

int home_status(struct fs *fs, const char *only, bool json, FILE *out)
{
	struct reloc_status *st = malloc(sizeof(*st));
	struct reloc_entry **ents = NULL;
	char **names = NULL;
	size_t n = 0, ne = 0;
	int ret;

	if (st == NULL)
		return -ENOMEM;
	ret = list_homes(fs, &names, &n);
	if (ret < 0)
		goto out;
	pthread_mutex_lock(&fs->homes_lock);
	for (struct reloc_entry *e = fs->relocs; e != NULL; e = e->next)
		ne++;
	ents = calloc(ne + 1, sizeof(struct reloc_entry *));
	ne = 0;
	for (struct reloc_entry *e = fs->relocs; ents != NULL && e != NULL; e = e->next)
		ents[ne++] = e;	/* entries are freed only at unmount or trim, under a request */
	pthread_mutex_unlock(&fs->homes_lock);
	if (json) {
		fputs("{\"mount\": ", out);
		json_str(out, fs->mountpoint);
		fputs(", \"source\": ", out);
		json_str(out, fs->source);
		fprintf(out, ", \"homes_tracked\": %zu", home_count(fs));
		fputs(", \"homes\": [", out);
	} else {
		fprintf(out, "%-24s %s\n", "HOME", "DATASTORE");
	}
	for (size_t i = 0, first = 1; i < n; i++) {
		char ds[PATH_MAX];
		struct home *h;

		if (names[i] == NULL || (only != NULL && strcmp(only, names[i]) != 0))
			continue;
		h = home_find(fs, names[i]);
		if (h != NULL)
			home_datastore(fs, h, ds, sizeof(ds));
		else
			snprintf(ds, sizeof(ds), "%s", fs->source);	/* not placed */
		if (json) {
			fputs(first ? "{\"name\": " : ", {\"name\": ", out);
			json_str(out, names[i]);
			fputs(", \"datastore\": ", out);
			json_str(out, ds);
			fputs("}", out);
		} else {
			fprintf(out, "%-24s %s\n", names[i], ds);
		}
		first = 0;
	}
	if (json)
		fputs("], \"relocations\": [", out);
	else if (ne > 0)
		fprintf(out, "\n%-4s %-16s %-9s %-23s %-11s %-6s %-10s %-6s %s\n", "ID", "HOME",
			"PHASE", "COPIED", "RATE", "ETA", "JOURNAL", "ROUNDS", "PAUSE");
	for (size_t i = 0, first = 1; ents != NULL && i < ne; i++) {
		reloc_get_status(ents[i]->r, st);
		if (only != NULL && strcmp(only, st->home) != 0)
			continue;
		if (json) {
			fprintf(out, "%s{\"id\": %" PRIu64 ", \"home\": ", first ? "" : ", ", st->id);
			json_str(out, st->home);
			fputs(", \"from\": ", out);
			json_str(out, st->from);
			fputs(", \"to\": ", out);
			json_str(out, st->to);
			fprintf(out, ", \"phase\": \"%s\", \"bytes_total\": %" PRIu64 ", \"bytes_copied\": %" PRIu64
				", \"rate_bps\": %" PRIu64 ", \"eta_s\": %" PRIu64 ", \"journal_bytes\": %" PRIu64
				", \"rounds\": %u, \"pause_ms\": %.3f, \"pause_at\": %.6f, \"yielding\": %s"
				", \"yield_s\": %.1f, \"error\": ",
				reloc_phase_name(st->phase), st->bytes_total, st->bytes_copied,
				st->rate_bps, st->eta_s, st->journal_bytes, st->rounds, st->pause_ms,
				st->pause_at, st->yielding ? "true" : "false", st->yield_s);
			json_str(out, st->error);
			fputs("}", out);
		} else {
			char c[16], t[16], r[16], j[16], copied[40], pause[24];

			fmt_bytes(c, sizeof(c), st->bytes_copied);
			fmt_bytes(t, sizeof(t), st->bytes_total);
			fmt_bytes(r, sizeof(r), st->rate_bps);
			fmt_bytes(j, sizeof(j), st->journal_bytes);
			snprintf(copied, sizeof(copied), "%s/%s", c, t);
			if (st->pause_ms > 0)
				snprintf(pause, sizeof(pause), "%.1f ms", st->pause_ms);
			else
				snprintf(pause, sizeof(pause), "-");
			fprintf(out, "%-4" PRIu64 " %-16s %-9s %-23s %-9s/s %-6" PRIu64 " %-10s %-6u %s%s%s\n",
				st->id, st->home, reloc_phase_name(st->phase), copied, r, st->eta_s, j,
				st->rounds, pause, st->error[0] ? "  " : "", st->error);
		}
		first = 0;
	}
	if (json)
		fputs("]}\n", out);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(ents);
	free(st);
	return ret;
}

int home_progress(struct fs *fs, uint64_t id, FILE *out, char *err, size_t errlen)
{
	struct reloc_status *st;
	struct reloc *r = NULL;

	pthread_mutex_lock(&fs->homes_lock);
	for (struct reloc_entry *e = fs->relocs; e != NULL; e = e->next)
		if (e->id == id)
			r = e->r;
	pthread_mutex_unlock(&fs->homes_lock);
	if (r == NULL) {
		snprintf(err, errlen, "no relocation %" PRIu64 " on this mount", id);
		return -ENOENT;
	}
	st = malloc(sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	reloc_get_status(r, st);
	/* Fields are only ever added at the end: relocctl reads both. */
	fprintf(out, "%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%u\t%.3f\t%s\t%d\n",
		reloc_phase_name(st->phase), st->bytes_copied, st->bytes_total, st->rate_bps,
		st->eta_s, st->journal_bytes, st->rounds, st->pause_ms, st->error, st->yielding ? 1 : 0);
	free(st);
	return 0;
}
