/* journal: owns the generation files of one relocation's change journal.
 *
 * Format. A journal is a directory holding files "gen-XXXXXXXX", one per
 * generation (hex number). Each file starts with a 32-byte file header:
 *
 *   0   8  magic "RLFSJRNL"
 *   8   4  version (1)
 *   12  4  generation
 *   16  8  reserved (0)
 *   24  8  XXH3-64 of bytes 0..23
 *
 * then records back to back. A record is a struct journal_rec header
 * (48 bytes: magic "RJRC", type, flags, generation, file id, offset, length,
 * sequence), the data (length bytes, WRITE records only), and an 8-byte
 * XXH3-64 of header and data. Multi-byte fields are in host byte order.
 *
 * Invariants:
 * - Appends go to the active generation only, under j->lock, at the file's
 *   end, so the file is always a prefix of complete records plus at most one
 *   torn one (a crash mid-append), which the checksum exposes.
 * - Sealing closes a generation to appends without flushing it, and the
 *   appends never wait for a flush: journal_sync flushes every generation
 *   that holds records not yet durable, the sealed ones first, so an fsync
 *   covers every record appended before it, whichever generation holds it.
 *   A generation nobody synced reaches the disk only if the kernel writes
 *   it back before it is dropped (its records are then durable in D).
 * - Recovery replays each generation's good prefix. A record lost from a
 *   generation nobody synced was never acknowledged, and every acknowledged
 *   record lies in the synced prefix, so a replay ends on each block's
 *   newest acknowledged data or something newer.
 * - A generation is dropped (its live records being durable in D) only
 *   after the newer ones are flushed if a sync acknowledged any of its
 *   records: an acknowledged record that a newer, unsynced one superseded
 *   was not applied to D, and must not vanish with its generation. The
 *   unlink is made durable before the drop returns, so that a generation
 *   flushed in part never comes back to be replayed over newer data.
 * - Recovery trusts nothing: a record counts only if its magic, generation,
 *   bounds and checksum hold; the first that fails ends the generation. A
 *   read that fails inside the file's size is an error, not an end: what
 *   follows may have been acknowledged. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "relocfs/fileutil.h"
#include "relocfs/journal.h"

#define JOURNAL_FILE_MAGIC "RLFSJRNL"
#define JOURNAL_VERSION 1
#define JOURNAL_FILE_HDR 32
#define JOURNAL_REC_MAGIC 0x43524a52u	/* "RJRC" */
#define JOURNAL_MAX_GENS 8
#define JOURNAL_MAX_REC_DATA (64u << 20)

struct journal_gen {
	uint32_t gen;
	int fd;			/* -1: slot free */
	uint64_t size;
	/* Its records are the journal's bytes [first, last) of j->appended;
	 * last is UINT64_MAX while it is active. Against j->synced these say
	 * whether it needs a flush and whether a sync acknowledged any. */
	uint64_t first, last;
};

struct journal {
	pthread_mutex_t lock;	/* appends, seal, drop, the gens table */
	pthread_mutex_t sync_lock;
	int dirfd;
	struct journal_gen gens[JOURNAL_MAX_GENS];
	int active;		/* index into gens */
	uint64_t seq;
	uint64_t appended;	/* bytes appended to the journal, ever */
	uint64_t synced;	/* of those, made durable; under sync_lock */
	uint64_t dropped_bytes;
	uint64_t total;		/* bytes in live generations */
};

void journal_gen_name(uint32_t gen, char *buf, size_t len)
{
	snprintf(buf, len, "gen-%08x", gen);
}

static int gen_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* True when name is "gen-" and 8 lower-case hex digits; *gen gets them. */
static bool gen_parse(const char *name, uint32_t *gen)
{
	uint32_t g = 0;

	if (strncmp(name, "gen-", 4) != 0 || strlen(name) != 12)
		return false;
	for (const char *p = name + 4; *p; p++) {
		if (*p >= '0' && *p <= '9')
			g = g << 4 | (uint32_t)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			g = g << 4 | (uint32_t)(*p - 'a' + 10);
		else
			return false;
	}
	*gen = g;
	return true;
}

