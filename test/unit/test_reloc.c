/* Unit tests of the relocation engine, driven without FUSE through a fake
 * host: a plain relocation, the data path against an in-memory model while
 * relocating, abort and flip failure (rollback into the source), and the
 * mirroring of namespace changes onto the destination. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>

#include "relocfs/failpoint.h"
#include "relocfs/log.h"
#include "relocfs/reloc.h"
#include "unit.h"

#define MIB (1024u * 1024u)
#define BIG_SIZE (4 * MIB)
#define MAX_SIZE (8 * MIB)		/* random steps keep the file below this */
#define MODEL_CAP (16 * MIB)
#define BIG "big-flat.vmdk"
#define BIG2 "big2-flat.vmdk"
#define WAIT_MS 20000

/* ------------------------------------------------------------ fake host */

struct host_home {
	pthread_rwlock_t gate;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct reloc *r;
	int attaches, flips, detaches, finishes, durables, placement_syncs;
	int flip_ret, durable_err;
	int placement_sync_ret, placement_sync_fails;	/* fails that many times */
	bool attach_quiesced, flip_quiesced, detach_quiesced;
};

static struct host_home host;

/* Whether someone (the engine's thread, quiesced) holds the gate. */
static bool gate_held(struct host_home *h)
{
	if (pthread_rwlock_tryrdlock(&h->gate) == 0) {
		pthread_rwlock_unlock(&h->gate);
		return false;
	}
	return true;
}

static void h_quiesce(void *home)
{
	pthread_rwlock_wrlock(&((struct host_home *)home)->gate);
}

static void h_resume(void *home)
{
	pthread_rwlock_unlock(&((struct host_home *)home)->gate);
}

static void h_attach(void *home, struct reloc *r)
{
	struct host_home *h = home;

	pthread_mutex_lock(&h->mu);
	h->r = r;
	h->attaches++;
	h->attach_quiesced = gate_held(h);
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static int h_flip(void *home, struct reloc *r)
{
	struct host_home *h = home;
	int ret;

	pthread_mutex_lock(&h->mu);
	h->flips++;
	h->flip_quiesced = gate_held(h) && r == h->r;
	ret = h->flip_ret;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return ret;
}

static int h_placement_sync(void *home)
{
	struct host_home *h = home;
	int ret;

	pthread_mutex_lock(&h->mu);
	h->placement_syncs++;
	ret = h->placement_syncs <= h->placement_sync_fails ? h->placement_sync_ret : 0;
	pthread_mutex_unlock(&h->mu);
	return ret;
}

static void h_detach(void *home, struct reloc *r)
{
	struct host_home *h = home;

	pthread_mutex_lock(&h->mu);
	h->detaches++;
	h->detach_quiesced = gate_held(h) && r == h->r;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void h_finished(void *home, struct reloc *r)
{
	struct host_home *h = home;

	(void)r;
	pthread_mutex_lock(&h->mu);
	h->finishes++;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void h_durable(void *home, int err)
{
	struct host_home *h = home;

	pthread_mutex_lock(&h->mu);
	h->durables++;
	h->durable_err = err;
	pthread_mutex_unlock(&h->mu);
}

static const struct reloc_host fake_host = {
	.quiesce = h_quiesce,
	.resume = h_resume,
	.attach = h_attach,
	.flip = h_flip,
	.placement_sync = h_placement_sync,
	.detach = h_detach,
	.durable = h_durable,
	.finished = h_finished,
};

static void host_init(struct host_home *h)
{
	pthread_rwlockattr_t a;

	memset(h, 0, sizeof(*h));
	pthread_rwlockattr_init(&a);
	/* The test thread takes the gate over and over: let the engine in. */
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&h->gate, &a);
	pthread_rwlockattr_destroy(&a);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
}

static void host_destroy(struct host_home *h)
{
	pthread_rwlock_destroy(&h->gate);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
}

/* Waits until *field >= want; false on timeout. */
static bool wait_count(const int *field, int want, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&host.mu);
	while (*field < want)
		if (pthread_cond_timedwait(&host.cv, &host.mu, &ts) != 0)
			break;
	ok = *field >= want;
	pthread_mutex_unlock(&host.mu);
	return ok;
}

static int host_get(const int *field)
{
	int v;

	pthread_mutex_lock(&host.mu);
	v = *field;
	pthread_mutex_unlock(&host.mu);
	return v;
}

/* -------------------------------------------------------------- fixture */

static char g_root[PATH_MAX], g_src[PATH_MAX], g_dst[PATH_MAX], g_state[PATH_MAX];
static int g_state_fd = -1;
static struct reloc *cur;		/* the relocation under test */
static struct rfile *cur_f;		/* its big file */
static unsigned char *model;		/* the big file as the application sees it */
static size_t msize;			/* bytes [msize, MODEL_CAP) of model are zero */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t rnd(size_t n)
{
	return n ? (size_t)(rnd64() % n) : 0;
}

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rnd64() >> 24);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pathf(char *buf, size_t len, const char *fmt, const char *a, const char *b)
{
	if (snprintf(buf, len, fmt, a, b) >= (int)len)
		abort();
}

static int put_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = len ? write(fd, data, len) : 0;
	close(fd);
	if (n != (ssize_t)len || chmod(path, mode) < 0)
		return -EIO;
	return 0;
}

static int set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec tv[2] = { { sec - 1000, 5 }, { sec, nsec } };

	return utimensat(AT_FDCWD, path, tv, AT_SYMLINK_NOFOLLOW);
}

static const char vmx_text[] = "displayName = \"vm1\"\nmemsize = \"4096\"\nscsi0:0.fileName = \"big.vmdk\"\n";

/* The home SRC/vm1: a 4 MiB sparse file with random data at some offsets,
 * a small text file, an empty file, a subdir with a file carrying user.*
 * xattrs, a hard link to it and a symlink; modes, owners and mtimes set. */
static int make_source(void)
{
	char home[PATH_MAX], p[PATH_MAX], p2[PATH_MAX];
	static const struct { size_t off, len; } regions[] = {
		{ 0, 64 * 1024 },
		{ MIB + 100, 900000 },
		{ 3 * MIB + 123, 100 },
		{ 3 * MIB + MIB / 2, 5000 },
	};
	unsigned char nv[8192];
	int fd;

	pathf(home, sizeof(home), "%s/%s", g_src, "vm1");
	if (mkdir(home, 0700) < 0)
		return -1;
	pathf(p, sizeof(p), "%s/%s", home, BIG);
	fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0640);
	if (fd < 0 || ftruncate(fd, BIG_SIZE) < 0)
		return -1;
	memset(model, 0, MODEL_CAP);
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		fill(model + regions[i].off, regions[i].len);
		if (pwrite(fd, model + regions[i].off, regions[i].len, (off_t)regions[i].off) !=
		    (ssize_t)regions[i].len)
			return -1;
	}
	msize = BIG_SIZE;
	if (fsync(fd) < 0)
		return -1;
	close(fd);
	if (chmod(p, 0640) < 0 || set_mtime(p, 1600000000, 111111111) < 0)
		return -1;

	pathf(p, sizeof(p), "%s/%s", home, "vm1.vmx");
	if (put_file(p, vmx_text, sizeof(vmx_text) - 1, 0600) < 0 ||
	    (geteuid() == 0 && chown(p, 1234, 5678) < 0) ||
	    set_mtime(p, 1600000001, 222222222) < 0)
		return -1;
	pathf(p, sizeof(p), "%s/%s", home, "empty.log");
	if (put_file(p, "", 0, 0644) < 0 || set_mtime(p, 1600000002, 0) < 0)
		return -1;

	pathf(p, sizeof(p), "%s/%s", home, "sub");
	if (mkdir(p, 0700) < 0)
		return -1;
	pathf(p, sizeof(p), "%s/%s", home, "sub/nvram");
	fill(nv, sizeof(nv));
	if (put_file(p, nv, sizeof(nv), 0644) < 0 ||
	    setxattr(p, "user.relocfs.test", "value-123", 9, 0) < 0 ||
	    setxattr(p, "user.empty", "", 0, 0) < 0)
		return -1;
	pathf(p2, sizeof(p2), "%s/%s", home, "sub/nvram.bak");
	if (link(p, p2) < 0 || set_mtime(p, 1600000003, 333333333) < 0)
		return -1;
	pathf(p, sizeof(p), "%s/%s", home, "sub/link");
	if (symlink("../vm1.vmx", p) < 0 || (geteuid() == 0 && lchown(p, 1234, 5678) < 0) ||
	    set_mtime(p, 1600000004, 444444444) < 0)
		return -1;
	pathf(p, sizeof(p), "%s/%s", home, "sub");
	if (setxattr(p, "user.dir", "d", 1, 0) < 0 || chmod(p, 0750) < 0 ||
	    set_mtime(p, 1600000005, 555555555) < 0)
		return -1;
	if (setxattr(home, "user.home", "h", 1, 0) < 0 || chmod(home, 0755) < 0 ||
	    set_mtime(home, 1600000006, 666666666) < 0)
		return -1;
	return 0;
}

