/* journal: the append-only change journal of one relocation, in numbered
 * generations, every record sealed by an XXH3-64 checksum. */
#ifndef RELOCFS_JOURNAL_H
#define RELOCFS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

enum journal_rec_type {
	JOURNAL_WRITE = 1,	/* length bytes of data at offset follow */
	JOURNAL_TRUNCATE = 2,	/* file size becomes offset */
	JOURNAL_ZERO = 3,	/* [offset, offset + length) reads as zeros */
};

/* On-disk record header, host byte order (journals do not travel between
 * machines). The data and then the checksum follow it. */
struct journal_rec {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint32_t gen;
	uint32_t reserved;
	uint64_t file_id;
	uint64_t offset;
	uint64_t length;
	uint64_t seq;
};

/* Where a record's data lives: generation and byte offset in its file. */
struct journal_loc {
	uint32_t gen;
	uint64_t off;
};

struct journal;

/* Opens the journal directory dirfd (kept, not closed) and starts
 * generation first_gen as the active one (created empty). */
int journal_open(struct journal **jp, int dirfd, uint32_t first_gen);
void journal_close(struct journal *j);

/* Appends one record; for WRITE, data holds length bytes. loc receives where
 * the data landed (for reads). Thread-safe. */
int journal_append(struct journal *j, enum journal_rec_type type, uint64_t file_id,
		   uint64_t offset, uint64_t length, const void *data,
		   struct journal_loc *loc);

/* Reads len bytes of data at loc (which must name a live generation). */
int journal_read(struct journal *j, const struct journal_loc *loc, void *buf, size_t len);

/* Makes every record appended so far durable, in whichever generation it
 * is (sealed ones are flushed here, not when sealed). Concurrent callers
 * share one flush (group commit). */
int journal_sync(struct journal *j);

/* Closes the active generation to appends and starts the next one, without
 * flushing either: appends go on meanwhile. *sealed receives the sealed
 * generation's number. */
int journal_seal(struct journal *j, uint32_t *sealed);

/* Deletes a sealed generation whose live records are durable elsewhere.
 * If a sync acknowledged any of its records, the newer generations are
 * flushed first (a newer record may supersede an acknowledged one); the
 * deletion itself is durable when it returns. */
int journal_drop(struct journal *j, uint32_t gen);

uint32_t journal_active_gen(struct journal *j);
uint64_t journal_active_bytes(struct journal *j);
uint64_t journal_total_bytes(struct journal *j);

/* Recovery: reads generation file gen of dirfd front to back, calling fn for
 * every record whose checksum holds, and stops at the first that does not.
 * *torn receives the bytes dropped after the last good record. Returns the
 * number of good records or a negative errno: -EBADMSG for a file that is
 * not a journal generation or has another version, -ENODATA for one no
 * longer than a header without a valid one (a crash while it was created),
 * -EINVAL for something not a regular file, -ERANGE for a checksummed
 * record whose range overflows an off_t, and the read's error (-EIO...)
 * when the file cannot be read up to its size. */
typedef int (*journal_scan_fn)(const struct journal_rec *rec, const void *data,
			       const struct journal_loc *loc, void *arg);
long journal_scan(int dirfd, uint32_t gen, journal_scan_fn fn, void *arg, uint64_t *torn);

/* Name of generation gen's file: "gen-%08x". */
void journal_gen_name(uint32_t gen, char *buf, size_t len);

/* The generations whose files dirfd holds, oldest first: a malloc'd array
 * in *gens (NULL when there is none), their count in *n. */
int journal_list(int dirfd, uint32_t **gens, size_t *n);
/* Deletes every generation file of dirfd, oldest first, each deletion
 * flushed: a crash in between leaves the newest ones. */
int journal_remove(int dirfd);

#endif