int journal_list(int dirfd, uint32_t **gens, size_t *n)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint32_t *v = NULL;
	size_t k = 0, cap = 0;
	DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
	int ret = 0;

	if (dp == NULL) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	for (struct dirent *de; (de = readdir(dp)) != NULL;) {
		uint32_t g;

		/* Exactly what journal_gen_name writes: anything else ("gen-0x0000a",
		 * upper case, signs) is not ours and is ignored, never read as an
		 * alias of a generation. */
		if (!gen_parse(de->d_name, &g))
			continue;
		if (k == cap) {
			uint32_t *w = realloc(v, (cap ? cap * 2 : 16) * sizeof(*w));

			if (w == NULL) {
				ret = -ENOMEM;
				goto out;
			}
			v = w;
			cap = cap ? cap * 2 : 16;
		}
		v[k++] = g;
	}
	if (k > 1)
		qsort(v, k, sizeof(*v), gen_cmp);
out:
	if (dp != NULL)
		closedir(dp);
	if (ret < 0) {
		free(v);
		v = NULL;
		k = 0;
	}
	*gens = v;
	*n = k;
	return ret;
}

int journal_remove(int dirfd)
{
	uint32_t *gens;
	size_t n;
	int ret = journal_list(dirfd, &gens, &n);

	for (size_t i = 0; ret == 0 && i < n; i++) {
		char name[32];

		journal_gen_name(gens[i], name, sizeof(name));
		if (unlinkat(dirfd, name, 0) < 0 || fsync(dirfd) < 0)
			ret = -errno;
	}
	free(gens);
	return ret;
}

static void file_header(uint32_t gen, unsigned char hdr[JOURNAL_FILE_HDR])
{
	uint32_t version = JOURNAL_VERSION;
	uint64_t zero = 0, sum;

	memcpy(hdr, JOURNAL_FILE_MAGIC, 8); /* NOLINT(bugprone-not-null-terminated-result): a fixed 8-byte field */
	memcpy(hdr + 8, &version, 4);
	memcpy(hdr + 12, &gen, 4);
	memcpy(hdr + 16, &zero, 8);
	sum = XXH3_64bits(hdr, 24);
	memcpy(hdr + 24, &sum, 8);
}

/* A journal read never runs past the end: the index said it was there. */
static int pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t got;
	int ret = fileutil_pread_full(fd, buf, len, off, &got);

	return ret < 0 ? ret : got < len ? -EIO : 0;
}

/* Creates generation gen's file, its header and name durable, and returns
 * its descriptor; needs no lock (nobody else uses that name yet). */
static int gen_file_create(struct journal *j, uint32_t gen)
{
	unsigned char hdr[JOURNAL_FILE_HDR];
	char name[32];
	int fd, ret;

	journal_gen_name(gen, name, sizeof(name));
	fd = openat(j->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	file_header(gen, hdr);
	ret = fileutil_pwrite_full(fd, hdr, sizeof(hdr), 0);
	if (ret == 0 && fdatasync(fd) < 0)
		ret = -errno;
	if (ret == 0 && fsync(j->dirfd) < 0)
		ret = -errno;
	if (ret < 0) {
		close(fd);
		unlinkat(j->dirfd, name, 0);
		return ret;
	}
	return fd;
}

/* Puts a created generation file in slot; caller holds j->lock or owns j. */
static void gen_install(struct journal *j, int slot, uint32_t gen, int fd)
{
	j->gens[slot].gen = gen;
	j->gens[slot].fd = fd;
	j->gens[slot].size = JOURNAL_FILE_HDR;
	j->gens[slot].first = j->appended;
	j->gens[slot].last = UINT64_MAX;
	j->total += JOURNAL_FILE_HDR;
}

int journal_open(struct journal **jp, int dirfd, uint32_t first_gen)
{
	struct journal *j = calloc(1, sizeof(*j));
	int ret;

	if (j == NULL)
		return -ENOMEM;
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->sync_lock, NULL);
	j->dirfd = dirfd;
	for (int i = 0; i < JOURNAL_MAX_GENS; i++)
		j->gens[i].fd = -1;
	ret = gen_file_create(j, first_gen);
	if (ret < 0)
		goto out;
	gen_install(j, 0, first_gen, ret);
	ret = 0;
	j->active = 0;
	*jp = j;
	j = NULL;
out:
	if (j != NULL) {
		pthread_mutex_destroy(&j->lock);
		pthread_mutex_destroy(&j->sync_lock);
		free(j);
	}
	return ret;
}

void journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	for (int i = 0; i < JOURNAL_MAX_GENS; i++)
		if (j->gens[i].fd >= 0)
			close(j->gens[i].fd);
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->sync_lock);
	free(j);
}

/* A record's range fits an off_t: recovery passes it to pwrite, ftruncate
 * and fallocate. */
static bool rec_bounds_ok(unsigned type, uint64_t offset, uint64_t length)
{
	if (offset > INT64_MAX)
		return false;
	return type == JOURNAL_TRUNCATE || length <= INT64_MAX - offset;
}

int journal_append(struct journal *j, enum journal_rec_type type, uint64_t file_id,
		   uint64_t offset, uint64_t length, const void *data,
		   struct journal_loc *loc)
{
	size_t dlen = type == JOURNAL_WRITE ? (size_t)length : 0;
	struct journal_rec rec;
	struct journal_gen *g;
	XXH3_state_t st;
	uint64_t sum;
	struct iovec iov[3];
	ssize_t n;
	int ret = 0;

	if (dlen > JOURNAL_MAX_REC_DATA || !rec_bounds_ok(type, offset, length))
		return -EINVAL;
	memset(&rec, 0, sizeof(rec));
	rec.magic = JOURNAL_REC_MAGIC;
	rec.type = (uint16_t)type;
	rec.file_id = file_id;
	rec.offset = offset;
	rec.length = length;

	pthread_mutex_lock(&j->lock);
	g = &j->gens[j->active];
	rec.gen = g->gen;
	rec.seq = ++j->seq;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, &rec, sizeof(rec));
	if (dlen > 0)
		XXH3_64bits_update(&st, data, dlen);
	sum = XXH3_64bits_digest(&st);
	iov[0].iov_base = &rec;
	iov[0].iov_len = sizeof(rec);
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = dlen;
	iov[2].iov_base = &sum;
	iov[2].iov_len = sizeof(sum);
	n = pwritev(g->fd, iov, 3, (off_t)g->size);
	if (n != (ssize_t)(sizeof(rec) + dlen + sizeof(sum))) {
		/* A short append leaves a torn record; cut it off so the next
		 * append does not sit behind garbage. */
		ret = n < 0 ? -errno : -ENOSPC;
		if (ftruncate(g->fd, (off_t)g->size) < 0)
			ret = -EIO;
		goto out;
	}
	if (loc != NULL) {
		loc->gen = g->gen;
		loc->off = g->size + sizeof(rec);
	}
	g->size += (uint64_t)n;
	j->total += (uint64_t)n;
	j->appended += (uint64_t)n;
out:
	pthread_mutex_unlock(&j->lock);
	return ret;
}

static struct journal_gen *gen_find(struct journal *j, uint32_t gen)
{
	for (int i = 0; i < JOURNAL_MAX_GENS; i++)
		if (j->gens[i].fd >= 0 && j->gens[i].gen == gen)
			return &j->gens[i];
	return NULL;
}

int journal_read(struct journal *j, const struct journal_loc *loc, void *buf, size_t len)
{
	struct journal_gen *g;
	int fd;

	/* The caller's index keeps the generation alive while it reads, so
	 * only the lookup needs the lock. */
	pthread_mutex_lock(&j->lock);
	g = gen_find(j, loc->gen);
	fd = g != NULL ? g->fd : -1;
	pthread_mutex_unlock(&j->lock);
	if (fd < 0)
		return -ENOENT;
	return pread_full(fd, buf, len, (off_t)loc->off);
}

/* Flushes every generation with records not yet durable (the sealed ones,
 * then the active one); caller holds sync_lock, which keeps seal and drop
 * out, so the slots and descriptors stay. */