static void setup(void)
{
	char tmp[64] = "/tmp/relocfs-unit-reloc-XXXXXX";

	if (mkdtemp(tmp) == NULL || realpath(tmp, g_root) == NULL)
		abort();
	pathf(g_src, sizeof(g_src), "%s/%s", g_root, "src");
	pathf(g_dst, sizeof(g_dst), "%s/%s", g_root, "dst");
	pathf(g_state, sizeof(g_state), "%s/%s", g_root, "state");
	if (mkdir(g_src, 0755) < 0 || mkdir(g_dst, 0755) < 0 || mkdir(g_state, 0700) < 0)
		abort();
	g_state_fd = open(g_state, O_RDONLY | O_DIRECTORY);
	if (g_state_fd < 0)
		abort();
	host_init(&host);
	model = calloc(1, MODEL_CAP);
	if (model == NULL || make_source() < 0) {
		perror("make_source");
		abort();
	}
}

struct ent {
	char rel[256];
	struct stat st;
	unsigned char *data;
	size_t len;
	char target[256];
	char xattrs[1024];
};

struct snap {
	struct ent *v;
	size_t n, cap;
	size_t top;
};

static struct snap snap_a, snap_b;
static struct snap *snap_cur;

static void snap_free(struct snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].data);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	if (cur != NULL) {
		/* A check failed midway: end the relocation before the files go. */
		reloc_abort(cur);
		reloc_cutover(cur);
		wait_count(&host.finishes, 1, WAIT_MS);
		reloc_free(cur);
		cur = NULL;
	}
	cur_f = NULL;
	snap_free(&snap_a);
	snap_free(&snap_b);
	close(g_state_fd);
	g_state_fd = -1;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
	if (system(cmd) != 0)
		abort();
	g_root[0] = '\0';
	host_destroy(&host);
	free(model);
	model = NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_ent(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->rel, ((const struct ent *)b)->rel);
}

/* "name=value\n" for each user.* attribute, sorted. */
static void read_xattrs(const char *path, char *out, size_t cap)
{
	char names[1024], *v[64];
	size_t k = 0, used = 0;
	ssize_t n = llistxattr(path, names, sizeof(names));

	out[0] = '\0';
	for (ssize_t i = 0; i < n && k < 64; i += (ssize_t)strlen(names + i) + 1)
		if (strncmp(names + i, "user.", 5) == 0)
			v[k++] = names + i;
	qsort(v, k, sizeof(v[0]), cmp_str);
	for (size_t i = 0; i < k; i++) {
		char val[256];
		ssize_t l = lgetxattr(path, v[i], val, sizeof(val) - 1);

		val[l < 0 ? 0 : l] = '\0';
		used += (size_t)snprintf(out + used, cap - used, "%s=%s\n", v[i], val);
		if (used >= cap)
			break;
	}
}

static int snap_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct snap *s = snap_cur;
	struct ent *e;

	(void)flag;
	(void)ftw;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		struct ent *v = realloc(s->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	e = &s->v[s->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->rel, sizeof(e->rel), "%s", path + s->top);
	e->st = *st;
	if (S_ISREG(st->st_mode)) {
		int fd = open(path, O_RDONLY);

		e->len = (size_t)st->st_size;
		e->data = malloc(e->len + 1);
		if (fd < 0 || e->data == NULL ||
		    (e->len && pread(fd, e->data, e->len, 0) != (ssize_t)e->len)) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	} else if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlink(path, e->target, sizeof(e->target) - 1);

		e->target[n < 0 ? 0 : n] = '\0';
	}
	if (!S_ISLNK(st->st_mode))
		read_xattrs(path, e->xattrs, sizeof(e->xattrs));
	return 0;
}

static int snap_take(const char *top, struct snap *s)
{
	int ret;

	snap_free(s);
	s->top = strlen(top);
	snap_cur = s;
	ret = nftw(top, snap_one, 16, FTW_PHYS);
	snap_cur = NULL;
	if (ret == 0)
		qsort(s->v, s->n, sizeof(s->v[0]), cmp_ent);
	return ret;
}

/* Differences between two trees, printed; full: also modes, owners, mtimes,
 * xattrs, content and allocation; skip: a relative path left out. */
static int snap_diff(const struct snap *a, const struct snap *b, bool full, const char *skip)
{
	size_t i = 0, k = 0;
	int bad = 0;

	while (i < a->n || k < b->n) {
		const struct ent *x = i < a->n ? &a->v[i] : NULL, *y = k < b->n ? &b->v[k] : NULL;
		int c = x == NULL ? 1 : y == NULL ? -1 : strcmp(x->rel, y->rel);

		if (c < 0) {
			if (!skip || strcmp(x->rel, skip) != 0) {
				printf("# only in the first tree: \"%s\"\n", x->rel);
				bad++;
			}
			i++;
			continue;
		}
		if (c > 0) {
			if (!skip || strcmp(y->rel, skip) != 0) {
				printf("# only in the second tree: \"%s\"\n", y->rel);
				bad++;
			}
			k++;
			continue;
		}
		i++;
		k++;
		if (skip && strcmp(x->rel, skip) == 0)
			continue;
		if ((x->st.st_mode & S_IFMT) != (y->st.st_mode & S_IFMT)) {
			printf("# \"%s\": type %o != %o\n", x->rel, x->st.st_mode & S_IFMT,
			       y->st.st_mode & S_IFMT);
			bad++;
			continue;
		}
		if (!full)
			continue;
		if (x->st.st_mode != y->st.st_mode || x->st.st_uid != y->st.st_uid ||
		    x->st.st_gid != y->st.st_gid) {
			printf("# \"%s\": mode/owner %o %d:%d != %o %d:%d\n", x->rel, x->st.st_mode,
			       (int)x->st.st_uid, (int)x->st.st_gid, y->st.st_mode,
			       (int)y->st.st_uid, (int)y->st.st_gid);
			bad++;
		}
		if (x->st.st_mtim.tv_sec != y->st.st_mtim.tv_sec ||
		    x->st.st_mtim.tv_nsec != y->st.st_mtim.tv_nsec) {
			printf("# \"%s\": mtime %lld.%09ld != %lld.%09ld\n", x->rel,
			       (long long)x->st.st_mtim.tv_sec, x->st.st_mtim.tv_nsec,
			       (long long)y->st.st_mtim.tv_sec, y->st.st_mtim.tv_nsec);
			bad++;
		}
		if (!S_ISDIR(x->st.st_mode) && x->st.st_nlink != y->st.st_nlink) {
			printf("# \"%s\": nlink %d != %d\n", x->rel, (int)x->st.st_nlink,
			       (int)y->st.st_nlink);
			bad++;
		}
		if (strcmp(x->xattrs, y->xattrs) != 0) {
			printf("# \"%s\": xattrs \"%s\" != \"%s\"\n", x->rel, x->xattrs, y->xattrs);
			bad++;
		}
		if (S_ISLNK(x->st.st_mode) && strcmp(x->target, y->target) != 0) {
			printf("# \"%s\": target \"%s\" != \"%s\"\n", x->rel, x->target, y->target);
			bad++;
		}
		if (S_ISREG(x->st.st_mode)) {
			if (x->len != y->len || (x->len && memcmp(x->data, y->data, x->len) != 0)) {
				printf("# \"%s\": content differs (%zu / %zu bytes)\n", x->rel, x->len,
				       y->len);
				bad++;
			}
			if (y->st.st_blocks > x->st.st_blocks) {
				printf("# \"%s\": %lld blocks, source had %lld (not sparse)\n", x->rel,
				       (long long)y->st.st_blocks, (long long)x->st.st_blocks);
				bad++;
			}
		}
	}
	return bad;
}

