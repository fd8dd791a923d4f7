/* reloc: owns one relocation: its thread and phases, the per-file state of
 * the home's regular files (base, destination, index), the data path while
 * relocating, the background copy, the convergence rounds, the cutover and
 * the rollback.
 *
 * Invariants (DESIGN.md):
 * - From attach on, the base files (B) are never written until a rollback;
 *   every write goes to the journal first, then the index. A byte's newest
 *   copy is where the index says: a journal record (JOURNAL), the
 *   destination (DEST), zeros (ZERO), else B below b_limit, else zeros.
 * - The index says DEST for a block only after the block was written to D;
 *   only the relocation thread writes journal data to D, and the copier is
 *   done before the first round, so no stale B data reaches D after that.
 * - D is truncated to b_limit (the smallest size the file had) before any
 *   record written after that truncation is applied, and to the file's size
 *   after each apply; bytes of D past the size are never read.
 * - Until the host's flip returns, the source is a complete rollback target:
 *   rollback writes every indexed block of the current view back into B.
 *   Its rounds do most of it beside the application; a block leaves the
 *   index only once B holds its newest data, and only wholly below b_limit.
 *   No generation is dropped once a rollback starts, so until the rollback
 *   is persisted a recovery still finds every block in J or D.
 * - The home is quiesced (no operation in flight) during attach, the final
 *   apply and flip, and the rollback's last pass; everything else runs
 *   beside the application. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/ioprio.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <xxhash.h>

#include "relocfs/extmap.h"
#include "relocfs/failpoint.h"
#include "relocfs/fileutil.h"
#include "relocfs/inomap.h"
#include "relocfs/journal.h"
#include "relocfs/log.h"
#include "relocfs/recover.h"
#include "relocfs/reloc.h"
#include "relocfs/treeutil.h"
#include "relocfs/verify.h"

#define BS EXTMAP_BLOCK
#define FILE_BUCKETS 4096
#define COPY_CHUNK (1u << 20)
#define COPY_NICE 10		/* CPU: about a tenth of a contended core */
#define COPY_IOPRIO 7		/* best-effort class, lowest level */
#define APPLY_CHUNK (1u << 20)
#define WB_KICK (1u << 20)	/* span of D written before its writeback is started */
#define WB_WINDOW (8ull << 20)	/* how far behind the copy waits for that writeback */
#define DEFAULT_APPLY_BPS (200ull << 20)
#define CONVERGED_BYTES (256u << 10)	/* left for the pause: no more rounds */
#define ROLLBACK_ROUNDS 8u		/* at most, before the rollback's pause */
#define RECORD_TRIES 5			/* the cutover's state dir writes, 1 s apart */
#define RECHECK_BATCH 1024u		/* blocks a rollback round unindexes per lock hold */
#define BUSY_WINDOW_NS 100000000ull	/* how often the copy looks at the reads */
#define BUSY_READ_BPS (10ull << 20)	/* application reads that make the copy yield */

struct rfile {
	struct rfile *next;	/* hash chain, under r->files_lock */
	uint64_t id;		/* the source inode number: also the journal's file id */
	dev_t dev;
	ino_t ino;
	int b_fd;		/* read-only on the base file */
	int d_fd;		/* read-write on the destination copy */
	uint64_t alloc;		/* allocated bytes of B at prepare */
	nlink_t nlink;		/* links at prepare, and those found in the home */
	nlink_t links;
	pthread_rwlock_t lock;	/* the fields below and the map */
	struct extmap map;
	uint64_t size;		/* the size the application sees */
	uint64_t b_size;	/* B's size at attach */
	uint64_t b_limit;	/* B's bytes from here on read as zeros */
	uint64_t d_limit;	/* D was cut to here since the last truncation */
	uint64_t d_cut;		/* smallest size since the last apply, or UINT64_MAX */
	struct timespec mtime;	/* of the last journaled change */
	bool mtime_dirty;
	bool b_synced;		/* atomic: B flushed since the attach */
	bool b_written;		/* rollback rounds wrote B: flush it before the end */
};

struct reloc {
	uint64_t id;
	char home[NAME_MAX + 1];
	char src_ds[PATH_MAX];
	char dst_ds[PATH_MAX];
	char src_home[PATH_MAX];	/* src_ds/home */
	int src_home_fd;		/* O_RDONLY directory */
	int dst_ds_fd;
	int dst_home_fd;		/* O_RDONLY directory, once prepared */
	uint64_t dest_checked_ns;	/* atomic: last dest_check */
	struct inomap_pairs pairs;	/* source object -> its copy, for the flip */
	struct xlink *xlinks;		/* during prepare: linked non-regular files */
	size_t nxlinks;
	int state_dirfd;
	int rdir_fd;			/* state_dir/reloc-<id> */
	char rdir_name[32];
	struct journal *j;
	struct reloc_opts opts;
	const struct reloc_host *host;
	void *host_home;
	pthread_t thread;

	pthread_mutex_t lock;		/* phase, requests, error, stats below */
	pthread_cond_t cond;
	enum reloc_phase phase;
	enum reloc_phase disk_phase;	/* the last one persisted; relocation thread */
	bool abort_req;
	bool cutover_req;
	bool failed;			/* set by any thread on a destination error */
	bool journal_full;		/* atomic: the journal refused or passed its limit */
	char error[512];
	unsigned rounds;
	double pause_ms;
	double pause_at;		/* wall clock at its start, epoch seconds */
	uint64_t started_ns;
	uint64_t copy_started_ns;

	pthread_mutex_t files_lock;
	struct rfile *files[FILE_BUCKETS];
	size_t nfiles;

	uint64_t bytes_total;		/* atomics */
	uint64_t bytes_copied;
	uint64_t throttle_bps;
	uint64_t apply_bps;
	uint64_t app_read_bytes;	/* read by the application, for the copy's yield */

	pthread_mutex_t pace_lock;	/* copy rate limit and write throttle */
	uint64_t copy_next_ns;
	uint64_t write_next_ns;
	uint64_t busy_mark_ns;		/* start of the window of app_read_bytes */
	uint64_t busy_mark_bytes;
	bool busy;			/* the copy yields: the application reads */
	uint64_t busy_ns;		/* time the copy spent yielding */
};

static const char *const phase_names[] = {
	"prepare", "copy", "converge", "ready", "verify", "cutover", "cleanup",
	"done", "failed", "aborted",
};