static int sync_locked(struct journal *j)
{
	int fds[JOURNAL_MAX_GENS];
	uint64_t target;
	int n = 0;

	pthread_mutex_lock(&j->lock);
	target = j->appended;
	for (int i = 0; i < JOURNAL_MAX_GENS; i++) {
		const struct journal_gen *g = &j->gens[i];

		if (i != j->active && g->fd >= 0 && g->first < g->last && j->synced < g->last)
			fds[n++] = g->fd;
	}
	fds[n++] = j->gens[j->active].fd;
	pthread_mutex_unlock(&j->lock);
	/* Nothing is acknowledged before all are flushed. */
	for (int i = 0; i < n; i++)
		if (fdatasync(fds[i]) < 0)
			return -errno;
	j->synced = target;
	return 0;
}

int journal_sync(struct journal *j)
{
	uint64_t target;
	int ret = 0;

	pthread_mutex_lock(&j->lock);
	target = j->appended;
	pthread_mutex_unlock(&j->lock);

	pthread_mutex_lock(&j->sync_lock);
	/* Someone else's flush, started after our append, covered us. */
	if (j->synced < target)
		ret = sync_locked(j);
	pthread_mutex_unlock(&j->sync_lock);
	return ret;
}

int journal_seal(struct journal *j, uint32_t *sealed)
{
	struct journal_gen *g;
	uint32_t next;
	int slot = -1, fd = -1, ret = 0;

	/* One seal at a time, and no sync between the choice of the slot and
	 * the switch (it would flush the wrong set). */
	pthread_mutex_lock(&j->sync_lock);
	pthread_mutex_lock(&j->lock);
	for (int i = 0; i < JOURNAL_MAX_GENS; i++) {
		if (j->gens[i].fd < 0) {
			slot = i;
			break;
		}
	}
	next = j->gens[j->active].gen + 1;
	pthread_mutex_unlock(&j->lock);
	if (slot < 0) {
		ret = -EMFILE;
		goto out;
	}
	/* Created before the switch, so appends never wait for its flushes. */
	fd = gen_file_create(j, next);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	pthread_mutex_lock(&j->lock);
	g = &j->gens[j->active];
	g->last = j->appended;
	gen_install(j, slot, next, fd);
	*sealed = g->gen;
	j->active = slot;
	pthread_mutex_unlock(&j->lock);
out:
	pthread_mutex_unlock(&j->sync_lock);
	return ret;
}

int journal_drop(struct journal *j, uint32_t gen)
{
	struct journal_gen *g;
	bool acked = false;
	char name[32];
	int fd = -1, ret = 0;

	/* Not while a sync may be flushing this generation's descriptor. */
	pthread_mutex_lock(&j->sync_lock);
	pthread_mutex_lock(&j->lock);
	g = gen_find(j, gen);
	if (g == NULL)
		ret = -ENOENT;
	else if (g == &j->gens[j->active])
		ret = -EBUSY;
	else
		acked = g->first < g->last && j->synced > g->first && j->synced < j->appended;
	pthread_mutex_unlock(&j->lock);
	if (ret < 0)
		goto out;
	/* Newer records may supersede acknowledged ones of this generation
	 * (those were not applied): they must be durable before it goes. */
	if (acked) {	/* and something is not durable yet */
		ret = sync_locked(j);
		if (ret < 0)
			goto out;
	}
	journal_gen_name(gen, name, sizeof(name));
	if (unlinkat(j->dirfd, name, 0) < 0 && errno != ENOENT) {
		ret = -errno;
		goto out;
	}
	if (fsync(j->dirfd) < 0) {
		ret = -errno;
		goto out;
	}
	pthread_mutex_lock(&j->lock);
	fd = g->fd;
	g->fd = -1;
	j->total -= g->size;
	j->dropped_bytes += g->size;
	pthread_mutex_unlock(&j->lock);
out:
	pthread_mutex_unlock(&j->sync_lock);
	/* The last close frees the file's blocks (a synchronous discard on a
	 * filesystem mounted with -o discard): milliseconds that no append or
	 * sync may wait for. */
	if (fd >= 0)
		close(fd);
	return ret;
}

uint32_t journal_active_gen(struct journal *j)
{
	uint32_t gen;

	pthread_mutex_lock(&j->lock);
	gen = j->gens[j->active].gen;
	pthread_mutex_unlock(&j->lock);
	return gen;
}