/* The file at path equals the model: its first prefix bytes, or with
 * prefix 0 its size and every byte. */
static bool file_matches_model(const char *path, size_t prefix)
{
	struct stat st;
	unsigned char *buf;
	ssize_t n = -1;
	size_t len;
	bool ok;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0) {
		printf("# %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	len = prefix ? prefix : (size_t)st.st_size;
	buf = malloc(len + 1);
	if (buf != NULL)
		n = len ? pread(fd, buf, len, 0) : 0;
	close(fd);
	ok = buf != NULL && (prefix ? len <= msize : (size_t)st.st_size == msize) &&
	     n == (ssize_t)len && memcmp(buf, model, len) == 0;
	if (!ok && buf != NULL) {
		size_t i = 0, lim = n > 0 ? (size_t)n : 0;

		if (lim > msize)
			lim = msize;
		while (i < lim && buf[i] == model[i])
			i++;
		printf("# %s: size %lld (model %zu), first difference at %zu\n", path,
		       (long long)st.st_size, msize, i);
	}
	free(buf);
	return ok;
}

static bool file_equals_model(const char *path)
{
	return file_matches_model(path, 0);
}

static bool gone(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 && errno == ENOENT;
}

static bool state_gone(uint64_t id)
{
	char name[32];
	struct stat st;

	snprintf(name, sizeof(name), "reloc-%llu", (unsigned long long)id);
	return fstatat(g_state_fd, name, &st, 0) < 0 && errno == ENOENT;
}

/* How many journal generations relocation id has in the state dir. */
static int gens_left(uint64_t id)
{
	char name[32];
	int fd, n = 0;
	DIR *dp;

	snprintf(name, sizeof(name), "reloc-%llu", (unsigned long long)id);
	fd = openat(g_state_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (dp = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (struct dirent *de; (de = readdir(dp)) != NULL;)
		n += strncmp(de->d_name, "gen-", 4) == 0;
	closedir(dp);
	return n;
}

static struct reloc_params params(struct reloc_opts opts)
{
	struct reloc_params p = {
		.id = 1,
		.home = "vm1",
		.src_ds = g_src,
		.dst_ds = g_dst,
		.state_dirfd = g_state_fd,
		.opts = opts,
		.host = &fake_host,
		.host_home = &host,
	};

	return p;
}

static enum reloc_phase phase_of(struct reloc *r)
{
	struct reloc_status st;

	reloc_get_status(r, &st);
	return st.phase;
}

/* Polls until the phase is want; false on timeout or another final phase. */
static bool wait_phase(struct reloc *r, enum reloc_phase want, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		struct reloc_status st;

		reloc_get_status(r, &st);
		if (st.phase == want)
			return true;
		if (st.phase >= RELOC_DONE || now_ms() > end) {
			printf("# phase %s, waiting for %s; error \"%s\"\n", reloc_phase_name(st.phase),
			       reloc_phase_name(want), st.error);
			return false;
		}
		usleep(5000);
	}
}

static bool wait_rounds(struct reloc *r, unsigned n, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		struct reloc_status st;

		reloc_get_status(r, &st);
		if (st.rounds >= n)
			return true;
		if (st.phase >= RELOC_DONE || now_ms() > end) {
			printf("# %u rounds, waiting for %u\n", st.rounds, n);
			return false;
		}
		usleep(5000);
	}
}

/* Starts the relocation and waits for the attach; finds the big file. */
static int start(struct reloc_opts opts)
{
	struct reloc_params p = params(opts);
	char path[PATH_MAX];
	struct stat st;
	int ret = reloc_start(&cur, &p);

	if (ret < 0) {
		printf("# reloc_start: %s\n", strerror(-ret));
		cur = NULL;
		return ret;
	}
	if (!wait_count(&host.attaches, 1, WAIT_MS)) {
		printf("# no attach\n");
		return -ETIMEDOUT;
	}
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	if (stat(path, &st) < 0)
		return -errno;
	pthread_rwlock_rdlock(&host.gate);
	cur_f = reloc_file_find(cur, st.st_dev, st.st_ino);
	pthread_rwlock_unlock(&host.gate);
	return cur_f != NULL ? 0 : -ENOENT;
}

/* Waits for the finished callback and frees the relocation; its status in
 * *st. */
static bool finish(struct reloc_status *st)
{
	if (!wait_count(&host.finishes, 1, WAIT_MS)) {
		printf("# not finished after %d ms\n", WAIT_MS);
		return false;
	}
	reloc_get_status(cur, st);
	reloc_free(cur);
	cur = NULL;
	cur_f = NULL;
	return true;
}

/* ------------------------------------------------- data path and model */

static void model_write(size_t off, const unsigned char *data, size_t len)
{
	memcpy(model + off, data, len);
	if (off + len > msize)
		msize = off + len;
}

static void model_truncate(size_t size)
{
	if (size < msize)
		memset(model + size, 0, msize - size);
	msize = size;
}

static void model_zero(size_t off, size_t len)
{
	size_t end = off + len < msize ? off + len : msize;

	if (off < end)
		memset(model + off, 0, end - off);
}

static char last_op[128];

static int e_write(struct rfile *f, size_t off, size_t len, bool append, bool sync)
{
	static unsigned char buf[MAX_SIZE];
	ssize_t n;

	if (append)
		off = msize;
	if (off + len > MAX_SIZE)
		return 0;
	snprintf(last_op, sizeof(last_op), "write%s%s %zu+%zu (size %zu)", append ? " append" : "",
		 sync ? " sync" : "", off, len, msize);
	fill(buf, len);
	pthread_rwlock_rdlock(&host.gate);
	n = reloc_file_write(cur, f, (const char *)buf, len, append ? 12345 : (off_t)off, append, sync);
	pthread_rwlock_unlock(&host.gate);
	if (n != (ssize_t)len) {
		printf("# %s: returned %zd\n", last_op, n);
		return -1;
	}
	model_write(off, buf, len);
	return 0;
}

static int e_truncate(struct rfile *f, size_t size)
{
	int ret;

	if (size > MAX_SIZE)
		return 0;
	snprintf(last_op, sizeof(last_op), "truncate %zu -> %zu", msize, size);
	pthread_rwlock_rdlock(&host.gate);
	ret = reloc_file_truncate(cur, f, (off_t)size);
	pthread_rwlock_unlock(&host.gate);
	if (ret != 0) {
		printf("# %s: %d\n", last_op, ret);
		return -1;
	}
	model_truncate(size);
	return 0;
}

static int e_punch(struct rfile *f, size_t off, size_t len)
{
	int ret;

	snprintf(last_op, sizeof(last_op), "punch %zu+%zu (size %zu)", off, len, msize);
	pthread_rwlock_rdlock(&host.gate);
	ret = reloc_file_fallocate(cur, f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)off, (off_t)len);
	pthread_rwlock_unlock(&host.gate);
	if (ret != 0) {
		printf("# %s: %d\n", last_op, ret);
		return -1;
	}
	model_zero(off, len);
	return 0;
}

/* The engine's view of f equals the model: all of it, some ranges, past
 * the end, and the size reloc_file_stat reports. */
static int verify_view(struct rfile *f, const char *src_path)
{
	static unsigned char buf[MODEL_CAP];
	struct stat st;
	ssize_t n;
	size_t off, len, want;

	pthread_rwlock_rdlock(&host.gate);
	n = reloc_file_read(cur, f, (char *)buf, msize + 8192, 0);
	pthread_rwlock_unlock(&host.gate);
	if (n != (ssize_t)msize || memcmp(buf, model, msize) != 0) {
		size_t i = 0;

		while (n > 0 && i < (size_t)n && i < msize && buf[i] == model[i])
			i++;
		printf("# after %s: read %zd of %zu bytes, first difference at %zu\n", last_op, n,
		       msize, i);
		return -1;
	}
	for (int k = 0; k < 4; k++) {
		off = rnd(msize + 1);
		len = 1 + rnd(70000);
		want = off + len <= msize ? len : msize - off;
		pthread_rwlock_rdlock(&host.gate);
		n = reloc_file_read(cur, f, (char *)buf, len, (off_t)off);
		pthread_rwlock_unlock(&host.gate);
		if (n != (ssize_t)want || memcmp(buf, model + off, want) != 0) {
			printf("# after %s: read %zu+%zu gave %zd (want %zu)\n", last_op, off, len, n, want);
			return -1;
		}
	}
	pthread_rwlock_rdlock(&host.gate);
	n = reloc_file_read(cur, f, (char *)buf, 100, (off_t)msize + 5);
	pthread_rwlock_unlock(&host.gate);
	if (n != 0) {
		printf("# after %s: read past the end gave %zd\n", last_op, n);
		return -1;
	}
	if (stat(src_path, &st) < 0)
		return -1;
	pthread_rwlock_rdlock(&host.gate);
	reloc_file_stat(cur, f, &st);
	pthread_rwlock_unlock(&host.gate);
	if ((size_t)st.st_size != msize) {
		printf("# after %s: stat size %lld, model %zu\n", last_op, (long long)st.st_size, msize);
		return -1;
	}
	return 0;
}