const char *reloc_phase_name(enum reloc_phase phase)
{
	return (unsigned)phase < sizeof(phase_names) / sizeof(phase_names[0])
		       ? phase_names[phase] : "unknown";
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Records the first destination error; the relocation thread rolls back. */
__attribute__((format(printf, 2, 3)))
static void reloc_fail(struct reloc *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->lock);
	if (!r->failed) {
		r->failed = true;
		va_start(ap, fmt);
		vsnprintf(r->error, sizeof(r->error), fmt, ap);
		va_end(ap);
		log_error("relocation %llu of %s: %s", (unsigned long long)r->id, r->home, r->error);
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* A journal failure: the rollback then has no rounds, during which every
 * write would still go to the journal. */
static void reloc_fail_journal(struct reloc *r, const char *what, int err)
{
	__atomic_store_n(&r->journal_full, true, __ATOMIC_RELEASE);
	reloc_fail(r, "journal %s failed: %s", what, strerror(-err));
}

static bool reloc_stopping(struct reloc *r)
{
	bool stop;

	pthread_mutex_lock(&r->lock);
	stop = r->failed || r->abort_req;
	pthread_mutex_unlock(&r->lock);
	return stop;
}

/* Writes the state file with phase. */
static int state_write(struct reloc *r, enum reloc_phase phase)
{
	char buf[3 * PATH_MAX];
	int n, ret;

	if (r->rdir_fd < 0)
		return 0;
	n = recover_state_format(buf, sizeof(buf), (unsigned long long)r->id, r->home, r->src_ds,
				 r->dst_ds, reloc_phase_name(phase), r->opts.keep_source);
	if (n < 0)
		return n;
	ret = fileutil_write_atomic(r->rdir_fd, "state", buf, (size_t)n, NULL);
	if (ret < 0)
		log_error("relocation %llu: cannot persist its state (phase %s): %s",
			  (unsigned long long)r->id, reloc_phase_name(phase), strerror(-ret));
	else
		r->disk_phase = phase;
	return ret;
}

/* Persists the phase so that a restarted relocfs knows what was going on
 * (src/recover.c reads it). Recovery trusts the phase, so a step that needs
 * the new one on disk (a dropped generation, the flip, the detach) must not
 * run when this fails. */
static int reloc_set_phase(struct reloc *r, enum reloc_phase phase)
{
	pthread_mutex_lock(&r->lock);
	r->phase = phase;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	log_info("relocation %llu of %s: %s", (unsigned long long)r->id, r->home,
		 reloc_phase_name(phase));
	return state_write(r, phase);
}

/* reloc_set_phase, or the relocation fails: for the steps recovery must
 * know about before the next one runs. */
static int reloc_enter(struct reloc *r, enum reloc_phase phase)
{
	int ret = reloc_set_phase(r, phase);

	if (ret < 0)
		reloc_fail(r, "cannot persist the phase %s in %s: %s", reloc_phase_name(phase),
			   r->rdir_name, strerror(-ret));
	return ret;
}

/* The destination is still what the relocation started on. A datastore
 * unmounted (lazily) or replaced, or a home copy removed behind relocfs's
 * back, would leave the copy where nobody can reach it after the flip. */
static int dest_check(struct reloc *r)
{
	struct stat a, b;

	if (stat(r->dst_ds, &a) < 0 || fstat(r->dst_ds_fd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		reloc_fail(r, "the destination datastore %s was unmounted or replaced", r->dst_ds);
		return -ENODEV;
	}
	if (r->dst_home_fd < 0)
		return 0;
	if (fstatat(r->dst_ds_fd, r->home, &a, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fstat(r->dst_home_fd, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino ||
	    b.st_nlink == 0) {
		reloc_fail(r, "the destination copy %s/%s was removed or replaced", r->dst_ds, r->home);
		return -ENOENT;
	}
	return 0;
}

/* dest_check at most twice a second, from any thread. */
static int dest_watch(struct reloc *r)
{
	uint64_t now = now_ns(), last = __atomic_load_n(&r->dest_checked_ns, __ATOMIC_RELAXED);

	if (now - last < 500000000ull ||
	    !__atomic_compare_exchange_n(&r->dest_checked_ns, &last, now, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return 0;
	return dest_check(r);
}

/* A phase for status only, the state file keeps the one recovery needs. */
static void reloc_set_phase_mem(struct reloc *r, enum reloc_phase phase)
{
	pthread_mutex_lock(&r->lock);
	r->phase = phase;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* ---------------------------------------------------------------- files */

static size_t file_bucket(dev_t dev, ino_t ino)
{
	return (size_t)(((uint64_t)ino * 0x9e3779b97f4a7c15ull) ^ (uint64_t)dev) % FILE_BUCKETS;
}

struct rfile *reloc_file_find(struct reloc *r, dev_t dev, ino_t ino)
{
	struct rfile *f;

	pthread_mutex_lock(&r->files_lock);
	for (f = r->files[file_bucket(dev, ino)]; f != NULL; f = f->next)
		if (f->dev == dev && f->ino == ino)
			break;
	pthread_mutex_unlock(&r->files_lock);
	return f;
}

/* Takes ownership of b_fd and d_fd. */
static struct rfile *rfile_add(struct reloc *r, const struct stat *st, int b_fd, int d_fd)
{
	struct rfile *f = calloc(1, sizeof(*f));
	size_t h;

	if (f == NULL) {
		close(b_fd);
		close(d_fd);
		return NULL;
	}
	f->id = (uint64_t)st->st_ino;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->b_fd = b_fd;
	f->d_fd = d_fd;
	f->alloc = (uint64_t)st->st_blocks * 512;
	f->nlink = st->st_nlink;
	f->links = 1;
	f->size = f->b_size = f->b_limit = f->d_limit = (uint64_t)st->st_size;
	f->d_cut = UINT64_MAX;
	f->mtime = st->st_mtim;
	extmap_init(&f->map);
	pthread_rwlock_init(&f->lock, NULL);
	h = file_bucket(f->dev, f->ino);
	pthread_mutex_lock(&r->files_lock);
	f->next = r->files[h];
	r->files[h] = f;
	r->nfiles++;
	pthread_mutex_unlock(&r->files_lock);
	__atomic_add_fetch(&r->bytes_total, f->alloc, __ATOMIC_RELAXED);
	return f;
}

static void rfile_free(struct rfile *f)
{
	close(f->b_fd);
	close(f->d_fd);
	extmap_destroy(&f->map);
	pthread_rwlock_destroy(&f->lock);
	free(f);
}

/* A snapshot array of the files (they are never freed before the end). */
static struct rfile **files_snapshot(struct reloc *r, size_t *n)
{
	struct rfile **v;
	size_t k = 0;

	pthread_mutex_lock(&r->files_lock);
	v = malloc((r->nfiles + 1) * sizeof(struct rfile *));
	if (v != NULL)
		for (size_t i = 0; i < FILE_BUCKETS; i++)
			for (struct rfile *f = r->files[i]; f != NULL; f = f->next)
				v[k++] = f;
	pthread_mutex_unlock(&r->files_lock);
	*n = k;
	return v;
}

/* The home no longer routes through the engine: close B and D, so that the
 * space of a removed source is freed now, not when the history is. */
static void files_release(struct reloc *r)
{
	pthread_mutex_lock(&r->files_lock);
	for (size_t i = 0; i < FILE_BUCKETS; i++) {
		struct rfile *f = r->files[i];

		while (f != NULL) {
			struct rfile *next = f->next;

			rfile_free(f);
			f = next;
		}
		r->files[i] = NULL;
	}
	r->nfiles = 0;
	pthread_mutex_unlock(&r->files_lock);
}

int reloc_file_dest_fd(struct rfile *f)
{
	return f->d_fd;
}

/* ------------------------------------------------------------ data path */

/* The calling thread's merge buffer for partial-block writes. FUSE workers
 * come and go, so it is freed at thread exit (a key's destructor), not kept
 * in a __thread pointer that would leak with its thread. */
struct scratch_buf {
	size_t cap;
	char data[];
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

static void scratch_key_init(void)
{
	scratch_key_ok = pthread_key_create(&scratch_key, free) == 0;
}

static char *scratch(size_t n)
{
	struct scratch_buf *s;

	pthread_once(&scratch_once, scratch_key_init);
	if (!scratch_key_ok)
		return NULL;
	s = pthread_getspecific(scratch_key);
	if (s == NULL || n > s->cap) {
		struct scratch_buf *b = malloc(sizeof(*b) + n);

		if (b == NULL)
			return NULL;
		b->cap = n;
		if (pthread_setspecific(scratch_key, b) != 0) {
			free(b);
			return NULL;
		}
		free(s);
		s = b;
	}
	return s->data;
}

/* Reads [off, off+len) of the current view, f->lock held; len may run past
 * the size (zeros). Consecutive blocks from one place are read at once. */
static int view_read(struct reloc *r, struct rfile *f, char *buf, size_t len, uint64_t off)
{
	uint64_t pos = off, end = off + len;

	while (pos < end) {
		uint64_t block = pos / BS, run_end;
		struct extmap_ent e, x;
		enum extmap_where w = extmap_get(&f->map, block, &e);
		uint64_t run_off = e.off + (pos - block * BS);
		uint32_t gen = e.gen;
		size_t n;
		int ret = 0;

		/* Extend the run while the next block continues it. */
		run_end = (block + 1) * BS;
		while (run_end < end) {
			enum extmap_where xw = extmap_get(&f->map, run_end / BS, &x);

			if (xw != w || (w == EXTMAP_JOURNAL &&
					(x.gen != gen || x.off != e.off + (run_end - block * BS))))
				break;
			run_end += BS;
		}
		if (run_end > end)
			run_end = end;
		n = (size_t)(run_end - pos);
		switch (w) {
		case EXTMAP_JOURNAL: {
			struct journal_loc loc = { gen, run_off };

			ret = journal_read(r->j, &loc, buf + (pos - off), n);
			break;
		}
		case EXTMAP_DEST:
			ret = fileutil_pread_full(f->d_fd, buf + (pos - off), n, (off_t)pos, NULL);
			break;
		case EXTMAP_ZERO:
			memset(buf + (pos - off), 0, n);
			break;
		case EXTMAP_NONE:
			if (pos >= f->b_limit) {
				memset(buf + (pos - off), 0, n);
			} else {
				size_t from_b = (size_t)(f->b_limit - pos < n ? f->b_limit - pos : n);

				ret = fileutil_pread_full(f->b_fd, buf + (pos - off), from_b, (off_t)pos, NULL);
				memset(buf + (pos - off) + from_b, 0, n - from_b);
			}
			break;
		}
		if (ret < 0)
			return ret;
		pos = run_end;
	}
	return 0;
}

ssize_t reloc_file_read(struct reloc *r, struct rfile *f, char *buf, size_t size, off_t off)
{
	int ret;

	pthread_rwlock_rdlock(&f->lock);
	if ((uint64_t)off >= f->size) {
		pthread_rwlock_unlock(&f->lock);
		return 0;
	}
	if ((uint64_t)off + size > f->size)
		size = (size_t)(f->size - (uint64_t)off);
	ret = view_read(r, f, buf, size, (uint64_t)off);
	pthread_rwlock_unlock(&f->lock);
	if (ret < 0)
		return ret;
	__atomic_add_fetch(&r->app_read_bytes, size, __ATOMIC_RELAXED);
	return (ssize_t)size;
}

/* Writes made before the attach may still sit in B's page cache: an fsync
 * acknowledged through the journal alone would not cover them. */
static int base_sync(struct rfile *f)
{
	if (__atomic_load_n(&f->b_synced, __ATOMIC_ACQUIRE))
		return 0;
	if (fdatasync(f->b_fd) < 0)
		return -errno;
	__atomic_store_n(&f->b_synced, true, __ATOMIC_RELEASE);
	return 0;
}

/* Slows writers when the rounds stop shrinking, so convergence is certain. */
static void throttle(struct reloc *r, size_t len)
{
	uint64_t bps = __atomic_load_n(&r->throttle_bps, __ATOMIC_RELAXED);
	uint64_t now, wait = 0;

	if (bps == 0)
		return;
	pthread_mutex_lock(&r->pace_lock);
	now = now_ns();
	if (r->write_next_ns < now)
		r->write_next_ns = now;
	wait = r->write_next_ns - now;
	r->write_next_ns += (uint64_t)len * 1000000000ull / bps;
	pthread_mutex_unlock(&r->pace_lock);
	/* The writer holds its home's gate: keep each wait a fraction of the
	 * pause budget so that a cutover never waits long for it. */
	if (wait > (uint64_t)r->opts.pause_budget_ms * 250000ull)
		wait = (uint64_t)r->opts.pause_budget_ms * 250000ull;
	if (wait > 0)
		sleep_ns(wait);
}

/* A journal past its limit rolls the relocation back: the application's
 * write that crossed it has succeeded, and the ones after it go on
 * through the journal until the rollback has made the source current. */
static void check_journal_limit(struct reloc *r)
{
	uint64_t max = r->opts.journal_max_bytes;

	if (max != 0 && journal_total_bytes(r->j) > max) {
		__atomic_store_n(&r->journal_full, true, __ATOMIC_RELEASE);
		reloc_fail(r, "the journal reached its limit of %llu MiB before the relocation "
			   "converged", (unsigned long long)(max >> 20));
	}
}

/* Appends whole blocks [first*BS, first*BS + len) and indexes them;
 * f->lock held for writing. size: the file's size once the change is made.
 * A record that ends past it is followed by a truncation to it: a replay
 * writes whole blocks, and would otherwise leave the file longer, zero
 * filled to the block's end. */
static int journal_blocks(struct reloc *r, struct rfile *f, uint64_t first,
			  const char *data, size_t len, uint64_t size)
{
	struct journal_loc loc;
	int ret;

	ret = journal_append(r->j, JOURNAL_WRITE, f->id, first * BS, len, data, &loc);
	if (ret == 0 && first * BS + len > size)
		ret = journal_append(r->j, JOURNAL_TRUNCATE, f->id, size, 0, NULL, NULL);
	if (ret < 0)
		return ret;
	check_journal_limit(r);
	for (size_t i = 0; i < len / BS; i++) {
		ret = extmap_set(&f->map, first + i, EXTMAP_JOURNAL, loc.gen, loc.off + i * BS);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void touch_mtime(struct rfile *f)
{
	clock_gettime(CLOCK_REALTIME, &f->mtime);
	f->mtime_dirty = true;
}

ssize_t reloc_file_write(struct reloc *r, struct rfile *f, const char *buf, size_t size,
			 off_t off, bool append, bool sync)
{
	uint64_t first, last, start, end;
	const char *data = buf;
	size_t len;
	int ret = 0;

	if (size == 0)
		return 0;
	throttle(r, size);
	pthread_rwlock_wrlock(&f->lock);
	start = append ? f->size : (uint64_t)off;
	end = start + size;
	first = start / BS;
	last = (end - 1) / BS;
	len = (size_t)((last - first + 1) * BS);
	if (start % BS != 0 || end % BS != 0) {
		/* Partial edge blocks: merge with the current view, so that
		 * every record holds whole blocks. */
		char *s = scratch(len);

		if (s == NULL) {
			ret = -ENOMEM;
			goto out;
		}
		if (start % BS != 0)
			ret = view_read(r, f, s, BS, first * BS);
		if (ret == 0 && end % BS != 0 && (last != first || start % BS == 0))
			ret = view_read(r, f, s + (last - first) * BS, BS, last * BS);
		if (ret < 0)
			goto out;
		/* Bytes past the old size must stay zero for a later extension. */
		if (f->size < (last + 1) * BS && f->size > first * BS && f->size < start)
			memset(s + (f->size - first * BS), 0, (size_t)(start - f->size));
		memcpy(s + (start - first * BS), buf, size);
		data = s;
	}
	ret = journal_blocks(r, f, first, data, len, end > f->size ? end : f->size);
	if (ret < 0)
		goto out;
	if (end > f->size)
		f->size = end;
	touch_mtime(f);
out:
	pthread_rwlock_unlock(&f->lock);
	if (ret == 0 && sync) {
		ret = base_sync(f);
		if (ret < 0)
			return ret;
		ret = journal_sync(r->j);
	}
	if (ret < 0) {
		/* The journal could not take it: fail the relocation, never the
		 * write's data, which the caller still holds; the rollback
		 * leaves B current and the caller retries through it. */
		reloc_fail_journal(r, "write", ret);
		return ret;
	}
	return (ssize_t)size;
}

/* Zeros [from, to) inside one block that stays in the file, whose size is
 * then size; lock held. */
static int zero_partial(struct reloc *r, struct rfile *f, uint64_t from, uint64_t to,
			uint64_t size)
{
	uint64_t block = from / BS;
	char *s = scratch(BS);
	int ret;

	if (s == NULL)
		return -ENOMEM;
	ret = view_read(r, f, s, BS, block * BS);
	if (ret < 0)
		return ret;
	memset(s + (from - block * BS), 0, (size_t)(to - from));
	return journal_blocks(r, f, block, s, BS, size);
}

static int truncate_locked(struct reloc *r, struct rfile *f, uint64_t size)
{
	int ret;

	ret = journal_append(r->j, JOURNAL_TRUNCATE, f->id, size, 0, NULL, NULL);
	if (ret < 0)
		return ret;
	if (size < f->size) {
		uint64_t keep = (size + BS - 1) / BS;

		/* A kept partial block from the index holds stale bytes past
		 * the new size; B's are cut by b_limit. */
		if (size % BS != 0 && extmap_get(&f->map, size / BS, NULL) != EXTMAP_NONE) {
			ret = zero_partial(r, f, size, (size / BS + 1) * BS, size);
			if (ret < 0)
				return ret;
		}
		extmap_truncate(&f->map, keep);
		if (size < f->b_limit)
			f->b_limit = size;
		/* D may hold applied blocks past the new size: cut it at the
		 * next apply, before anything written later lands there. */
		if (size < f->d_cut)
			f->d_cut = size;
	}
	f->size = size;
	touch_mtime(f);
	return 0;
}

int reloc_file_truncate(struct reloc *r, struct rfile *f, off_t size)
{
	int ret;

	if (size < 0)
		return -EINVAL;
	pthread_rwlock_wrlock(&f->lock);
	ret = truncate_locked(r, f, (uint64_t)size);
	pthread_rwlock_unlock(&f->lock);
	if (ret < 0)
		reloc_fail_journal(r, "write", ret);
	return ret;
}

int reloc_file_fallocate(struct reloc *r, struct rfile *f, int mode, off_t off, off_t len)
{
	uint64_t start = (uint64_t)off, end = (uint64_t)off + (uint64_t)len;
	int zeroing = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
	int ret = 0;

	if (off < 0 || len <= 0)
		return -EINVAL;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	pthread_rwlock_wrlock(&f->lock);
	if (zeroing) {
		uint64_t zend = end < f->size ? end : f->size;
		uint64_t b0 = (start + BS - 1) / BS, b1 = zend / BS;

		if (start < zend) {
			if (start % BS != 0)
				ret = zero_partial(r, f, start, b0 * BS < zend ? b0 * BS : zend, f->size);
			if (ret == 0 && zend % BS != 0 && zend / BS >= b0)
				ret = zero_partial(r, f, b1 * BS > start ? b1 * BS : start, zend, f->size);
			if (ret == 0 && b1 > b0)
				ret = journal_append(r->j, JOURNAL_ZERO, f->id, b0 * BS, (b1 - b0) * BS, NULL, NULL);
			for (uint64_t b = b0; ret == 0 && b < b1; b++)
				ret = extmap_set(&f->map, b, EXTMAP_ZERO, 0, 0);
		}
		if (ret == 0)
			touch_mtime(f);
	}
	if (ret == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > f->size)
		ret = truncate_locked(r, f, end);
	pthread_rwlock_unlock(&f->lock);
	if (ret < 0 && ret != -EOPNOTSUPP)
		reloc_fail_journal(r, "write", ret);
	return ret;
}

int reloc_file_sync(struct reloc *r, struct rfile *f)
{
	int ret = base_sync(f);

	if (ret < 0)
		return ret;	/* the source's own error: no reason to fail */
	ret = journal_sync(r->j);
	if (ret < 0)
		reloc_fail_journal(r, "sync", ret);
	return ret;
}

void reloc_file_stat(struct reloc *r, struct rfile *f, struct stat *st)
{
	uint64_t blocks;

	(void)r;
	pthread_rwlock_rdlock(&f->lock);
	st->st_size = (off_t)f->size;
	if (f->mtime_dirty) {
		st->st_mtim = f->mtime;
		st->st_ctim = f->mtime;
	}
	/* B's allocation plus what was written since, capped by the size. */
	blocks = (uint64_t)st->st_blocks + f->map.count * (BS / 512);
	if (blocks > (f->size + 511) / 512 + (BS / 512))
		blocks = (f->size + 511) / 512;
	st->st_blocks = (blkcnt_t)blocks;
	pthread_rwlock_unlock(&f->lock);
}

off_t reloc_file_seek(struct reloc *r, struct rfile *f, off_t off, int whence)
{
	off_t ret;

	(void)r;
	/* The merged view is reported as all data: holes are optional. */
	pthread_rwlock_rdlock(&f->lock);
	if (off < 0 || (uint64_t)off >= f->size)
		ret = -ENXIO;
	else if (whence == SEEK_DATA)
		ret = off;
	else if (whence == SEEK_HOLE)
		ret = (off_t)f->size;
	else
		ret = -EINVAL;
	pthread_rwlock_unlock(&f->lock);
	return ret;
}

void reloc_file_times_set(struct reloc *r, struct rfile *f)
{
	struct stat st;

	(void)r;
	pthread_rwlock_wrlock(&f->lock);
	/* Once rollback rounds write B, its mtime is theirs: keep the one
	 * just set in f->mtime. */
	if (f->b_written && fstat(f->b_fd, &st) == 0)
		f->mtime = st.st_mtim;
	else
		f->mtime_dirty = false;
	pthread_rwlock_unlock(&f->lock);
}

/* ------------------------------------------------------------- prepare */

/* A fifo, device, socket or symlink with several names in the home: the
 * first name found is created, the others are linked to it, so that
 * (for a fifo) readers and writers still meet after the flip. */
struct xlink {
	dev_t dev;
	ino_t ino;
	int fd;			/* O_PATH on the destination object */
	nlink_t nlink;		/* links at prepare, and those found in the home */
	nlink_t links;
};

/* The destination object of st's next link, counted as found. */
static int xlink_find(struct reloc *r, const struct stat *st)
{
	for (size_t i = 0; i < r->nxlinks; i++) {
		if (r->xlinks[i].dev == st->st_dev && r->xlinks[i].ino == st->st_ino) {
			r->xlinks[i].links++;
			return r->xlinks[i].fd;
		}
	}
	return -1;
}

static int xlink_add(struct reloc *r, const struct stat *st, int ddir, const char *name)
{
	struct xlink *v = realloc(r->xlinks, (r->nxlinks + 1) * sizeof(*v));
	int fd;

	if (v == NULL)
		return -ENOMEM;
	r->xlinks = v;
	fd = openat(ddir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	v[r->nxlinks++] = (struct xlink){ st->st_dev, st->st_ino, fd, st->st_nlink, 1 };
	return 0;
}

static void xlinks_free(struct reloc *r)
{
	for (size_t i = 0; i < r->nxlinks; i++)
		close(r->xlinks[i].fd);
	free(r->xlinks);
	r->xlinks = NULL;
	r->nxlinks = 0;
}

/* The copy of the source object st is the destination object dob: at
 * cutover it takes the source's inode number. */
static int pair_add(struct reloc *r, const struct stat *st, int dob)
{
	struct stat d;

	if (fstat(dob, &d) < 0)
		return -errno;
	return inomap_pairs_add(&r->pairs, st->st_dev, st->st_ino, d.st_dev, d.st_ino);
}

/* The destination object name in dp may be about to lose a link: held
 * open across the change, so that pair_settle sees whether it died even
 * when another link goes at the same time. -1 when there is none. */
static int pair_watch(int dp, const char *name)
{
	return openat(dp, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

/* A dead object's number may be reused: its pair must not be carried. */
static void pair_settle(struct reloc *r, int fd)
{
	struct stat d;

	if (fd < 0)
		return;
	if (fstat(fd, &d) == 0 && d.st_nlink == 0)
		inomap_pairs_drop_dest(&r->pairs, d.st_dev, d.st_ino);
	close(fd);
}

/* Builds the destination tree of one source directory: directories,
 * symlinks, special files and empty (sized, sparse) regular files whose
 * data the copier fills in. */
static int build_tree(struct reloc *r, int sdir, int ddir)
{
	DIR *dp = treeutil_opendir(sdir, ".");
	int ret = 0;

	if (dp == NULL)
		return -errno;
	for (struct dirent *de; ret == 0 && (de = readdir(dp)) != NULL;) {
		const char *name = de->d_name;
		struct stat st;
		int s = -1, d = -1;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			ret = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if (mkdirat(ddir, name, 0700) < 0)
				goto fail;
			s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s < 0 || d < 0)
				goto fail;
			ret = build_tree(r, s, d);
		} else if (S_ISREG(st.st_mode)) {
			struct rfile *f = reloc_file_find(r, st.st_dev, st.st_ino);
			char proc[64];

			if (f != NULL) {
				snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->d_fd);
				if (linkat(AT_FDCWD, proc, ddir, name, AT_SYMLINK_FOLLOW) < 0)
					goto fail;
				f->links++;
				continue;
			}
			d = openat(ddir, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (d < 0)
				goto fail;
			if (ftruncate(d, st.st_size) < 0)
				goto fail;
			s = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (s < 0)
				goto fail;
			if (rfile_add(r, &st, s, d) == NULL) {
				ret = -ENOMEM;
				break;
			}
			s = d = -1;
		} else if (st.st_nlink > 1 && (d = xlink_find(r, &st)) >= 0) {
			int x = d;

			d = -1;
			if (linkat(x, "", ddir, name, AT_EMPTY_PATH) < 0)
				goto fail;
			continue;
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX + 1];
			ssize_t n = readlinkat(sdir, name, target, PATH_MAX);

			if (n < 0)
				goto fail;
			target[n] = '\0';
			if (symlinkat(target, ddir, name) < 0)
				goto fail;
		} else if (mknodat(ddir, name, st.st_mode, st.st_rdev) < 0) {
			goto fail;
		}
		if (ret == 0 && !S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && st.st_nlink > 1)
			ret = xlink_add(r, &st, ddir, name);
		if (ret == 0) {
			int so = openat(sdir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			int dob = openat(ddir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

			ret = so < 0 || dob < 0 ? -errno : treeutil_copy_attrs(so, dob, &st);
			if (ret == 0)
				ret = pair_add(r, &st, dob);
			if (so >= 0)
				close(so);
			if (dob >= 0)
				close(dob);
		}
		goto next;
fail:
		ret = -errno;
next:
		if (s >= 0)
			close(s);
		if (d >= 0)
			close(d);
	}
	closedir(dp);
	return ret;
}

/* A file with hard links outside the home cannot move with it: a link
 * cannot span two datastores (and the copy would take the number of an
 * object the other home still shows). */
static int check_links(struct reloc *r)
{
	for (size_t i = 0; i < r->nxlinks; i++) {
		const struct xlink *x = &r->xlinks[i];

		if (x->links < x->nlink) {
			reloc_fail(r, "inode %llu of %s has %u hard links outside the home; "
				   "a link cannot span two datastores",
				   (unsigned long long)x->ino, r->home, (unsigned)(x->nlink - x->links));
			return -EMLINK;
		}
	}
	for (size_t i = 0; i < FILE_BUCKETS; i++) {
		for (struct rfile *f = r->files[i]; f != NULL; f = f->next) {
			if (f->links < f->nlink) {
				reloc_fail(r, "inode %llu of %s has %u hard links outside the home; "
					   "a link cannot span two datastores",
					   (unsigned long long)f->ino, r->home,
					   (unsigned)(f->nlink - f->links));
				return -EMLINK;
			}
		}
	}
	return 0;
}

static int prepare(struct reloc *r)
{
	struct stat st;
	char path[2 * PATH_MAX];
	int ret, so = -1, dob = -1;

	if (mkdirat(r->dst_ds_fd, r->home, 0700) < 0)
		return -errno;
	r->dst_home_fd = openat(r->dst_ds_fd, r->home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->dst_home_fd < 0)
		return -errno;
	ret = build_tree(r, r->src_home_fd, r->dst_home_fd);
	if (ret == 0)
		ret = check_links(r);
	xlinks_free(r);
	if (ret < 0)
		return ret;
	if (fstat(r->src_home_fd, &st) < 0)
		return -errno;
	so = openat(r->src_home_fd, ".", O_PATH | O_CLOEXEC);
	dob = openat(r->dst_home_fd, ".", O_PATH | O_CLOEXEC);
	ret = so < 0 || dob < 0 ? -errno : treeutil_copy_attrs(so, dob, &st);
	if (ret == 0)
		ret = pair_add(r, &st, dob);
	if (so >= 0)
		close(so);
	if (dob >= 0)
		close(dob);
	snprintf(path, sizeof(path), "%s/%s", r->dst_ds, r->home);
	log_info("relocation %llu: %zu files of %s prepared in %s",
		 (unsigned long long)r->id, r->nfiles, r->home, path);
	return ret;
}

/* --------------------------------------------------------- write-behind */

/* The copy and the rounds write D in ascending order and start its
 * writeback as they go, so that the flush after them finds little left.
 * The copy also waits for that writeback a window back and drops those
 * pages (wait): the disk's queue then holds a few MiB of it, not gigabytes
 * of dirty pages, so a yield to the application's reads takes effect at
 * once and the copy does not fill the page cache with D. Such a wait
 * consumes the file's writeback error (errseq): it fails the caller, as
 * the fdatasync that would have seen the error will not. */
struct writebehind {
	int fd;
	bool wait;
	uint64_t started;	/* writeback started up to here */
	uint64_t settled;	/* waited for and dropped up to here */
};

static void writebehind_init(struct writebehind *wb, int fd, uint64_t from, bool wait)
{
	*wb = (struct writebehind){ .fd = fd, .wait = wait, .started = from, .settled = from };
}

/* Waits for the writeback of [settled, to) and drops its pages. */
static int writebehind_settle(struct writebehind *wb, uint64_t to)
{
	if (to <= wb->settled)
		return 0;	/* a length of 0 would mean to the end of the file */
	if (sync_file_range(wb->fd, (off_t)wb->settled, (off_t)(to - wb->settled),
			    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
			    SYNC_FILE_RANGE_WAIT_AFTER) < 0)
		return -errno;
	posix_fadvise(wb->fd, (off_t)wb->settled, (off_t)(to - wb->settled), POSIX_FADV_DONTNEED);
	wb->settled = to;
	return 0;
}

/* D is written up to end. */
static int writebehind_advance(struct writebehind *wb, uint64_t end)
{
	if (end >= wb->started + WB_KICK) {
		sync_file_range(wb->fd, (off_t)wb->started, (off_t)(end - wb->started),
				SYNC_FILE_RANGE_WRITE);
		wb->started = end;
	}
	if (!wb->wait || end <= WB_WINDOW)
		return 0;
	return writebehind_settle(wb, end - WB_WINDOW);
}

/* ---------------------------------------------------------------- copy */

/* The copy's rate now, pace_lock held. While the application reads its
 * files, the copy competes with it for the source's disk (and the CPU) and
 * slows to opts.busy_rate_bps, as md's resync falls to its minimum on a busy
 * array. It never yields to writes: they go to the journal, and a slower
 * copy would only let the journal grow. Each window's reads decide the next. */
static uint64_t copy_rate(struct reloc *r, uint64_t now)
{
	uint64_t rate = r->opts.rate_bps, busy = r->opts.busy_rate_bps;
	uint64_t elapsed = now - r->busy_mark_ns;

	if (busy == 0 || (rate != 0 && rate <= busy))
		return rate;	/* nothing to slow down to */
	if (elapsed >= BUSY_WINDOW_NS) {
		uint64_t read = __atomic_load_n(&r->app_read_bytes, __ATOMIC_RELAXED);
		bool was = r->busy;

		if (r->busy)
			r->busy_ns += elapsed;
		r->busy = (double)(read - r->busy_mark_bytes) * 1e9 >= (double)BUSY_READ_BPS * (double)elapsed;
		r->busy_mark_bytes = read;
		r->busy_mark_ns = now;
		if (r->busy != was)
			log_debug("relocation %llu: copy %s", (unsigned long long)r->id,
				  r->busy ? "yields to the application's reads" : "back to its full rate");
	}
	return r->busy ? busy : rate;
}

static void pace_copy(struct reloc *r, size_t n)
{
	uint64_t now, wait, rate;

	pthread_mutex_lock(&r->pace_lock);
	now = now_ns();
	rate = copy_rate(r, now);
	if (rate == 0) {
		pthread_mutex_unlock(&r->pace_lock);
		return;
	}
	if (r->copy_next_ns < now)
		r->copy_next_ns = now;
	wait = r->copy_next_ns - now;
	r->copy_next_ns += (uint64_t)n * 1000000000ull / rate;
	pthread_mutex_unlock(&r->pace_lock);
	if (wait > 0)
		sleep_ns(wait);
}

static int copy_range(struct reloc *r, struct rfile *f, uint64_t pos, uint64_t end, char *buf,
		      struct writebehind *wb)
{
	bool offload = true;

	while (pos < end) {
		size_t n = end - pos < COPY_CHUNK ? (size_t)(end - pos) : COPY_CHUNK;
		ssize_t done = -1;
		int ret;

		if (reloc_stopping(r) || dest_watch(r) < 0)
			return -ECANCELED;
		pace_copy(r, n);
		if (offload) {
			loff_t in = (loff_t)pos, out = (loff_t)pos;

			done = copy_file_range(f->b_fd, &in, f->d_fd, &out, n, 0);
			if (done <= 0)
				offload = false;	/* cross-fs or unsupported: copy by hand */
		}
		if (done <= 0) {
			ret = fileutil_pread_full(f->b_fd, buf, n, (off_t)pos, NULL);
			if (ret == 0)
				ret = fileutil_pwrite_full(f->d_fd, buf, n, (off_t)pos);
			if (ret < 0)
				return ret;
			done = (ssize_t)n;
		}
		pos += (uint64_t)done;
		ret = writebehind_advance(wb, pos);
		if (ret < 0)
			return ret;
		__atomic_add_fetch(&r->bytes_copied, (uint64_t)done, __ATOMIC_RELAXED);
		failpoint("copy-chunk");
	}
	return 0;
}

/* Copies B's data extents in [off, end) to D; holes stay holes. */
static int copy_extents(struct reloc *r, struct rfile *f, uint64_t off, uint64_t end, char *buf)
{
	struct writebehind wb;
	int ret = 0;

	writebehind_init(&wb, f->d_fd, off, true);
	while (off < end) {
		off_t data = lseek(f->b_fd, (off_t)off, SEEK_DATA), hole;

		if (data < 0) {
			if (errno != ENXIO)
				return -errno;
			break;
		}
		if ((uint64_t)data >= end)
			break;
		hole = lseek(f->b_fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > end)
			hole = (off_t)end;
		ret = copy_range(r, f, (uint64_t)data, (uint64_t)hole, buf, &wb);
		if (ret < 0)
			return ret;
		off = (uint64_t)hole;
	}
	return writebehind_settle(&wb, off < end ? off : end);
}

/* Files are cut into segments that the copy threads share, so one big
 * disk is read and written by all of them at once. */
#define COPY_SEGMENT (64ull << 20)

struct copy_seg {
	struct rfile *f;
	uint64_t start, end;
	size_t *left;		/* atomic: segments of f not yet copied */
};

struct copy_job {
	struct reloc *r;
	struct copy_seg *segs;
	size_t n;
	size_t next;		/* atomic */
};

/* The bulk copy runs behind the application: when both want the CPU or the
 * disk, the VM's I/O goes first. Neither priority starves the copy, and the
 * convergence rounds and the cutover keep the engine's priority. */
static void copy_background(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);

	if (setpriority(PRIO_PROCESS, (id_t)tid, COPY_NICE) < 0)
		log_debug("copy: setpriority: %s", strerror(errno));
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid,
		    IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, COPY_IOPRIO)) < 0)
		log_debug("copy: ioprio_set: %s", strerror(errno));
}

static void *copy_worker(void *arg)
{
	struct copy_job *job = arg;
	char *buf = malloc(COPY_CHUNK);

	copy_background();
	if (buf == NULL) {
		reloc_fail(job->r, "copy: out of memory");
		return NULL;
	}
	for (;;) {
		size_t i = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
		struct copy_seg *sg;
		int ret;

		if (i >= job->n)
			break;
		sg = &job->segs[i];
		ret = copy_extents(job->r, sg->f, sg->start, sg->end, buf);
		/* Flush as the copy goes, so the cutover flushes only the
		 * last round: once, by whoever copied a file's last segment. */
		if (ret == 0 && __atomic_sub_fetch(sg->left, 1, __ATOMIC_ACQ_REL) == 0 &&
		    fdatasync(sg->f->d_fd) < 0)
			ret = -errno;
		if (ret == -ECANCELED)
			break;
		if (ret < 0) {
			reloc_fail(job->r, "copy to %s failed: %s", job->r->dst_ds, strerror(-ret));
			break;
		}
	}
	free(buf);
	return NULL;
}

static int copy_all(struct reloc *r)
{
	struct copy_job job = { .r = r };
	pthread_t tids[16];
	unsigned nt = r->opts.copy_threads, started = 0;
	size_t nfiles = 0, nsegs = 0, *left = NULL;
	struct rfile **files = files_snapshot(r, &nfiles);
	int ret = 0;

	if (files == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < nfiles; i++)
		nsegs += files[i]->b_size ? (size_t)((files[i]->b_size + COPY_SEGMENT - 1) / COPY_SEGMENT) : 1;
	job.segs = calloc(nsegs ? nsegs : 1, sizeof(*job.segs));
	left = calloc(nfiles ? nfiles : 1, sizeof(*left));
	if (job.segs == NULL || left == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nfiles; i++) {
		uint64_t off = 0;

		do {
			uint64_t end = files[i]->b_size - off > COPY_SEGMENT ? off + COPY_SEGMENT
									  : files[i]->b_size;

			job.segs[job.n++] = (struct copy_seg){ files[i], off, end, &left[i] };
			left[i]++;
			off = end;
		} while (off < files[i]->b_size);
	}
	if (nt == 0)
		nt = 1;
	if (nt > 16)
		nt = 16;
	if (nt > job.n)
		nt = job.n ? (unsigned)job.n : 1;
	r->copy_started_ns = now_ns();
	pthread_mutex_lock(&r->pace_lock);
	r->busy_mark_ns = r->copy_started_ns;
	r->busy_mark_bytes = __atomic_load_n(&r->app_read_bytes, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&r->pace_lock);
	for (unsigned i = 0; i < nt; i++)
		if (pthread_create(&tids[i], NULL, copy_worker, &job) == 0)
			started++;
	if (started == 0)
		copy_worker(&job);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_lock(&r->pace_lock);
	if (r->busy)
		r->busy_ns += now_ns() - r->busy_mark_ns;
	r->busy = false;
	pthread_mutex_unlock(&r->pace_lock);
	if (reloc_stopping(r)) {
		ret = -ECANCELED;
		goto out;
	}
	/* Holes inside allocated extents: what was planned is now done. */
	__atomic_store_n(&r->bytes_copied, __atomic_load_n(&r->bytes_total, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	if (r->busy_ns > 0)
		log_info("relocation %llu: the copy took %.1f s, %.1f s of it at %llu MiB/s while the application read its files",
			 (unsigned long long)r->id, (double)(now_ns() - r->copy_started_ns) / 1e9,
			 (double)r->busy_ns / 1e9, (unsigned long long)(r->opts.busy_rate_bps >> 20));
out:
	free(left);
	free(job.segs);
	free(files);
	return ret;
}

/* --------------------------------------------------------------- apply */

struct pending {
	uint64_t block;
	uint64_t off;
	uint32_t gen;
	uint32_t where;
};

struct collect {
	struct pending *v;
	size_t n, cap;
	uint32_t gen;		/* 0: every journal generation */
	bool dest_too;		/* rollback: DEST blocks go back to B as well */
	int err;
};

static int collect_fn(struct extmap_ent *e, void *arg)
{
	struct collect *c = arg;

	if (e->where == EXTMAP_JOURNAL && c->gen != 0 && e->gen != c->gen)
		return 0;
	if (e->where == EXTMAP_DEST && !c->dest_too)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct pending *v = realloc(c->v, cap * sizeof(*v));

		if (v == NULL) {
			c->err = -ENOMEM;
			return 1;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct pending){ e->block, e->off, e->gen, e->where };
	return 0;
}

static int pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	return x->block < y->block ? -1 : x->block > y->block;
}

/* Writes the collected blocks into fd: journal data, D data (rollback) or
 * holes; consecutive blocks are moved together. kick: start the writeback
 * as it goes (a round; never in a pause, where it could block). */
static int write_pending(struct reloc *r, struct rfile *f, int fd, const struct collect *c,
			 char *buf, bool kick)
{
	struct writebehind wb;

	writebehind_init(&wb, fd, c->n > 0 ? c->v[0].block * BS : 0, false);
	for (size_t i = 0; i < c->n;) {
		const struct pending *p = &c->v[i];
		size_t k = 1;
		int ret = 0;

		while (i + k < c->n && k * BS < APPLY_CHUNK &&
		       c->v[i + k].block == p->block + k && c->v[i + k].where == p->where &&
		       (p->where != EXTMAP_JOURNAL ||
			(c->v[i + k].gen == p->gen && c->v[i + k].off == p->off + k * BS)))
			k++;
		if (p->where == EXTMAP_ZERO) {
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(p->block * BS), (off_t)(k * BS)) < 0) {
				memset(buf, 0, k * BS);
				ret = fileutil_pwrite_full(fd, buf, k * BS, (off_t)(p->block * BS));
			}
		} else {
			if (p->where == EXTMAP_JOURNAL) {
				struct journal_loc loc = { p->gen, p->off };

				ret = journal_read(r->j, &loc, buf, k * BS);
			} else {
				ret = fileutil_pread_full(f->d_fd, buf, k * BS, (off_t)(p->block * BS), NULL);
			}
			if (ret == 0)
				ret = fileutil_pwrite_full(fd, buf, k * BS, (off_t)(p->block * BS));
		}
		if (ret < 0)
			return ret;
		/* The blocks are in ascending order; the round's flush waits. */
		if (kick)
			writebehind_advance(&wb, (p->block + k) * BS);
		i += k;
	}
	return 0;
}

/* Applies f's journal records of generation gen (0: all) to D. A round
 * (flush_ns set) flushes D, adding the time to *flush_ns, and only then
 * points the index at D for those blocks: a failed flush leaves the
 * rollback the journal's copy, not D's pages, which the failure may have
 * dropped. The cutover's apply, in the pause, leaves the index as it is:
 * after the flip nobody reads it, and if the flip fails the rollback takes
 * every block from the journal, none of whose generations is dropped by
 * then. Returns the bytes applied or -errno. */
static ssize_t apply_dest(struct reloc *r, struct rfile *f, uint32_t gen, char *buf,
			  uint64_t *flush_ns)
{
	struct collect c = { .gen = gen };
	bool round = flush_ns != NULL, changed = false;
	struct stat st;
	ssize_t ret = 0;

	pthread_rwlock_wrlock(&f->lock);
	{
		uint64_t cut = f->d_cut;

		if (f->d_limit > f->b_limit && f->b_limit < cut)
			cut = f->b_limit;
		if (cut != UINT64_MAX) {
			if (ftruncate(f->d_fd, (off_t)cut) < 0) {
				ret = -errno;
				pthread_rwlock_unlock(&f->lock);
				goto out;
			}
			if (f->b_limit < f->d_limit)
				f->d_limit = f->b_limit;
			f->d_cut = UINT64_MAX;
			changed = true;
		}
	}
	extmap_each_pending(&f->map, collect_fn, &c);
	pthread_rwlock_unlock(&f->lock);
	if (c.err < 0) {
		ret = c.err;
		goto out;
	}
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), pending_cmp);
	if (c.n > 0)
		changed = true;
	ret = write_pending(r, f, f->d_fd, &c, buf, round);
	if (ret < 0)
		goto out;
	pthread_rwlock_wrlock(&f->lock);
	if (fstat(f->d_fd, &st) < 0 || (uint64_t)st.st_size != f->size) {
		changed = true;
		if (ftruncate(f->d_fd, (off_t)f->size) < 0)
			ret = -errno;
	}
	pthread_rwlock_unlock(&f->lock);
	if (ret == 0 && round && changed) {
		uint64_t t0 = now_ns();

		if (fdatasync(f->d_fd) < 0)
			ret = -errno;
		*flush_ns += now_ns() - t0;
	}
	if (ret < 0)
		goto out;
	ret = (ssize_t)(c.n * BS);
	if (!round)
		goto out;
	pthread_rwlock_wrlock(&f->lock);
	for (size_t i = 0; i < c.n; i++) {
		struct extmap_ent e;

		/* Rewritten or cut meanwhile: a later round has it. */
		if (extmap_get(&f->map, c.v[i].block, &e) == c.v[i].where &&
		    e.gen == c.v[i].gen && e.off == c.v[i].off)
			extmap_set(&f->map, c.v[i].block, EXTMAP_DEST, 0, 0);
	}
	/* Into the bitmap now, not in the next walk, which may be the
	 * cutover's, in the pause. */
	extmap_settle(&f->map);
	pthread_rwlock_unlock(&f->lock);
out:
	free(c.v);
	return ret;
}

/* Applies one generation (0: all) to every file. A round passes flush_ns:
 * what changed is flushed (the time spent added there) and writeback starts
 * as it goes; the cutover passes NULL: no flush in the pause. */
static int apply_all(struct reloc *r, uint32_t gen, uint64_t *applied, uint64_t *flush_ns)
{
	size_t n;
	struct rfile **files = files_snapshot(r, &n);
	char *buf = malloc(APPLY_CHUNK);
	int ret = 0;

	*applied = 0;
	if (files == NULL || buf == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ssize_t a = apply_dest(r, files[i], gen, buf, flush_ns);

		if (a < 0) {
			ret = (int)a;
			goto out;
		}
		*applied += (uint64_t)a;
	}
out:
	free(buf);
	free(files);
	return ret;
}

/* A writable descriptor of B, for the rollback; -errno on failure. */
static int base_open_write(const struct rfile *f)
{
	char proc[64];
	int w;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->b_fd);
	w = open(proc, O_WRONLY | O_CLOEXEC);
	return w < 0 ? -errno : w;
}

/* A rollback round for f: the indexed blocks go back into B beside the
 * application, then leave the index, so that B serves them and the pause of
 * the rollback copies only what changed since. Only blocks wholly below
 * b_limit may leave it: B's bytes past b_limit read as zeros. B is written
 * but not flushed here: until the rollback's pause has flushed it, the
 * journal and D still hold every block, and a recovery rebuilds whatever B
 * holds from them. Returns the bytes written or -errno. */
static ssize_t restore_round_file(struct reloc *r, struct rfile *f, char *buf)
{
	struct collect c = { .gen = 0, .dest_too = true };
	uint64_t *gone = NULL;
	size_t ngone = 0, k = 0;
	ssize_t ret = 0;
	int w = -1;

	pthread_rwlock_rdlock(&f->lock);
	extmap_each(&f->map, collect_fn, &c);
	for (size_t i = 0; i < c.n; i++)
		if ((c.v[i].block + 1) * BS <= f->b_limit)
			c.v[k++] = c.v[i];
	c.n = k;
	pthread_rwlock_unlock(&f->lock);
	if (c.err < 0) {
		ret = c.err;
		goto out;
	}
	if (c.n == 0)
		goto out;
	qsort(c.v, c.n, sizeof(*c.v), pending_cmp);
	w = base_open_write(f);
	gone = malloc((c.n < RECHECK_BATCH ? c.n : RECHECK_BATCH) * sizeof(*gone));
	if (w < 0 || gone == NULL) {
		ret = w < 0 ? w : -ENOMEM;
		goto out;
	}
	pthread_rwlock_wrlock(&f->lock);
	/* The writes move B's mtime: the application's stays in f->mtime,
	 * which stat shows and the rollback's last pass puts back. */
	if (!f->b_written && !f->mtime_dirty) {
		struct stat st;

		if (fstat(f->b_fd, &st) < 0) {
			ret = -errno;
			pthread_rwlock_unlock(&f->lock);
			goto out;
		}
		f->mtime = st.st_mtim;
		f->mtime_dirty = true;
	}
	f->b_written = true;
	pthread_rwlock_unlock(&f->lock);
	ret = write_pending(r, f, w, &c, buf, true);
	/* On disk before B serves them: a write error of the source shows
	 * here, while J and D still serve every block. */
	if (ret == 0 && fdatasync(w) < 0)
		ret = -errno;
	if (ret < 0)
		goto out;
	/* In batches: writers wait for one batch's lookups, not all. */
	for (size_t lo = 0; lo < c.n; lo += RECHECK_BATCH) {
		size_t hi = c.n - lo < RECHECK_BATCH ? c.n : lo + RECHECK_BATCH;

		ngone = 0;
		pthread_rwlock_wrlock(&f->lock);
		for (size_t i = lo; i < hi; i++) {
			struct extmap_ent e;

			/* Rewritten or cut meanwhile: it stays, for the next round. */
			if (extmap_get(&f->map, c.v[i].block, &e) == c.v[i].where &&
			    e.gen == c.v[i].gen && e.off == c.v[i].off &&
			    (c.v[i].block + 1) * BS <= f->b_limit)
				gone[ngone++] = c.v[i].block;
		}
		extmap_remove_many(&f->map, gone, ngone);
		pthread_rwlock_unlock(&f->lock);
	}
	ret = (ssize_t)(c.n * BS);
out:
	if (w >= 0)
		close(w);
	free(gone);
	free(c.v);
	return ret;
}

/* Rollback rounds, before the rollback's pause: each writes back what the
 * one before left, until that is small. A failure ends them: the pause then
 * does the whole work, and reports the error if it fails as well. None
 * after a journal failure: writes would go on filling the journal. */
static void restore_rounds(struct reloc *r)
{
	char *buf;

	if (__atomic_load_n(&r->journal_full, __ATOMIC_ACQUIRE)) {
		log_info("relocation %llu: no rollback rounds: the journal takes no more",
			 (unsigned long long)r->id);
		return;
	}
	buf = malloc(APPLY_CHUNK);

	for (unsigned round = 1; buf != NULL && round <= ROLLBACK_ROUNDS; round++) {
		size_t n;
		struct rfile **files = files_snapshot(r, &n);
		uint64_t total = 0, t0 = now_ns();
		ssize_t a = 0;

		if (files == NULL)
			break;
		for (size_t i = 0; i < n && a >= 0; i++) {
			a = restore_round_file(r, files[i], buf);
			if (a > 0)
				total += (uint64_t)a;
		}
		free(files);
		if (a < 0) {
			log_warning("relocation %llu: rollback round %u: %s; the pause writes back the rest",
				    (unsigned long long)r->id, round, strerror((int)-a));
			break;
		}
		failpoint("rollback-round");
		log_info("relocation %llu: rollback round %u: %llu KiB back into the source in %.1f ms",
			 (unsigned long long)r->id, round, (unsigned long long)(total >> 10),
			 (double)(now_ns() - t0) / 1e6);
		if (total <= CONVERGED_BYTES)
			break;
	}
	free(buf);
}

/* Writes the current view of every file back into B (rollback). */
static int restore_source(struct reloc *r)
{
	size_t n;
	struct rfile **files = files_snapshot(r, &n);
	char *buf = malloc(APPLY_CHUNK);
	int ret = 0;

	if (files == NULL || buf == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct rfile *f = files[i];
		struct collect c = { .gen = 0, .dest_too = true };
		int w;

		if (f->map.count == 0 && f->size == f->b_size && !f->mtime_dirty && !f->b_written)
			continue;
		w = base_open_write(f);
		if (w < 0) {
			ret = w;
			break;
		}
		if (f->b_limit < f->b_size && ftruncate(w, (off_t)f->b_limit) < 0)
			ret = -errno;
		if (ret == 0) {
			extmap_each(&f->map, collect_fn, &c);
			ret = c.err;
		}
		if (ret == 0) {
			if (c.n > 1)
				qsort(c.v, c.n, sizeof(*c.v), pending_cmp);
			ret = write_pending(r, f, w, &c, buf, false);
		}
		if (ret == 0 && ftruncate(w, (off_t)f->size) < 0)
			ret = -errno;
		if (ret == 0 && f->mtime_dirty) {
			struct timespec tv[2] = { { 0, UTIME_OMIT }, f->mtime };

			futimens(w, tv);
		}
		if (ret == 0 && fdatasync(w) < 0)
			ret = -errno;
		close(w);
		free(c.v);
	}
out:
	free(buf);
	free(files);
	return ret;
}

/* Copies times of the whole source tree onto the destination; regular
 * files take the mtime of their last journaled change. */
static int sync_times(struct reloc *r, int sdir, int ddir)
{
	DIR *dp = treeutil_opendir(sdir, ".");
	int ret = 0;

	if (dp == NULL)
		return -errno;
	for (struct dirent *de; ret == 0 && (de = readdir(dp)) != NULL;) {
		struct stat st;
		struct rfile *f;
		int d;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(sdir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int s = openat(sdir, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			d = openat(ddir, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s >= 0 && d >= 0)
				ret = sync_times(r, s, d);
			if (s >= 0)
				close(s);
			if (d >= 0)
				close(d);
			if (ret < 0)
				break;
		}
		d = openat(ddir, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (d < 0)
			continue;
		f = S_ISREG(st.st_mode) ? reloc_file_find(r, st.st_dev, st.st_ino) : NULL;
		ret = treeutil_set_times(d, &st, f != NULL && f->mtime_dirty ? &f->mtime : NULL);
		close(d);
	}
	closedir(dp);
	return ret;
}

/* ------------------------------------------------------------ phases */

/* Bytes the final apply may hold to stay within the pause budget. */
static uint64_t budget_bytes(struct reloc *r)
{
	uint64_t bps = __atomic_load_n(&r->apply_bps, __ATOMIC_RELAXED);

	/* Half the budget for applying; the rest is the flip and the flush. */
	return bps / 1000 * r->opts.pause_budget_ms / 2;
}

static int converge(struct reloc *r)
{
	uint64_t prev = UINT64_MAX;
	unsigned stalls = 0;
	int ret;

	for (;;) {
		uint64_t active = journal_active_bytes(r->j), applied, t0, dt, flush_ns;
		uint32_t sealed;
		unsigned round;

		if (reloc_stopping(r) || dest_watch(r) < 0)
			return -ECANCELED;
		/* Within the budget, go on while rounds still halve what is
		 * left: the pause is what the last round leaves. */
		if (active <= budget_bytes(r) &&
		    (active <= CONVERGED_BYTES || (prev != UINT64_MAX && active > prev / 2)))
			return 0;
		/* Rounds that stop shrinking mean writers outrun the apply:
		 * slow them to half of what a round applies, then less. */
		if (active >= prev && ++stalls >= 2) {
			uint64_t cur = __atomic_load_n(&r->throttle_bps, __ATOMIC_RELAXED);
			uint64_t next = cur ? cur / 2 : __atomic_load_n(&r->apply_bps, __ATOMIC_RELAXED) / 2;

			if (next < (1u << 20))
				next = 1u << 20;
			__atomic_store_n(&r->throttle_bps, next, __ATOMIC_RELAXED);
			log_notice("relocation %llu: writers outrun the rounds, throttling them to %llu MiB/s",
				   (unsigned long long)r->id, (unsigned long long)(next >> 20));
			stalls = 0;
		}
		prev = active;
		ret = journal_seal(r->j, &sealed);
		if (ret < 0)
			return ret;
		failpoint("round-sealed");
		t0 = now_ns();
		flush_ns = 0;
		ret = apply_all(r, sealed, &applied, &flush_ns);
		if (ret < 0)
			return ret;
		failpoint("round-applied");
		dt = now_ns() - t0;
		if (applied >= (1u << 20) && dt > 0)
			__atomic_store_n(&r->apply_bps, applied * 1000000000ull / dt, __ATOMIC_RELAXED);
		ret = journal_drop(r->j, sealed);
		if (ret < 0)
			return ret;
		failpoint("round-dropped");
		pthread_mutex_lock(&r->lock);
		round = ++r->rounds;
		pthread_mutex_unlock(&r->lock);
		log_debug("relocation %llu: round %u applied %llu KiB of %llu KiB journaled in %.1f ms (flush %.1f ms)",
			 (unsigned long long)r->id, round, (unsigned long long)(applied >> 10),
			 (unsigned long long)(active >> 10), (double)dt / 1e6, (double)flush_ns / 1e6);
	}
}

/* ------------------------------------------------------------ verify */

/* Blocks of [off, off+len) whose newest data is not on D yet (a journal
 * record, or past a truncation the next apply makes) read as zeros on both
 * sides: the final apply writes them from the checksummed journal. */
static void verify_mask(const struct rfile *f, char *v, char *d, size_t len, uint64_t off)
{
	for (uint64_t pos = off; pos < off + len; pos += BS) {
		size_t n = off + len - pos < BS ? (size_t)(off + len - pos) : BS;

		if (extmap_get(&f->map, pos / BS, NULL) == EXTMAP_JOURNAL || pos >= f->d_cut) {
			memset(v + (pos - off), 0, n);
			memset(d + (pos - off), 0, n);
		}
	}
}

/* Compares D with the application's view of f, chunk by chunk, by XXH3-128.
 * Each chunk is read under the file's lock, so both sides are the same
 * instant; writers wait for one chunk at most. */
static int verify_file(struct reloc *r, struct rfile *f, char *v, char *d)
{
	for (uint64_t off = 0;; off += COPY_CHUNK) {
		size_t len = COPY_CHUNK, at, last;
		int ret;

		if (reloc_stopping(r))
			return -ECANCELED;
		pthread_rwlock_rdlock(&f->lock);
		if (off >= f->size) {
			pthread_rwlock_unlock(&f->lock);
			return 0;
		}
		if (f->size - off < len)
			len = (size_t)(f->size - off);
		ret = view_read(r, f, v, len, off);
		/* A short D reads as zeros: its zeros come with the apply. */
		if (ret == 0)
			ret = fileutil_pread_full(f->d_fd, d, len, (off_t)off, NULL);
		if (ret == 0)
			verify_mask(f, v, d, len, off);
		pthread_rwlock_unlock(&f->lock);
		if (ret < 0)
			return ret;
		if (verify_chunk(v, d, len, &at, &last)) {
			XXH128_hash_t hv = XXH3_128bits(v, len), hd = XXH3_128bits(d, len);
			char rel[PATH_MAX];

			if (reloc_rel_path(r, f->b_fd, rel, sizeof(rel)) < 0)
				snprintf(rel, sizeof(rel), "inode %llu", (unsigned long long)f->id);
			reloc_fail(r, "verify: %s on %s differs from the source at byte %llu "
				   "(chunk %llu, XXH3-128 %016llx%016llx, expected %016llx%016llx)",
				   rel, r->dst_ds, (unsigned long long)off + at,
				   (unsigned long long)(off / COPY_CHUNK),
				   (unsigned long long)hd.high64, (unsigned long long)hd.low64,
				   (unsigned long long)hv.high64, (unsigned long long)hv.low64);
			return -EILSEQ;
		}
	}
}

/* --verify: every file of D against the source view, outside the pause. */
static int verify_all(struct reloc *r)
{
	size_t n;
	struct rfile **files = files_snapshot(r, &n);
	char *v = malloc(COPY_CHUNK), *d = malloc(COPY_CHUNK);
	uint64_t bytes = 0, t0 = now_ns();
	int ret = 0;

	if (files == NULL || v == NULL || d == NULL) {
		ret = -ENOMEM;
		reloc_fail(r, "verify: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		ret = verify_file(r, files[i], v, d);
		if (ret == 0)
			bytes += files[i]->size;
		else if (ret != -ECANCELED && ret != -EILSEQ)
			reloc_fail(r, "verify: reading %s failed: %s", r->dst_ds, strerror(-ret));
	}
	if (ret == 0)
		log_notice("relocation %llu of %s: verified %zu files, %llu bytes, in %.1f s",
			   (unsigned long long)r->id, r->home, n, (unsigned long long)bytes,
			   (double)(now_ns() - t0) / 1e9);
out:
	free(v);
	free(d);
	free(files);
	return ret;
}

/* ------------------------------------------------------------ cutover */

/* Every destination file whose source is still linked must still be linked:
 * one removed behind relocfs's back would vanish at the flip. Outside the
 * pause: one fstat a file. */
static int dest_files_check(struct reloc *r)
{
	size_t n;
	struct rfile **files = files_snapshot(r, &n);
	int ret = 0;

	if (files == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct stat b, d;
		char rel[PATH_MAX];

		if (fstat(files[i]->b_fd, &b) < 0 || b.st_nlink == 0)
			continue;	/* unlinked through the mount: mirrored */
		if (fstat(files[i]->d_fd, &d) == 0 && d.st_nlink > 0)
			continue;
		if (reloc_rel_path(r, files[i]->b_fd, rel, sizeof(rel)) < 0)
			snprintf(rel, sizeof(rel), "inode %llu", (unsigned long long)files[i]->id);
		reloc_fail(r, "the destination copy of %s in %s/%s was removed", rel, r->dst_ds, r->home);
		ret = -ENOENT;
	}
	free(files);
	return ret;
}

/* In the pause: the last generation onto D, times, the flip. Flushing D is
 * left to flush_dest, after the pause: a flush of what the last round wrote
 * can take longer than the whole budget. */
static int cutover(struct reloc *r)
{
	uint64_t tq, t0, t1 = 0, t2 = 0, t3 = 0, applied = 0;
	struct timespec wall;
	int ret;

	/* The pause starts when new operations start to wait: the drain of
	 * those in flight is part of it. */
	clock_gettime(CLOCK_REALTIME, &wall);
	tq = now_ns();
	r->host->quiesce(r->host_home);
	t0 = now_ns();
	ret = dest_check(r);
	if (ret == 0)
		ret = apply_all(r, 0, &applied, NULL);
	t1 = now_ns();
	if (ret == 0) {
		failpoint("cutover-applied");
		ret = sync_times(r, r->src_home_fd, r->dst_home_fd);
	}
	t2 = now_ns();
	if (ret == 0) {
		struct stat st;
		int d = openat(r->dst_home_fd, ".", O_PATH | O_CLOEXEC);

		if (d >= 0 && fstat(r->src_home_fd, &st) == 0)
			treeutil_set_times(d, &st, NULL);
		if (d >= 0)
			close(d);
	}
	if (ret == 0)
		ret = r->host->flip(r->host_home, r);
	t3 = now_ns();
	if (ret == 0)
		failpoint("cutover-flipped");
	pthread_mutex_lock(&r->lock);
	r->pause_ms = (double)(now_ns() - tq) / 1e6;
	r->pause_at = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
	pthread_mutex_unlock(&r->lock);
	__atomic_store_n(&r->throttle_bps, 0, __ATOMIC_RELAXED);
	r->host->resume(r->host_home);
	if (ret == 0)
		log_notice("relocation %llu of %s: cut over to %s, pause %.3f ms (drain %.3f, apply of %llu KiB "
			   "%.3f, times %.3f, flip %.3f)", (unsigned long long)r->id, r->home, r->dst_ds,
			   r->pause_ms, (double)(t0 - tq) / 1e6, (unsigned long long)(applied >> 10),
			   (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, (double)(t3 - t2) / 1e6);
	return ret;
}

/* After the flip and D's flush, D holds every journaled block on disk:
 * the journal is no longer needed, by a recovery either (what its replay
 * would write is in D already). Deleting it before the cutover is recorded
 * frees the state dir, which the journal may have filled. Oldest first,
 * each deletion flushed: a crash leaves the newest generations, whose
 * replay onto D, in order, changes nothing. */
static void drop_journal(struct reloc *r)
{
	struct journal *j;
	int ret;

	pthread_mutex_lock(&r->lock);
	j = r->j;
	r->j = NULL;
	pthread_mutex_unlock(&r->lock);
	journal_close(j);
	ret = journal_remove(r->rdir_fd);
	if (ret < 0)	/* what is left is a suffix: still correct */
		log_warning("relocation %llu: deleting the journal: %s", (unsigned long long)r->id,
			    strerror(-ret));
	failpoint("cutover-journal-dropped");
}

/* The placement naming D, then the phase cleanup, durable in the state
 * dir. Both write new files, so a failure is worth trying again (unlike a
 * failed fsync of D, whose lost pages may since look clean). */
static int record_cutover(struct reloc *r)
{
	for (int tries = 1;; tries++) {
		int ret = r->host->placement_sync(r->host_home);

		/* Recovery of a "cutover" maps the journal through the source
		 * tree: without this phase on disk the source must stay. */
		if (ret == 0)
			ret = reloc_set_phase(r, RELOC_CLEANUP);
		if (ret == 0 || tries == RECORD_TRIES)
			return ret;
		log_warning("relocation %llu of %s: recording the cutover in the state dir failed: "
			    "%s; trying again in 1 s", (unsigned long long)r->id, r->home,
			    strerror(-ret));
		sleep(1);
	}
}

/* After the pause: makes the destination durable, then lets the operations
 * that waited for it go on. Until D is flushed, the journal is the durable
 * copy of the last generation, and a recovery replays it onto D; until the
 * placement naming D is on disk, a recovery may roll forward from the
 * source's names and attributes. Acknowledging no fsync meanwhile keeps
 * either from undoing one. So if this fails, those operations fail too,
 * until the next mount. *step names what failed. */
static int flush_dest(struct reloc *r, const char **step)
{
	int ret = treeutil_sync_tree(r->dst_home_fd);

	*step = "flushing the destination";
	if (ret == 0 && fsync(r->dst_ds_fd) < 0)
		ret = -errno;
	if (ret == 0) {
		failpoint("flush-done");
		drop_journal(r);
		*step = "recording it in the state dir";
		ret = record_cutover(r);
	}
	r->host->durable(r->host_home, ret);
	return ret;
}

/* Deletes the journal's generations, the state file and their directory,
 * in that order: the generations oldest first, each deletion flushed, so a
 * crash leaves the state with the newest generations (replayed in order,
 * they end on current data), never with older ones alone, which recovery
 * would replay over newer data. */
static void remove_state(struct reloc *r)
{
	struct journal *j;
	bool had_rdir = r->rdir_fd >= 0;
	int ret;

	pthread_mutex_lock(&r->lock);
	j = r->j;
	r->j = NULL;
	pthread_mutex_unlock(&r->lock);
	journal_close(j);
	if (had_rdir) {
		ret = journal_remove(r->rdir_fd);
		if (ret == 0 && unlinkat(r->rdir_fd, "state", 0) < 0 && errno != ENOENT)
			ret = -errno;
		if (ret == 0 && fsync(r->rdir_fd) < 0)
			ret = -errno;
		close(r->rdir_fd);
		r->rdir_fd = -1;
		if (ret < 0) {
			/* The rest must stay: recovery replays what is left. */
			log_warning("relocation %llu: deleting its state in %s: %s",
				    (unsigned long long)r->id, r->rdir_name, strerror(-ret));
			return;
		}
	}
	/* Whatever else is left (a temp file of a state write). Without the
	 * directory's descriptor, only an empty directory goes. */
	if ((had_rdir ? treeutil_remove(r->state_dirfd, r->rdir_name)
		      : unlinkat(r->state_dirfd, r->rdir_name, AT_REMOVEDIR)) < 0)
		log_warning("relocation %llu: could not remove %s", (unsigned long long)r->id,
			    r->rdir_name);
	fsync(r->state_dirfd);
}

/* The state dir cannot take the final phase (full, most likely, which is
 * often why the relocation failed): B is restored and flushed, so the
 * journal is no longer needed. Renaming the state file to "forgotten"
 * needs no new block (the directory holds a handful of names) and makes
 * recovery forget the relocation, journal records or not; the journal goes
 * next. Only the destination copy, removed right after, is not known to
 * recovery then. */
static int forget_journal(struct reloc *r)
{
	/* Unlinking needs no space at all; recovery then refuses a journal
	 * with records, should relocfs stop before it is deleted. */
	if (renameat(r->rdir_fd, "state", r->rdir_fd, RECOVER_FORGOTTEN) < 0 &&
	    unlinkat(r->rdir_fd, "state", 0) < 0 && errno != ENOENT)
		return -errno;
	if (fsync(r->rdir_fd) < 0)
		return -errno;
	log_warning("relocation %llu: could not record the rollback; its state and journal "
		    "are removed instead", (unsigned long long)r->id);
	remove_state(r);
	return 0;
}

/* A rollback from converge on, if relocfs stops in it, is rolled forward by
 * the recovery (the state says so), which would then keep a source copy
 * that the rollback had partly written back: neither the old home nor the
 * new one. So the state stops asking to keep it before B is written; D
 * holds every byte of it then. */
static void rollback_unkeep(struct reloc *r)
{
	if (!r->opts.keep_source || r->disk_phase < RELOC_CONVERGE ||
	    r->disk_phase > RELOC_CUTOVER)
		return;
	r->opts.keep_source = false;
	if (state_write(r, r->disk_phase) < 0)
		log_warning("relocation %llu of %s: if relocfs stops during the rollback, the kept "
			    "source copy may be left partly written back", (unsigned long long)r->id,
			    r->home);
}

/* Makes the source current again. The final phase is persisted while the
 * home is still quiesced, after B is restored and flushed and before any
 * write reaches B directly: a crash after that point must not have recovery
 * roll forward to a destination that lacks those writes. */
static void rollback(struct reloc *r, bool requested)
{
	enum reloc_phase final = requested ? RELOC_ABORTED : RELOC_FAILED;
	uint64_t tq;
	int ret;

	rollback_unkeep(r);
	restore_rounds(r);
	tq = now_ns();
	r->host->quiesce(r->host_home);
	failpoint("rollback-quiesced");
	ret = restore_source(r);
	if (ret == 0) {
		failpoint("rollback-restored");
		ret = reloc_set_phase(r, final);
		if (ret < 0)
			ret = forget_journal(r);
	}
	if (ret == 0)
		r->host->detach(r->host_home, r);
	r->host->resume(r->host_home);
	if (ret == 0)
		log_notice("relocation %llu of %s: rolled back to the source, pause %.3f ms",
			   (unsigned long long)r->id, r->home, (double)(now_ns() - tq) / 1e6);
	if (ret < 0) {
		/* The source cannot take the data back: stay attached, so the
		 * journal keeps serving it, and keep every file. */
		pthread_mutex_lock(&r->lock);
		snprintf(r->error + strlen(r->error), sizeof(r->error) - strlen(r->error),
			 "%srollback to the source failed: %s; the journal is kept in %s",
			 r->error[0] ? "; " : "", strerror(-ret), r->rdir_name);
		/* In memory only: the state file keeps the phase that tells a
		 * restarted relocfs how to recover. */
		r->phase = RELOC_FAILED;
		pthread_mutex_unlock(&r->lock);
		log_error("relocation %llu of %s: %s", (unsigned long long)r->id, r->home, r->error);
		return;
	}
	failpoint("rollback-state");
	if (r->dst_home_fd >= 0 && treeutil_remove(r->dst_ds_fd, r->home) < 0)
		log_warning("relocation %llu: could not remove %s/%s", (unsigned long long)r->id,
			    r->dst_ds, r->home);
	fsync(r->dst_ds_fd);
	failpoint("rollback-removed");
	remove_state(r);
}

/* Flushes every B once, outside the pause, so that the applications'
 * first fsyncs find nothing left to do there. */
static void sync_bases(struct reloc *r)
{
	size_t n;
	struct rfile **files = files_snapshot(r, &n);

	for (size_t i = 0; files != NULL && i < n; i++) {
		int ret = base_sync(files[i]);

		if (ret < 0)
			log_warning("relocation %llu: flushing a source file: %s",
				    (unsigned long long)r->id, strerror(-ret));
	}
	free(files);
}

/* Converges, waits in READY for a manual cutover, verifies when asked:
 * 0 when the cutover may start. */
static int converge_until_cutover(struct reloc *r)
{
	bool verified = !r->opts.verify;
	int ret;

	for (;;) {
		ret = converge(r);
		if (ret < 0) {
			if (ret != -ECANCELED)
				reloc_fail(r, "apply to %s failed: %s", r->dst_ds, strerror(-ret));
			return ret;
		}
		pthread_mutex_lock(&r->lock);
		if (r->opts.manual_cutover && !r->cutover_req) {
			struct timespec ts;

			if (r->phase != RELOC_READY) {
				pthread_mutex_unlock(&r->lock);
				if (reloc_enter(r, RELOC_READY) < 0)
					return -ECANCELED;
				pthread_mutex_lock(&r->lock);
			}
			/* Keep converging while waiting, so the journal stays small. */
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (!r->abort_req && !r->cutover_req && !r->failed)
				pthread_cond_timedwait(&r->cond, &r->lock, &ts);
			pthread_mutex_unlock(&r->lock);
			failpoint("ready");
			continue;
		}
		pthread_mutex_unlock(&r->lock);
		if (verified)
			break;
		/* In memory: recovery treats verify as the phase before it. */
		reloc_set_phase_mem(r, RELOC_VERIFY);
		if (verify_all(r) < 0)
			return -ECANCELED;
		failpoint("verify-done");
		verified = true;	/* converge again: the journal grew meanwhile */
	}
	if (dest_check(r) < 0 || dest_files_check(r) < 0)
		return -ECANCELED;
	return 0;
}

static void *reloc_thread(void *arg)
{
	struct reloc *r = arg;
	const char *step = NULL;
	bool attached = false;
	int ret;

	r->host->quiesce(r->host_home);
	ret = prepare(r);
	if (ret == 0) {
		failpoint("prepare-tree");
		r->host->attach(r->host_home, r);
		attached = true;
	}
	r->host->resume(r->host_home);
	if (ret < 0) {
		reloc_fail(r, "prepare on %s failed: %s", r->dst_ds, strerror(-ret));
		goto out_rollback;
	}
	if (reloc_enter(r, RELOC_COPY) < 0)
		goto out_rollback;
	sync_bases(r);
	failpoint("copy-start");
	ret = copy_all(r);
	if (ret < 0)
		goto out_rollback;
	failpoint("copy-done");
	/* Before any generation is dropped: recovery rolls forward from here. */
	if (reloc_enter(r, RELOC_CONVERGE) < 0)
		goto out_rollback;
	if (converge_until_cutover(r) < 0)
		goto out_rollback;
	/* Before the flip: a flipped placement with this phase makes recovery
	 * replay the journal onto D, whose last generation may not be durable. */
	if (reloc_enter(r, RELOC_CUTOVER) < 0)
		goto out_rollback;
	failpoint("cutover-state");
	ret = cutover(r);
	if (ret < 0) {
		reloc_fail(r, "cutover failed: %s", strerror(-ret));
		goto out_rollback;
	}
	failpoint("cutover-resumed");
	ret = flush_dest(r, &step);
	if (ret < 0) {
		/* The state and the source stay (and the journal, if D's
		 * flush failed): the next mount's recovery completes the move. */
		pthread_mutex_lock(&r->lock);
		snprintf(r->error, sizeof(r->error), "after the cutover, %s failed: %s; the state "
			 "in %s and the source copy stay for the recovery at the next mount, and "
			 "until then changes to the home fail", step, strerror(-ret), r->rdir_name);
		pthread_mutex_unlock(&r->lock);
		log_error("relocation %llu of %s: %s", (unsigned long long)r->id, r->home, r->error);
		reloc_set_phase_mem(r, RELOC_DONE);
		goto out;
	}
	failpoint("cleanup-state");
	/* The source copy before the state: a crash in between leaves the
	 * state, and recovery finishes the removal. */
	if (!r->opts.keep_source) {
		char name[NAME_MAX + 1];
		int src_ds = open(r->src_ds, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		snprintf(name, sizeof(name), "%s", r->home);
		if (src_ds < 0 || treeutil_remove(src_ds, name) < 0)
			log_warning("relocation %llu: could not remove the source copy %s",
				    (unsigned long long)r->id, r->src_home);
		if (src_ds >= 0) {
			fsync(src_ds);
			close(src_ds);
		}
	}
	failpoint("cleanup-source");
	remove_state(r);
	failpoint("cleanup-journal");
	reloc_set_phase(r, RELOC_DONE);
	goto out;
out_rollback:
	if (attached) {
		rollback(r, !r->failed);
	} else {
		if (r->dst_home_fd >= 0)
			treeutil_remove(r->dst_ds_fd, r->home);
		reloc_set_phase(r, RELOC_FAILED);
		remove_state(r);
	}
out:
	pthread_mutex_lock(&r->lock);
	attached = r->phase == RELOC_FAILED && r->j != NULL;	/* rollback failed */
	pthread_mutex_unlock(&r->lock);
	if (!attached)
		files_release(r);
	r->host->finished(r->host_home, r);
	return NULL;
}

/* ------------------------------------------------------------ public API */

int reloc_start(struct reloc **rp, const struct reloc_params *p)
{
	struct reloc *r = calloc(1, sizeof(*r));
	int ret;

	if (r == NULL)
		return -ENOMEM;
	r->id = p->id;
	snprintf(r->home, sizeof(r->home), "%s", p->home);
	snprintf(r->src_ds, sizeof(r->src_ds), "%s", p->src_ds);
	snprintf(r->dst_ds, sizeof(r->dst_ds), "%s", p->dst_ds);
	snprintf(r->src_home, sizeof(r->src_home), "%s/%s",
		 strcmp(p->src_ds, "/") == 0 ? "" : p->src_ds, p->home);
	snprintf(r->rdir_name, sizeof(r->rdir_name), "reloc-%llu", (unsigned long long)p->id);
	r->opts = p->opts;
	if (r->opts.pause_budget_ms == 0)
		r->opts.pause_budget_ms = 1;
	r->host = p->host;
	r->host_home = p->host_home;
	r->state_dirfd = p->state_dirfd;
	r->src_home_fd = r->dst_ds_fd = r->dst_home_fd = r->rdir_fd = -1;
	r->apply_bps = DEFAULT_APPLY_BPS;
	r->started_ns = now_ns();
	r->phase = RELOC_PREPARE;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	pthread_mutex_init(&r->files_lock, NULL);
	pthread_mutex_init(&r->pace_lock, NULL);
	ret = inomap_pairs_init(&r->pairs);
	if (ret < 0)
		goto out;

	r->src_home_fd = open(r->src_home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->src_home_fd < 0) {
		ret = -errno;
		goto out;
	}
	r->dst_ds_fd = open(r->dst_ds, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dst_ds_fd < 0) {
		ret = -errno;
		goto out;
	}
	if (mkdirat(r->state_dirfd, r->rdir_name, 0700) < 0) {
		ret = -errno;
		goto out;
	}
	r->rdir_fd = openat(r->state_dirfd, r->rdir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->rdir_fd < 0) {
		ret = -errno;
		unlinkat(r->state_dirfd, r->rdir_name, AT_REMOVEDIR);
		goto out;
	}
	ret = journal_open(&r->j, r->rdir_fd, 1);
	if (ret < 0) {
		remove_state(r);
		goto out;
	}
	ret = reloc_set_phase(r, RELOC_PREPARE);
	if (ret == 0)
		ret = -pthread_create(&r->thread, NULL, reloc_thread, r);
	if (ret < 0) {
		remove_state(r);
		goto out;
	}
	*rp = r;
	r = NULL;
out:
	if (r != NULL)
		reloc_free(r);
	return ret;
}

int reloc_abort(struct reloc *r)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (r->phase >= RELOC_CUTOVER)
		ret = -EINVAL;
	else
		r->abort_req = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int reloc_cutover(struct reloc *r)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (!r->opts.manual_cutover || r->phase >= RELOC_CUTOVER || r->abort_req)
		ret = -EINVAL;
	else
		r->cutover_req = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

bool reloc_failing(struct reloc *r)
{
	bool failing;

	pthread_mutex_lock(&r->lock);
	failing = r->failed && r->phase < RELOC_DONE;
	pthread_mutex_unlock(&r->lock);
	return failing;
}

void reloc_get_status(struct reloc *r, struct reloc_status *st)
{
	uint64_t copied, total, elapsed;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&r->lock);
	st->id = r->id;
	snprintf(st->home, sizeof(st->home), "%s", r->home);
	snprintf(st->from, sizeof(st->from), "%s", r->src_ds);
	snprintf(st->to, sizeof(st->to), "%s", r->dst_ds);
	st->phase = r->phase;
	st->rounds = r->rounds;
	st->pause_ms = r->pause_ms;
	st->pause_at = r->pause_at;
	snprintf(st->error, sizeof(st->error), "%s", r->error);
	if (r->j != NULL)
		st->journal_bytes = journal_total_bytes(r->j);
	elapsed = r->copy_started_ns ? now_ns() - r->copy_started_ns : 0;
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_lock(&r->pace_lock);
	st->yielding = r->busy;
	st->yield_s = (double)(r->busy_ns + (r->busy ? now_ns() - r->busy_mark_ns : 0)) / 1e9;
	pthread_mutex_unlock(&r->pace_lock);
	copied = __atomic_load_n(&r->bytes_copied, __ATOMIC_RELAXED);
	total = __atomic_load_n(&r->bytes_total, __ATOMIC_RELAXED);
	st->bytes_copied = copied;
	st->bytes_total = total;
	if (elapsed > 0 && st->phase == RELOC_COPY) {
		st->rate_bps = (uint64_t)((double)copied * 1e9 / (double)elapsed);
		if (st->rate_bps > 0 && total > copied)
			st->eta_s = (total - copied) / st->rate_bps;
	}
}

void reloc_free(struct reloc *r)
{
	if (r->thread)
		pthread_join(r->thread, NULL);
	files_release(r);
	journal_close(r->j);
	if (r->rdir_fd >= 0)
		close(r->rdir_fd);
	if (r->src_home_fd >= 0)
		close(r->src_home_fd);
	if (r->dst_home_fd >= 0)
		close(r->dst_home_fd);
	if (r->dst_ds_fd >= 0)
		close(r->dst_ds_fd);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->files_lock);
	pthread_mutex_destroy(&r->pace_lock);
	inomap_pairs_destroy(&r->pairs);
	free(r);
}

/* ------------------------------------------------------------ namespace */

int reloc_rel_path(struct reloc *r, int src_fd, char *buf, size_t len)
{
	char proc[64], path[PATH_MAX + 1];
	size_t n = strlen(r->src_home);
	ssize_t k;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", src_fd);
	k = readlink(proc, path, PATH_MAX);
	if (k < 0)
		return -errno;
	path[k] = '\0';
	if (!fileutil_path_within(path, r->src_home))
		return -ENOENT;
	if (k >= 10 && strcmp(path + k - 10, " (deleted)") == 0)
		return -ENOENT;
	if (snprintf(buf, len, "%s", path[n] == '/' ? path + n + 1 : path + n) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

struct inomap_pairs *reloc_ino_pairs(struct reloc *r)
{
	return &r->pairs;
}

int reloc_dest_open(struct reloc *r, const char *rel)
{
	return treeutil_open_beneath(r->dst_home_fd, rel, O_PATH);
}


/* Owner of src_dir/name onto dst_dir/name, neither followed. */
static int copy_owner(int src_dir, int dst_dir, const char *name)
{
	struct stat st;

	if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchownat(dst_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* Destination directory (O_RDONLY) matching a source parent descriptor. */
static int dest_parent(struct reloc *r, int parent_fd)
{
	char rel[PATH_MAX];
	int ret = reloc_rel_path(r, parent_fd, rel, sizeof(rel));

	if (ret < 0)
		return ret;
	return treeutil_open_beneath(r->dst_home_fd, rel, O_RDONLY | O_DIRECTORY);
}

static int mirror_create(struct reloc *r, const struct reloc_ns *ns, int dp)
{
	struct stat st;
	int so, d = -1, ret = 0;

	so = openat(ns->parent_fd, ns->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (so < 0)
		return -errno;
	if (fstat(so, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		if (mkdirat(dp, ns->name, 0700) < 0)
			ret = -errno;
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(so, "", target, PATH_MAX);

		if (n < 0) {
			ret = -errno;
			goto out;
		}
		target[n] = '\0';
		if (symlinkat(target, dp, ns->name) < 0)
			ret = -errno;
	} else if (S_ISREG(st.st_mode)) {
		char proc[64];
		int b;

		d = openat(dp, ns->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (d < 0) {
			ret = -errno;
			goto out;
		}
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", so);
		b = open(proc, O_RDONLY | O_CLOEXEC);
		if (b < 0) {
			ret = -errno;
			goto out;
		}
		/* New files start empty on both sides; their data is journaled. */
		if (st.st_size != 0 || rfile_add(r, &st, b, d) == NULL) {
			if (st.st_size != 0)
				close(b);
			ret = -EIO;
			goto out;
		}
		d = -1;
	} else if (mknodat(dp, ns->name, st.st_mode, st.st_rdev) < 0) {
		ret = -errno;
	}
	if (ret == 0) {
		int dob = openat(dp, ns->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

		ret = dob < 0 ? -errno : treeutil_copy_attrs(so, dob, &st);
		if (ret == 0)
			ret = pair_add(r, &st, dob);
		if (dob >= 0)
			close(dob);
	}
out:
	if (d >= 0)
		close(d);
	close(so);
	return ret;
}

void reloc_ns_mirror(struct reloc *r, const struct reloc_ns *ns)
{
	int dp = -1, dp2 = -1, watch = -1, ret = 0;

	if (ns->op == RELOC_NS_ATTR) {
		char rel[PATH_MAX];
		struct stat st;
		int d;

		ret = reloc_rel_path(r, ns->obj_fd, rel, sizeof(rel));
		if (ret == -ENOENT)
			return;		/* unlinked: nothing of it left to mirror */
		if (ret < 0)
			goto out;
		d = treeutil_open_beneath(r->dst_home_fd, rel, O_PATH);
		if (d < 0) {
			ret = d;
			goto out;
		}
		if (fstat(ns->obj_fd, &st) < 0)
			ret = -errno;
		if (ret == 0)
			ret = treeutil_copy_attrs(ns->obj_fd, d, &st);
		close(d);
		goto out;
	}
	dp = dest_parent(r, ns->parent_fd);
	if (dp < 0) {
		ret = dp;
		goto out;
	}
	switch (ns->op) {
	case RELOC_NS_CREATE:
		ret = mirror_create(r, ns, dp);
		break;
	case RELOC_NS_LINK: {
		struct stat st;
		struct rfile *f;
		char rel[PATH_MAX], proc[64];

		if (fstat(ns->obj_fd, &st) < 0) {
			ret = -errno;
			break;
		}
		f = S_ISREG(st.st_mode) ? reloc_file_find(r, st.st_dev, st.st_ino) : NULL;
		if (f != NULL) {
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->d_fd);
		} else {
			int d;

			ret = reloc_rel_path(r, ns->obj_fd, rel, sizeof(rel));
			if (ret < 0)
				break;
			d = treeutil_open_beneath(r->dst_home_fd, rel, O_PATH);
			if (d < 0) {
				ret = d;
				break;
			}
			dp2 = d;	/* closed below */
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", d);
		}
		if (linkat(AT_FDCWD, proc, dp, ns->name, AT_SYMLINK_FOLLOW) < 0)
			ret = -errno;
		break;
	}
	case RELOC_NS_UNLINK:
		watch = pair_watch(dp, ns->name);
		if (unlinkat(dp, ns->name, 0) < 0)
			ret = -errno;
		break;
	case RELOC_NS_RMDIR:
		watch = pair_watch(dp, ns->name);
		if (unlinkat(dp, ns->name, AT_REMOVEDIR) < 0)
			ret = -errno;
		break;
	case RELOC_NS_RENAME:
		dp2 = dest_parent(r, ns->parent2_fd);
		if (dp2 < 0) {
			ret = dp2;
			break;
		}
		if (!(ns->flags & RENAME_EXCHANGE))
			watch = pair_watch(dp2, ns->name2);
		if (renameat2(dp, ns->name, dp2, ns->name2, ns->flags) < 0)
			ret = -errno;
		/* The whiteout left behind is made here as root: it takes the
		 * owner of the source's, which was made as the caller. */
		if (ret == 0 && (ns->flags & RENAME_WHITEOUT))
			ret = copy_owner(ns->parent_fd, dp, ns->name);
		break;
	case RELOC_NS_ATTR:
		break;
	}
out:
	pair_settle(r, watch);
	if (dp >= 0)
		close(dp);
	if (dp2 >= 0)
		close(dp2);
	if (ret < 0)
		reloc_fail(r, "mirroring a namespace change to %s failed: %s", r->dst_ds, strerror(-ret));
}