uint64_t journal_active_bytes(struct journal *j)
{
	uint64_t n;

	pthread_mutex_lock(&j->lock);
	n = j->gens[j->active].size - JOURNAL_FILE_HDR;
	pthread_mutex_unlock(&j->lock);
	return n;
}

uint64_t journal_total_bytes(struct journal *j)
{
	uint64_t n;

	pthread_mutex_lock(&j->lock);
	n = j->total;
	pthread_mutex_unlock(&j->lock);
	return n;
}

long journal_scan(int dirfd, uint32_t gen, journal_scan_fn fn, void *arg, uint64_t *torn)
{
	unsigned char hdr[JOURNAL_FILE_HDR], want[JOURNAL_FILE_HDR];
	struct journal_rec rec;
	char name[32];
	struct stat st;
	uint64_t pos, sum;
	char *data = NULL;
	size_t cap = 0;
	long good = 0;
	int fd, ret;

	*torn = 0;
	journal_gen_name(gen, name, sizeof(name));
	/* O_NONBLOCK: a FIFO planted under this name must not hang the mount. */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		good = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		good = -EINVAL;
		goto out;
	}
	/* A crash between the creation of the file and its header's flush
	 * leaves at most a header's bytes, and no record was ever in it:
	 * -ENODATA tells that apart from a damaged generation. */
	file_header(gen, want);
	if (st.st_size < JOURNAL_FILE_HDR) {
		good = -ENODATA;
		goto out;
	}
	ret = pread_full(fd, hdr, sizeof(hdr), 0);
	if (ret < 0) {
		good = ret;
		goto out;
	}
	if (memcmp(hdr, want, sizeof(hdr)) != 0) {
		good = st.st_size == JOURNAL_FILE_HDR ? -ENODATA : -EBADMSG;
		goto out;
	}
	pos = JOURNAL_FILE_HDR;
	while (pos < (uint64_t)st.st_size) {
		uint64_t left = (uint64_t)st.st_size - pos;
		struct journal_loc loc;
		size_t dlen;

		/* Inside st_size a read must succeed: a failure is an error of
		 * the disk, not a torn tail, and the records after it may well
		 * have been acknowledged. */
		if (left < sizeof(rec) + sizeof(sum))
			break;
		ret = pread_full(fd, &rec, sizeof(rec), (off_t)pos);
		if (ret < 0) {
			good = ret;
			goto out;
		}
		if (rec.magic != JOURNAL_REC_MAGIC || rec.gen != gen ||
		    rec.type < JOURNAL_WRITE || rec.type > JOURNAL_ZERO)
			break;
		dlen = rec.type == JOURNAL_WRITE ? (size_t)rec.length : 0;
		if (dlen > JOURNAL_MAX_REC_DATA || sizeof(rec) + dlen + sizeof(sum) > left)
			break;
		if (dlen > cap) {
			char *p = realloc(data, dlen);

			if (p == NULL) {
				good = -ENOMEM;
				goto out;
			}
			data = p;
			cap = dlen;
		}
		/* data is still NULL before the first WRITE record */
		ret = dlen > 0 ? pread_full(fd, data, dlen, (off_t)(pos + sizeof(rec))) : 0;
		if (ret == 0)
			ret = pread_full(fd, &sum, sizeof(sum), (off_t)(pos + sizeof(rec) + dlen));
		if (ret < 0) {
			good = ret;
			goto out;
		}
		{
			XXH3_state_t xs;

			XXH3_64bits_reset(&xs);
			XXH3_64bits_update(&xs, &rec, sizeof(rec));
			if (dlen > 0)
				XXH3_64bits_update(&xs, data, dlen);
			if (XXH3_64bits_digest(&xs) != sum)
				break;
		}
		/* Checksummed but out of range: written by something else. */
		if (!rec_bounds_ok(rec.type, rec.offset, rec.length)) {
			good = -ERANGE;
			goto out;
		}
		loc.gen = gen;
		loc.off = pos + sizeof(rec);
		ret = fn(&rec, data, &loc, arg);
		if (ret < 0) {
			good = ret;
			goto out;
		}
		good++;
		pos += sizeof(rec) + dlen + sizeof(sum);
	}
	*torn = (uint64_t)st.st_size - pos;
out:
	free(data);
	close(fd);
	return good;
}