/* One random change through the engine, then a check of the view. */
static int random_step(struct rfile *f, const char *src_path)
{
	size_t off, len;
	int ret = 0;

	switch (rnd(11)) {
	case 0:		/* whole blocks */
		off = rnd(msize / 4096 + 1) * 4096;
		ret = e_write(f, off, (1 + rnd(64)) * 4096, false, false);
		break;
	case 1:		/* anywhere, any length */
		ret = e_write(f, rnd(msize + 1), 1 + rnd(100000), false, rnd(4) == 0);
		break;
	case 2:		/* a few bytes across a block boundary */
		off = (1 + rnd(msize / 4096)) * 4096;
		len = 2 + rnd(100);
		ret = e_write(f, off - 1 - rnd(len - 1), len, false, false);
		break;
	case 3:		/* past the end: a gap that must read as zeros */
		ret = e_write(f, msize + rnd(3 * 4096 + 7), 1 + rnd(20000), false, false);
		break;
	case 4:		/* inside one block */
		ret = e_write(f, rnd(msize + 1), 1 + rnd(100), false, false);
		break;
	case 5:
		ret = e_write(f, 0, 1 + rnd(10000), true, false);
		break;
	case 6:		/* down a little, or deep (below the base's size) */
		if (rnd(8) == 0)
			ret = e_truncate(f, msize / 2 + rnd(msize / 2 + 1));
		else
			ret = e_truncate(f, msize - rnd((msize < 300000 ? msize : 300000) + 1));
		break;
	case 7:
		ret = e_truncate(f, msize + 1 + rnd(msize < 3 * MIB ? MIB : 300000));
		break;
	case 8:		/* unaligned hole, possibly past the end */
		ret = e_punch(f, rnd(msize + 4096), 1 + rnd(150000));
		break;
	case 9:		/* within one block */
		ret = e_punch(f, rnd(msize + 1), 1 + rnd(3000));
		break;
	default:	/* whole blocks */
		ret = e_punch(f, rnd(msize / 4096 + 1) * 4096, (1 + rnd(16)) * 4096);
		break;
	}
	if (ret < 0)
		return ret;
	return verify_view(f, src_path);
}

static int random_steps(struct rfile *f, int n)
{
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	for (int i = 0; i < n; i++)
		if (random_step(f, path) < 0)
			return -1;
	return 0;
}

/* Enough rewrites of one range to outgrow the pause budget's worth of
 * journal: the next round applies them to D (the index says DEST). */
static int force_round(struct rfile *f, size_t off, size_t len)
{
	char path[PATH_MAX];
	struct reloc_status st;
	unsigned rounds_before;

	reloc_get_status(cur, &st);
	rounds_before = st.rounds;
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	for (int i = 0; i < 7; i++)
		if (e_write(f, off, len, false, false) < 0)
			return -1;
	if (!wait_rounds(cur, rounds_before + 1, WAIT_MS))
		return -1;
	return verify_view(f, path);
}

/* Cuts the current relocation over; it must end done. */
static void cutover_done(struct reloc_status *st)
{
	CHECK_EQ(reloc_cutover(cur), 0);
	CHECK(finish(st));
	if (st->error[0])
		printf("# error: %s\n", st->error);
	CHECK_STR(reloc_phase_name(st->phase), "done");
}

/* ... with the big file on the destination equal to the model. */
static void cutover_to_model(void)
{
	struct reloc_status st;
	char path[PATH_MAX];

	cutover_done(&st);
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1/" BIG);
	CHECK(file_equals_model(path));
}

/* ---------------------------------------------------------------- tests */

static const struct reloc_opts base_opts = { .pause_budget_ms = 100, .copy_threads = 2 };

static void test_plain_relocation(void)
{
	struct reloc_status st;
	struct reloc_params p;
	char home[PATH_MAX], dhome[PATH_MAX];

	setup();
	p = params(base_opts);
	pathf(home, sizeof(home), "%s/%s", g_src, "vm1");
	pathf(dhome, sizeof(dhome), "%s/%s", g_dst, "vm1");
	CHECK_EQ(snap_take(home, &snap_a), 0);
	CHECK_EQ(snap_a.n, 8);
	CHECK_EQ(reloc_start(&cur, &p), 0);
	CHECK(finish(&st));
	if (st.error[0])
		printf("# error: %s\n", st.error);
	CHECK_STR(reloc_phase_name(st.phase), "done");
	CHECK_STR(st.error, "");
	CHECK_STR(st.home, "vm1");
	CHECK_STR(st.from, g_src);
	CHECK_STR(st.to, g_dst);
	CHECK(st.bytes_total > 0);
	CHECK_EQ(st.bytes_copied, st.bytes_total);
	CHECK_EQ(host_get(&host.attaches), 1);
	CHECK_EQ(host_get(&host.flips), 1);
	CHECK_EQ(host_get(&host.placement_syncs), 1);
	CHECK_EQ(host_get(&host.durables), 1);
	CHECK_EQ(host_get(&host.durable_err), 0);
	CHECK_EQ(host_get(&host.detaches), 0);
	CHECK_EQ(host_get(&host.finishes), 1);
	CHECK(host.attach_quiesced);
	CHECK(host.flip_quiesced);
	CHECK(!gate_held(&host));
	CHECK_EQ(snap_take(dhome, &snap_b), 0);
	CHECK_EQ(snap_diff(&snap_a, &snap_b, true, NULL), 0);
	CHECK(gone(home));
	CHECK(state_gone(1));
	teardown();
}

static void test_data_path_while_relocating(void)
{
	struct reloc_opts o = base_opts;
	struct reloc_status st;
	time_t before;
	char path[PATH_MAX], spath[PATH_MAX];
	struct stat sb;
	int during_copy = 0, steps = 0;
	uint64_t t0;

	setup();
	o.manual_cutover = true;
	o.rate_bps = 2 * MIB;	/* a copy long enough to write beside it */
	CHECK_EQ(start(o), 0);
	CHECK(host.attach_quiesced);
	/* Only the home's regular files have an engine state. */
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/sub");
	CHECK_EQ(stat(path, &sb), 0);
	CHECK(reloc_file_find(cur, sb.st_dev, sb.st_ino) == NULL);
	CHECK_EQ(stat(g_src, &sb), 0);
	CHECK(reloc_file_find(cur, sb.st_dev, sb.st_ino) == NULL);
	pathf(path, sizeof(path), "%s/%s", g_state, "reloc-1/state");
	CHECK_EQ(stat(path, &sb), 0);
	pathf(spath, sizeof(spath), "%s/%s", g_src, "vm1/" BIG);
	CHECK_EQ(verify_view(cur_f, spath), 0);
	/* Beside the copy, then on. */
	t0 = now_ms();
	while (steps < 40 || (phase_of(cur) <= RELOC_COPY && now_ms() - t0 < 10000)) {
		if (phase_of(cur) == RELOC_COPY)
			during_copy++;
		CHECK_EQ(random_steps(cur_f, 1), 0);
		steps++;
		usleep(1000);
	}
	printf("# %d of %d steps during the copy, size now %zu\n", during_copy, steps, msize);
	CHECK(wait_phase(cur, RELOC_READY, WAIT_MS));
	CHECK_EQ(random_steps(cur_f, 40), 0);
	printf("# size at the cutover %zu\n", msize);
	/* The base is frozen: none of this reached the source file. */
	CHECK_EQ(stat(spath, &sb), 0);
	CHECK_EQ(sb.st_size, BIG_SIZE);
	CHECK_EQ(sb.st_mtim.tv_sec, 1600000000);
	reloc_get_status(cur, &st);
	CHECK_STR(st.error, "");
	CHECK(st.pause_at == 0);
	CHECK_EQ(host_get(&host.flips), 0);
	before = time(NULL);
	cutover_done(&st);
	CHECK_EQ(host_get(&host.flips), 1);
	CHECK_EQ(host_get(&host.detaches), 0);
	CHECK(st.pause_ms > 0);
	/* The pause's start on the wall clock, between the request and now. */
	CHECK(st.pause_at >= (double)before && st.pause_at <= (double)time(NULL) + 1);
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1/" BIG);
	CHECK(file_equals_model(path));
	/* The destination carries the time of the last change, not B's. */
	CHECK_EQ(stat(path, &sb), 0);
	CHECK(sb.st_mtim.tv_sec > time(NULL) - 120 && sb.st_mtim.tv_sec <= time(NULL) + 1);
	CHECK_EQ(sb.st_mode & 07777, 0640);
	CHECK(gone(spath));
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1");
	CHECK(gone(path));
	CHECK(state_gone(1));
	teardown();
}

/* Whether the file at path holds exactly len bytes of data. */
static bool file_equals(const char *path, const unsigned char *data, size_t len)
{
	unsigned char *got = malloc(len + 1);
	int fd = open(path, O_RDONLY);
	bool same = false;

	if (got != NULL && fd >= 0)
		same = read(fd, got, len + 1) == (ssize_t)len && memcmp(got, data, len) == 0;
	if (fd >= 0)
		close(fd);
	free(got);
	return same;
}

/* A second disk in the source home, with data all through (the big one is
 * mostly holes): len random bytes, returned (NULL if it could not be made). */
static unsigned char *put_big2(size_t len)
{
	unsigned char *data = malloc(len);
	char path[PATH_MAX];

	if (data == NULL)
		return NULL;
	fill(data, len);
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG2);
	if (put_file(path, data, len, 0600) < 0) {
		free(data);
		return NULL;
	}
	return data;
}

/* Cuts over and compares the second disk on D with what put_big2 wrote. */
static void cutover_to_big2(const unsigned char *data, size_t len)
{
	struct reloc_status st;
	char path[PATH_MAX];

	cutover_done(&st);
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1/" BIG2);
	CHECK(file_equals(path, data, len));
}

/* The copy slows to busy_rate_bps while the application reads its files,
 * and only then; what it copies is the same. */
static void test_copy_yields_to_reads(void)
{
	struct reloc_opts o = base_opts;
	struct reloc_status st;
	char path[PATH_MAX];
	const size_t len = 32 * MIB;
	unsigned char *data;
	char *buf = malloc(MIB);
	struct rfile *f = NULL;
	struct stat sb;
	bool saw_yield = false;
	uint64_t t0;

	setup();
	data = put_big2(len);
	CHECK(data != NULL && buf != NULL);
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG2);
	CHECK_EQ(stat(path, &sb), 0);
	o.manual_cutover = true;
	o.rate_bps = 8 * MIB;		/* 32 chunks of 1 MiB, one each 125 ms */
	o.busy_rate_bps = MIB;
	CHECK_EQ(start(o), 0);
	pthread_rwlock_rdlock(&host.gate);
	f = reloc_file_find(cur, sb.st_dev, sb.st_ino);
	pthread_rwlock_unlock(&host.gate);
	CHECK(f != NULL);
	/* No reads yet: copying at the full rate, no yield. */
	t0 = now_ms();
	do {
		usleep(10000);
		reloc_get_status(cur, &st);
	} while (st.bytes_copied < 4 * MIB && st.phase <= RELOC_COPY && now_ms() - t0 < WAIT_MS);
	CHECK_EQ(st.phase, RELOC_COPY);
	CHECK(!st.yielding);
	CHECK(st.yield_s == 0);
	/* Read, far above 10 MiB/s, until the copy yields (or ends). */
	t0 = now_ms();
	while (f != NULL && !saw_yield && phase_of(cur) == RELOC_COPY && now_ms() - t0 < WAIT_MS) {
		CHECK_EQ(reloc_file_read(cur, f, buf, MIB, (off_t)rnd(len / MIB) * MIB), (ssize_t)MIB);
		reloc_get_status(cur, &st);
		saw_yield = st.yielding;
		usleep(1000);
	}
	CHECK(saw_yield);
	/* Reads stopped: the copy goes back to its rate and ends. */
	CHECK(wait_phase(cur, RELOC_READY, 2 * WAIT_MS));
	reloc_get_status(cur, &st);
	CHECK(!st.yielding);
	CHECK(st.yield_s > 0);
	printf("# the copy yielded for %.1f s\n", st.yield_s);
	if (data != NULL)
		cutover_to_big2(data, len);
	free(buf);
	free(data);
	teardown();
}

/* Pages of the file at path in the page cache, or -1 (with the reason). */
static long resident_pages(const char *path, size_t len)
{
	long psz = sysconf(_SC_PAGESIZE), n = 0;
	size_t pages = (len + (size_t)psz - 1) / (size_t)psz;
	unsigned char *vec = malloc(pages);
	int fd = open(path, O_RDONLY);
	void *p = MAP_FAILED;

	if (vec != NULL && fd >= 0)
		p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || mincore(p, len, vec) < 0) {
		printf("# mincore %s: %s\n", path, strerror(errno));
		n = -1;
	} else {
		for (size_t i = 0; i < pages; i++)
			n += vec[i] & 1;
	}
	if (p != MAP_FAILED)
		munmap(p, len);
	if (fd >= 0)
		close(fd);
	free(vec);
	return n;
}

/* The copy waits for the writeback of what it wrote a window (8 MiB) back,
 * and of a whole segment (64 MiB) at its end, and drops those pages: while
 * it goes, each copy thread leaves little more than a window in the page
 * cache; after it, nothing; and D holds the source. */
static void test_copy_write_behind(void)
{
	struct reloc_opts o = base_opts;
	char dpath[PATH_MAX];
	const size_t len = 80 * MIB;	/* two segments, the second partial */
	unsigned char *data;
	long psz = sysconf(_SC_PAGESIZE), res;
	struct statfs sfs;

	struct reloc_status st;
	bool tmpfs;
	uint64_t t0;

	setup();
	data = put_big2(len);
	CHECK(data != NULL);
	CHECK_EQ(statfs(g_dst, &sfs), 0);
	tmpfs = sfs.f_type == TMPFS_MAGIC;
	if (tmpfs)
		printf("# %s is on tmpfs: its pages are its storage, not checked\n", g_dst);
	o.manual_cutover = true;
	o.rate_bps = 32 * MIB;		/* time to look while it copies */
	CHECK_EQ(start(o), 0);
	pathf(dpath, sizeof(dpath), "%s/%s", g_dst, "vm1/" BIG2);
	/* Halfway: two threads, each a window and a chunk or two behind. */
	t0 = now_ms();
	do {
		usleep(10000);
		reloc_get_status(cur, &st);
	} while (st.bytes_copied < 48 * MIB && st.phase <= RELOC_COPY && now_ms() - t0 < WAIT_MS);
	res = resident_pages(dpath, len);
	printf("# %ld of %zu pages of the copy resident at %llu MiB copied\n", res,
	       len / (size_t)psz, (unsigned long long)(st.bytes_copied / MIB));
	CHECK_EQ(st.phase, RELOC_COPY);
	CHECK(tmpfs || (res >= 0 && (size_t)res * (size_t)psz <= 20 * MIB));
	CHECK(wait_phase(cur, RELOC_READY, 2 * WAIT_MS));
	res = resident_pages(dpath, len);
	printf("# %ld of %zu pages of the copy resident after it\n", res, len / (size_t)psz);
	CHECK(tmpfs || (res >= 0 && (size_t)res * (size_t)psz <= MIB));
	if (data != NULL)
		cutover_to_big2(data, len);
	free(data);
	teardown();
}

/* A worker thread's partial-block write during a relocation, made by a
 * thread that then exits (FUSE reaps idle workers): its merge buffer goes
 * with it. Counted by glibc's mallinfo2 over every arena (ASan replaces
 * malloc and reports a leak at exit instead). */
struct edge_write {
	size_t off, len;
	int ret;
};

static void *edge_write_thread(void *arg)
{
	struct edge_write *w = arg;

	w->ret = e_write(cur_f, w->off, w->len, false, false);
	return NULL;
}

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static void test_edge_write_buffers_freed_with_their_thread(void)
{
	struct reloc_opts o = base_opts;
	size_t before = 0, after;
	const int threads = 16;

	setup();
	o.manual_cutover = true;
	CHECK_EQ(start(o), 0);
	for (int i = 0; i < threads; i++) {
		struct edge_write w = { .off = 4096 * (size_t)i + 100, .len = 1 << 20, .ret = -1 };
		pthread_t t;

		CHECK_EQ(pthread_create(&t, NULL, edge_write_thread, &w), 0);
		CHECK_EQ(pthread_join(t, NULL), 0);
		CHECK_EQ(w.ret, 0);
		/* After the first: the journal and index have their buffers. */
		if (i == 0)
			before = heap_in_use();
	}
	after = heap_in_use();
	printf("# heap in use %zu -> %zu bytes after %d more threads\n", before, after, threads - 1);
	CHECK(after < before + (4u << 20));
	CHECK(wait_phase(cur, RELOC_READY, WAIT_MS));
	cutover_to_model();
	teardown();
}

static const struct timespec app_mtime = { 1600000000, 123456789 };

/* What an application's utimens does to a relocating file: B's times, then
 * the engine told. */
static void app_set_mtime(void)
{
	char path[PATH_MAX];
	struct timespec tv[2] = { { 0, UTIME_OMIT }, app_mtime };

	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	CHECK_EQ(utimensat(AT_FDCWD, path, tv, 0), 0);
	reloc_file_times_set(cur, cur_f);
}

/* The mtime the application sees (stat through the engine), or that B has
 * (engine NULL). */
static bool mtime_is_app(bool engine)
{
	char path[PATH_MAX];
	struct stat st;

	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	if (stat(path, &st) < 0)
		return false;
	if (engine)
		reloc_file_stat(cur, cur_f, &st);
	return st.st_mtim.tv_sec == app_mtime.tv_sec && st.st_mtim.tv_nsec == app_mtime.tv_nsec;
}

static void test_abort_rolls_back(void)
{
	struct reloc_opts o = base_opts;
	struct reloc_status st;
	char home[PATH_MAX], path[PATH_MAX];

	setup();
	pathf(home, sizeof(home), "%s/%s", g_src, "vm1");
	CHECK_EQ(snap_take(home, &snap_a), 0);
	o.manual_cutover = true;
	CHECK_EQ(start(o), 0);
	CHECK_EQ(random_steps(cur_f, 25), 0);
	/* Some blocks applied to D (DEST) before the abort: the rollback
	 * must fetch them from there. */
	CHECK(wait_phase(cur, RELOC_READY, WAIT_MS));
	CHECK_EQ(force_round(cur_f, MIB / 2 + 7, 2 * MIB), 0);
	CHECK_EQ(random_steps(cur_f, 25), 0);
	/* Set after the last write: the rollback's writes must not move it. */
	app_set_mtime();
	CHECK_EQ(reloc_abort(cur), 0);
	CHECK(finish(&st));
	if (st.error[0])
		printf("# error: %s\n", st.error);
	CHECK_STR(reloc_phase_name(st.phase), "aborted");
	CHECK_STR(st.error, "");
	CHECK(st.rounds >= 1);
	CHECK(mtime_is_app(false));
	CHECK_EQ(host_get(&host.flips), 0);
	CHECK_EQ(host_get(&host.detaches), 1);
	CHECK(host.detach_quiesced);
	CHECK(!gate_held(&host));
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	CHECK(file_equals_model(path));
	/* The rest of the home is as it was. */
	CHECK_EQ(snap_take(home, &snap_b), 0);
	CHECK_EQ(snap_diff(&snap_a, &snap_b, true, "/" BIG), 0);
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1");
	CHECK(gone(path));
	CHECK(state_gone(1));
	teardown();
}

/* Rollback rounds: the first writes the journaled and applied blocks back
 * into B beside the application (B holds them while the rollback is held
 * after that round); the writes made then go back in the next round or the
 * pause, and the source ends as the model. */
static void test_abort_writes_between_rounds(void)
{
	struct reloc_opts o = base_opts;
	struct reloc_status st;
	char path[PATH_MAX], hold[PATH_MAX], spec[PATH_MAX + 32];
	struct stat sb;
	size_t b_size;
	int i;

	setup();
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	CHECK_EQ(stat(path, &sb), 0);
	b_size = (size_t)sb.st_size / 4096 * 4096;
	pathf(hold, sizeof(hold), "%s/%s", g_root, "hold");
	snprintf(spec, sizeof(spec), "rollback-round:%s", hold);
	CHECK_EQ(setenv("RELOCFS_FAILPOINT_HOLD", spec, 1), 0);
	CHECK_EQ(failpoint_init(), 0);
	o.manual_cutover = true;
	CHECK_EQ(start(o), 0);
	CHECK(wait_phase(cur, RELOC_READY, WAIT_MS));
	/* Over 1024 blocks applied: a round unindexes them in batches. */
	CHECK_EQ(force_round(cur_f, MIB / 2 + 7, 2 * MIB), 0);
	CHECK_EQ(force_round(cur_f, 3 * MIB, 2 * MIB), 0);
	CHECK_EQ(e_write(cur_f, 3 * MIB + 100, 3 * 4096, false, false), 0);
	CHECK_EQ(e_write(cur_f, 8192, 100, false, true), 0);
	app_set_mtime();
	CHECK(!file_matches_model(path, b_size));
	CHECK_EQ(reloc_abort(cur), 0);
	for (i = 0; i < WAIT_MS / 10 && access(hold, F_OK) != 0; i++)
		usleep(10000);
	CHECK_EQ(access(hold, F_OK), 0);
	CHECK(file_matches_model(path, b_size));
	/* B's mtime moved with the round's writes; the application's did not. */
	CHECK(!mtime_is_app(false));
	CHECK(mtime_is_app(true));
	app_set_mtime();
	CHECK(mtime_is_app(true));
	CHECK_EQ(verify_view(cur_f, path), 0);
	CHECK_EQ(random_steps(cur_f, 60), 0);
	CHECK_EQ(unlink(hold), 0);
	CHECK(finish(&st));
	if (st.error[0])
		printf("# error: %s\n", st.error);
	CHECK_STR(reloc_phase_name(st.phase), "aborted");
	CHECK(file_equals_model(path));
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1");
	CHECK(gone(path));
	CHECK(state_gone(1));
	CHECK_EQ(unsetenv("RELOCFS_FAILPOINT_HOLD"), 0);
	CHECK_EQ(failpoint_init(), 0);
	teardown();
}

static void test_abort_refused_after_done(void)
{
	struct reloc_params p;
	struct reloc_status st;

	setup();
	p = params(base_opts);
	CHECK_EQ(reloc_start(&cur, &p), 0);
	CHECK(wait_count(&host.finishes, 1, WAIT_MS));
	CHECK_EQ(reloc_abort(cur), -EINVAL);
	/* Not manual: no cutover to ask for. */
	CHECK_EQ(reloc_cutover(cur), -EINVAL);
	CHECK(finish(&st));
	CHECK_STR(reloc_phase_name(st.phase), "done");
	teardown();
}

/* A manual relocation with random changes before and after it is ready,
 * then asked to cut over; true once it has ended (*st). */
static bool cutover_after_steps(struct reloc_opts o, struct reloc_status *st)
{
	o.manual_cutover = true;
	return start(o) == 0 && random_steps(cur_f, 30) == 0 &&
	       wait_phase(cur, RELOC_READY, WAIT_MS) && random_steps(cur_f, 10) == 0 &&
	       reloc_cutover(cur) == 0 && finish(st);
}

static void test_flip_failure_rolls_back(void)
{
	struct reloc_status st;
	char home[PATH_MAX], path[PATH_MAX];

	setup();
	host.flip_ret = -EIO;
	pathf(home, sizeof(home), "%s/%s", g_src, "vm1");
	CHECK_EQ(snap_take(home, &snap_a), 0);
	CHECK(cutover_after_steps(base_opts, &st));
	printf("# error: %s\n", st.error);
	CHECK_STR(reloc_phase_name(st.phase), "failed");
	CHECK(strstr(st.error, "cutover failed") != NULL);
	CHECK(strstr(st.error, strerror(EIO)) != NULL);
	CHECK_EQ(host_get(&host.flips), 1);
	CHECK_EQ(host_get(&host.detaches), 1);
	CHECK(!gate_held(&host));
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	CHECK(file_equals_model(path));
	CHECK_EQ(snap_take(home, &snap_b), 0);
	CHECK_EQ(snap_diff(&snap_a, &snap_b, true, "/" BIG), 0);
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1");
	CHECK(gone(path));
	CHECK(state_gone(1));
	teardown();
}

/* The flip went on with a placement it could not flush, and flushing it
 * again fails: the source copy and the state stay for recovery (which
 * rolls forward whichever placement it finds); the journal, no longer
 * needed once D is flushed, is gone. */
static void test_placement_unflushed_keeps_source(void)
{
	struct reloc_status st;
	char home[PATH_MAX], path[PATH_MAX];

	setup();
	host.placement_sync_ret = -EIO;
	host.placement_sync_fails = 1000;
	pathf(home, sizeof(home), "%s/%s", g_src, "vm1");
	CHECK(cutover_after_steps(base_opts, &st));
	printf("# error: %s\n", st.error);
	CHECK_STR(reloc_phase_name(st.phase), "done");
	CHECK(strstr(st.error, "after the cutover, recording it in the state dir failed") != NULL);
	CHECK(strstr(st.error, strerror(EIO)) != NULL);
	CHECK_EQ(host_get(&host.flips), 1);
	CHECK_EQ(host_get(&host.placement_syncs), 5);	/* RECORD_TRIES */
	CHECK_EQ(host_get(&host.durables), 1);
	CHECK_EQ(host_get(&host.durable_err), -EIO);
	CHECK_EQ(host_get(&host.detaches), 0);
	CHECK(!gone(home));
	CHECK(!state_gone(1));
	CHECK_EQ(gens_left(1), 0);
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1/" BIG);
	CHECK(file_equals_model(path));
	teardown();
}

/* The state dir fails twice after the flip, then works: the relocation
 * completes and the waiting operations go on. */
static void test_placement_sync_retried(void)
{
	struct reloc_status st;
	char home[PATH_MAX];

	setup();
	host.placement_sync_ret = -ENOSPC;
	host.placement_sync_fails = 2;
	pathf(home, sizeof(home), "%s/%s", g_src, "vm1");
	CHECK_EQ(start(base_opts), 0);
	CHECK(finish(&st));
	CHECK_STR(reloc_phase_name(st.phase), "done");
	CHECK_STR(st.error, "");
	CHECK_EQ(host_get(&host.placement_syncs), 3);
	CHECK_EQ(host_get(&host.durables), 1);
	CHECK_EQ(host_get(&host.durable_err), 0);
	CHECK(gone(home));
	CHECK(state_gone(1));
	teardown();
}

/* A round applied blocks past the base's size to D; the file is then cut
 * (not below the base's size) and extended again before the next apply:
 * the gap reads as zeros, and must be zeros in D after the cutover. */
static void test_truncate_down_up_after_round(void)
{
	struct reloc_opts o = base_opts;
	char spath[PATH_MAX];

	setup();
	o.manual_cutover = true;
	pathf(spath, sizeof(spath), "%s/%s", g_src, "vm1/" BIG);
	CHECK_EQ(start(o), 0);
	CHECK(wait_phase(cur, RELOC_READY, WAIT_MS));
	CHECK_EQ(force_round(cur_f, 5 * MIB, 2 * MIB), 0);
	CHECK_EQ(msize, 7 * MIB);
	CHECK_EQ(e_truncate(cur_f, 4 * MIB + MIB / 2 + 123), 0);
	CHECK_EQ(verify_view(cur_f, spath), 0);
	CHECK_EQ(e_truncate(cur_f, 7 * MIB + 5), 0);
	CHECK_EQ(verify_view(cur_f, spath), 0);
	cutover_to_model();
	teardown();
}

/* Convergence rounds among the random changes (a pause budget of 1 ms is
 * about 100 KiB of journal a round): blocks go JOURNAL -> DEST beside the
 * data path; then a cutover (or an abort) must produce the model. */
static void random_with_rounds(bool abort_it)
{
	struct reloc_opts o = base_opts;
	struct reloc_status st;
	char path[PATH_MAX];
	uint64_t t0;
	int steps = 0;

	setup();
	o.pause_budget_ms = 1;
	o.manual_cutover = true;
	CHECK_EQ(start(o), 0);
	CHECK(wait_phase(cur, RELOC_READY, WAIT_MS));
	t0 = now_ms();
	/* The engine converges every 200 ms while it waits for the cutover. */
	do {
		CHECK_EQ(random_steps(cur_f, 1), 0);
		steps++;
		usleep(1000);
		reloc_get_status(cur, &st);
	} while ((st.rounds < 6 || steps < 100) && now_ms() - t0 < 2500);
	printf("# %d steps, %u rounds, size %zu\n", steps, st.rounds, msize);
	CHECK_STR(st.error, "");
	CHECK(st.rounds >= 2);
	if (abort_it) {
		CHECK_EQ(reloc_abort(cur), 0);
	} else {
		CHECK_EQ(reloc_cutover(cur), 0);
	}
	CHECK(finish(&st));
	if (st.error[0])
		printf("# error: %s\n", st.error);
	CHECK_STR(reloc_phase_name(st.phase), abort_it ? "aborted" : "done");
	/* After an abort the source holds the data; after a cutover, D. */
	pathf(path, sizeof(path), "%s/%s", abort_it ? g_src : g_dst, "vm1/" BIG);
	CHECK(file_equals_model(path));
	pathf(path, sizeof(path), "%s/%s", abort_it ? g_dst : g_src, "vm1");
	CHECK(gone(path));
	CHECK(state_gone(1));
	teardown();
}

static void test_random_with_rounds_cutover(void)
{
	random_with_rounds(false);
}

static void test_random_with_rounds_abort(void)
{
	random_with_rounds(true);
}

static int o_path(const char *rel)
{
	char p[PATH_MAX];

	pathf(p, sizeof(p), "%s/vm1/%s", g_src, rel);
	return open(p, O_PATH | O_NOFOLLOW);
}

static void mirror(struct reloc_ns ns)
{
	pthread_rwlock_rdlock(&host.gate);
	reloc_ns_mirror(cur, &ns);
	pthread_rwlock_unlock(&host.gate);
}

static struct rfile *find_src(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;

	pathf(p, sizeof(p), "%s/vm1/%s", g_src, rel);
	if (lstat(p, &st) < 0)
		return NULL;
	return reloc_file_find(cur, st.st_dev, st.st_ino);
}

static void test_ns_mirror(void)
{
	struct reloc_opts o = base_opts;
	struct reloc_status st;
	char home[PATH_MAX], dhome[PATH_MAX], path[PATH_MAX];
	unsigned char a_data[10000], b_data[3000], buf[10001];
	struct rfile *fa, *fb;
	ssize_t na, nb;
	struct stat sb;
	int hp, np, fd, obj;

	setup();
	pathf(home, sizeof(home), "%s/%s", g_src, "vm1");
	pathf(dhome, sizeof(dhome), "%s/%s", g_dst, "vm1");
	o.manual_cutover = true;
	CHECK_EQ(start(o), 0);
	hp = o_path("");
	CHECK(hp >= 0);
	fd = openat(hp, ".", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);

	/* Two new files, written through the engine. */
	pthread_rwlock_rdlock(&host.gate);
	close(openat(fd, "a.log", O_CREAT | O_EXCL | O_WRONLY, 0640));
	pthread_rwlock_unlock(&host.gate);
	mirror((struct reloc_ns){ .op = RELOC_NS_CREATE, .parent_fd = hp, .name = "a.log" });
	pthread_rwlock_rdlock(&host.gate);
	close(openat(fd, "b.log", O_CREAT | O_EXCL | O_WRONLY, 0600));
	pthread_rwlock_unlock(&host.gate);
	mirror((struct reloc_ns){ .op = RELOC_NS_CREATE, .parent_fd = hp, .name = "b.log" });
	fa = find_src("a.log");
	fb = find_src("b.log");
	CHECK(fa != NULL && fb != NULL);
	fill(a_data, sizeof(a_data));
	fill(b_data, sizeof(b_data));
	pthread_rwlock_rdlock(&host.gate);
	na = reloc_file_write(cur, fa, (const char *)a_data, sizeof(a_data), 0, false, false);
	nb = reloc_file_write(cur, fb, (const char *)b_data, sizeof(b_data), 0, false, true);
	pthread_rwlock_unlock(&host.gate);
	CHECK_EQ(na, sizeof(a_data));
	CHECK_EQ(nb, sizeof(b_data));

	/* mkdir, a symlink in it, rename over an existing name into it. */
	CHECK_EQ(mkdirat(fd, "newdir", 0751), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_CREATE, .parent_fd = hp, .name = "newdir" });
	np = o_path("newdir");
	CHECK(np >= 0);
	CHECK_EQ(symlinkat("moved.log", fd, "newdir/ln"), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_CREATE, .parent_fd = np, .name = "ln" });
	CHECK_EQ(renameat(fd, "b.log", fd, "newdir/moved.log"), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_RENAME, .parent_fd = hp, .name = "b.log",
				  .parent2_fd = np, .name2 = "moved.log" });
	CHECK_EQ(renameat(fd, "a.log", fd, "newdir/moved.log"), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_RENAME, .parent_fd = hp, .name = "a.log",
				  .parent2_fd = np, .name2 = "moved.log" });
	/* A hard link, an unlink of a file with engine state, a rmdir. */
	obj = o_path("newdir/moved.log");
	CHECK(obj >= 0);
	CHECK_EQ(linkat(fd, "newdir/moved.log", fd, "hard.log", 0), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_LINK, .parent_fd = hp, .name = "hard.log",
				  .obj_fd = obj });
	CHECK_EQ(unlinkat(fd, "vm1.vmx", 0), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_UNLINK, .parent_fd = hp, .name = "vm1.vmx" });
	CHECK_EQ(mkdirat(fd, "scratch", 0700), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_CREATE, .parent_fd = hp, .name = "scratch" });
	CHECK_EQ(unlinkat(fd, "scratch", AT_REMOVEDIR), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_RMDIR, .parent_fd = hp, .name = "scratch" });
	/* Attributes. */
	CHECK_EQ(fchmodat(fd, "newdir/moved.log", 0604, 0), 0);
	pathf(path, sizeof(path), "%s/%s", home, "newdir/moved.log");
	CHECK_EQ(setxattr(path, "user.tag", "t1", 2, 0), 0);
	mirror((struct reloc_ns){ .op = RELOC_NS_ATTR, .obj_fd = obj });
	close(obj);
	close(np);
	close(hp);
	close(fd);

	reloc_get_status(cur, &st);
	if (st.error[0])
		printf("# error: %s\n", st.error);
	CHECK_STR(st.error, "");
	CHECK(wait_phase(cur, RELOC_READY, WAIT_MS));
	CHECK_EQ(snap_take(home, &snap_a), 0);
	cutover_done(&st);
	CHECK_EQ(snap_take(dhome, &snap_b), 0);
	CHECK_EQ(snap_diff(&snap_a, &snap_b, false, NULL), 0);
	/* a.log's data under its new name and its hard link. */
	pathf(path, sizeof(path), "%s/%s", dhome, "newdir/moved.log");
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK_EQ(fstat(fd, &sb), 0);
	CHECK_EQ(pread(fd, buf, sizeof(buf), 0), sizeof(a_data));
	close(fd);
	CHECK(memcmp(buf, a_data, sizeof(a_data)) == 0);
	CHECK_EQ(sb.st_nlink, 2);
	CHECK_EQ(sb.st_mode & 07777, 0604);
	CHECK_EQ(getxattr(path, "user.tag", buf, sizeof(buf)), 2);
	CHECK(memcmp(buf, "t1", 2) == 0);
	pathf(path, sizeof(path), "%s/%s", dhome, "hard.log");
	CHECK_EQ(stat(path, &sb), 0);
	CHECK_EQ(sb.st_size, sizeof(a_data));
	pathf(path, sizeof(path), "%s/%s", dhome, "newdir");
	CHECK_EQ(stat(path, &sb), 0);
	CHECK_EQ(sb.st_mode & 07777, 0751);
	pathf(path, sizeof(path), "%s/%s", dhome, "newdir/ln");
	CHECK_EQ(readlink(path, (char *)buf, sizeof(buf)), 9);
	CHECK(memcmp(buf, "moved.log", 9) == 0);
	CHECK(gone(home));
	CHECK(state_gone(1));
	teardown();
}

/* A change the destination cannot follow fails the relocation: it rolls
 * back and the source, with the change, stays current. */
static void test_ns_mirror_failure_rolls_back(void)
{
	struct reloc_opts o = base_opts;
	struct reloc_status st;
	char path[PATH_MAX];
	int hp;

	setup();
	o.manual_cutover = true;
	CHECK_EQ(start(o), 0);
	CHECK_EQ(random_steps(cur_f, 10), 0);
	hp = o_path("");
	CHECK(hp >= 0);
	/* Unlinked on the source, never created on the destination. */
	mirror((struct reloc_ns){ .op = RELOC_NS_UNLINK, .parent_fd = hp, .name = "ghost" });
	close(hp);
	CHECK(finish(&st));
	printf("# error: %s\n", st.error);
	CHECK_STR(reloc_phase_name(st.phase), "failed");
	CHECK(strstr(st.error, "mirroring") != NULL);
	CHECK_EQ(host_get(&host.flips), 0);
	CHECK_EQ(host_get(&host.detaches), 1);
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	CHECK(file_equals_model(path));
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1");
	CHECK(gone(path));
	CHECK(state_gone(1));
	teardown();
}

/* The destination already holds the home: refused at the start, nothing
 * left behind. */
static void test_start_refuses_existing_destination(void)
{
	struct reloc_params p;
	char path[PATH_MAX];
	int ret;

	setup();
	p = params(base_opts);
	pathf(path, sizeof(path), "%s/%s", g_dst, "vm1");
	CHECK_EQ(mkdir(path, 0700), 0);
	ret = reloc_start(&cur, &p);
	if (ret == 0) {
		struct reloc_status st;

		/* Refused by the thread instead: it must fail and clean up. */
		CHECK(finish(&st));
		printf("# error: %s\n", st.error);
		CHECK_STR(reloc_phase_name(st.phase), "failed");
		CHECK(st.error[0] != '\0');
		CHECK_EQ(host_get(&host.attaches), 0);
	} else {
		cur = NULL;
	}
	/* Not removed: it was not the relocation's. */
	CHECK_EQ(access(path, F_OK), 0);
	pathf(path, sizeof(path), "%s/%s", g_src, "vm1/" BIG);
	CHECK(file_equals_model(path));
	CHECK(state_gone(1));
	teardown();
}

#define RUN(fn)                                   \
	do {                                      \
		UNIT_RUN(fn);                     \
		if (g_root[0] != '\0')            \
			teardown();               \
	} while (0)

int main(void)
{
	log_init("test_reloc", LOG_LVL_ERROR);
	if (getenv("RELOCFS_UNIT_SEED") != NULL)
		rng = strtoull(getenv("RELOCFS_UNIT_SEED"), NULL, 0) | 1;
	printf("# seed %llu\n", (unsigned long long)rng);
	RUN(test_plain_relocation);
	RUN(test_data_path_while_relocating);
	RUN(test_copy_yields_to_reads);
	RUN(test_copy_write_behind);
	RUN(test_edge_write_buffers_freed_with_their_thread);
	RUN(test_abort_rolls_back);
	RUN(test_abort_writes_between_rounds);
	RUN(test_abort_refused_after_done);
	RUN(test_flip_failure_rolls_back);
	RUN(test_placement_unflushed_keeps_source);
	RUN(test_placement_sync_retried);
	RUN(test_truncate_down_up_after_round);
	RUN(test_random_with_rounds_cutover);
	RUN(test_random_with_rounds_abort);
	RUN(test_ns_mirror);
	RUN(test_ns_mirror_failure_rolls_back);
	RUN(test_start_refuses_existing_destination);
	return UNIT_DONE();
}
