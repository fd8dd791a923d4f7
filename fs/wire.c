/* wire: owns relocfs's view of the raw FUSE messages between /dev/fuse and
 * libfuse.
 *
 * Why it exists: without FUSE_HANDLE_KILLPRIV_V2 a FUSE superblock is not
 * SB_NOSEC, so the kernel asks for security.capability (a GETXATTR round
 * trip) before every write(2), which halves the rate of small writes.
 * libfuse 3.14 can neither negotiate that flag (protocol 7.33) nor pass the
 * server the kill flags that come with it. Through libfuse's custom I/O
 * hooks, this module:
 *  - adds FUSE_HANDLE_KILLPRIV_V2 to the INIT reply when the kernel offered
 *    it and libfuse hands every request to the read hook;
 *  - records, per worker thread, whether the request being served asks the
 *    server to drop setuid/setgid: WRITE's FUSE_WRITE_KILL_SUIDGID, OPEN's
 *    FUSE_OPEN_KILL_SUIDGID, SETATTR's FATTR_KILL_SUIDGID. The
 *    kernel sets them for callers without CAP_FSETID; fsops drops the bits
 *    as the VFS would;
 *  - adds FUSE_DIRECT_IO_ALLOW_MMAP to the INIT reply when offered by a
 *    kernel of protocol 7.40 (Linux 6.9) or later, and
 *    FOPEN_PARALLEL_DIRECT_WRITES, which libfuse 3.14 cannot set, to an OPEN
 *    or CREATE reply that fsops asks for. Without it the kernel serializes
 *    every O_DIRECT write to a file on its inode lock, so 16 writers of one
 *    disk queue behind each other's round trips. (In 6.6 to 6.8 agreeing
 *    to ALLOW_MMAP turned parallel direct writes off: not worth asking.)
 *  - adds FUSE_OVER_IO_URING to the INIT reply when the kernel offers it
 *    (protocol 7.42) and fuse.io_uring asks for it, then starts the ring
 *    (fs/ring.c) once the kernel has taken that reply; the writev hook
 *    hands the ring the replies to the requests it serves.
 *
 * Invariants: every byte passes unchanged but those flags of the INIT
 * reply and of the OPEN and CREATE replies fsops asks for; a request too
 * short for the field read leaves the record false (libfuse rejects it
 * anyway). libfuse's loops read a request and serve it
 * on the same thread before reading the next, so the per-thread record is
 * that of the request being served. One session per process. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "relocfs/log.h"
#include "relocfs/ring.h"
#include "relocfs/wire.h"

static _Atomic uint64_t init_unique;	/* the INIT being answered, 0 if none */
static atomic_bool offered;		/* the kernel's INIT offered the flag */
static atomic_bool wanted;		/* libfuse passes every request here */
static atomic_bool agreed;		/* the reply carried it */
static atomic_bool mmap_offered;	/* FUSE_DIRECT_IO_ALLOW_MMAP offered */
static atomic_bool mmap_agreed;		/* and the reply carried it */
static atomic_bool ring_offered;	/* FUSE_OVER_IO_URING offered */
static unsigned ring_per_queue;		/* threads per queue; 0: no ring */
static size_t ring_payload;		/* what the INIT reply makes the kernel ask */
static struct fuse_session *wire_se;
static __thread bool ring_after_write;	/* this thread writes the INIT reply agreeing */
static __thread bool kill_request;
static __thread uint32_t req_opcode;	/* of the request being served */
static __thread uint64_t req_unique;
static __thread bool open_parallel;	/* its reply: FOPEN_PARALLEL_DIRECT_WRITES */

#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif
#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6)
#endif

/* Where each request that may ask for a kill carries its flag. CREATE is not
 * here: the kernel sends it only for a name it believes absent, so there is
 * nothing to drop. */
static const struct kill_field {
	uint32_t opcode;
	size_t off;		/* of a u32, after the request header */
	uint32_t bit;
} kill_fields[] = {
	{ FUSE_WRITE, offsetof(struct fuse_write_in, write_flags), FUSE_WRITE_KILL_SUIDGID },
	{ FUSE_OPEN, offsetof(struct fuse_open_in, open_flags), FUSE_OPEN_KILL_SUIDGID },
	{ FUSE_SETATTR, offsetof(struct fuse_setattr_in, valid), FATTR_KILL_SUIDGID },
};

/* The u32 at off after the header; false if the message is too short. */
static bool u32_at(const void *buf, size_t len, size_t off, uint32_t *v)
{
	if (len < sizeof(struct fuse_in_header) + off + sizeof(*v))
		return false;
	memcpy(v, (const char *)buf + sizeof(struct fuse_in_header) + off, sizeof(*v));
	return true;
}

void wire_note_request(const void *buf, size_t len)
{
	struct fuse_in_header h;
	uint32_t v;

	kill_request = false;
	req_opcode = 0;
	req_unique = 0;
	open_parallel = false;
	if (len < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	req_opcode = h.opcode;
	req_unique = h.unique;
	if (h.opcode == FUSE_INIT) {
		if (u32_at(buf, len, offsetof(struct fuse_init_in, flags), &v)) {
			uint32_t v2 = 0, minor = 0;

			atomic_store(&offered, (v & FUSE_HANDLE_KILLPRIV_V2) != 0);
			atomic_store(&mmap_offered, (v & FUSE_INIT_EXT) != 0 &&
				     u32_at(buf, len, offsetof(struct fuse_init_in, minor), &minor) &&
				     minor >= 40 &&
				     u32_at(buf, len, offsetof(struct fuse_init_in, flags2), &v2) &&
				     (v2 & (uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32)) != 0);
			atomic_store(&ring_offered, (v & FUSE_INIT_EXT) != 0 && minor >= 42 &&
				     (v2 & (uint32_t)(RING_FUSE_OVER_IO_URING >> 32)) != 0);
			atomic_store(&init_unique, h.unique);
		}
		return;
	}
	for (size_t i = 0; i < sizeof(kill_fields) / sizeof(kill_fields[0]); i++)
		if (h.opcode == kill_fields[i].opcode) {
			kill_request = u32_at(buf, len, kill_fields[i].off, &v) &&
				       (v & kill_fields[i].bit) != 0;
			return;
		}
}

/* An OPEN or CREATE reply of the request this thread serves, whose
 * fuse_open_out ends the body, takes FOPEN_PARALLEL_DIRECT_WRITES. */
static void patch_open_reply(struct iovec *iov, int count)
{
	struct fuse_out_header h;
	struct fuse_open_out out;
	char *at;

	open_parallel = false;
	if ((req_opcode != FUSE_OPEN && req_opcode != FUSE_CREATE) || count != 2 ||
	    iov[0].iov_len < sizeof(h) || iov[1].iov_len < sizeof(out))
		return;
	memcpy(&h, iov[0].iov_base, sizeof(h));
	if (h.unique != req_unique || h.error != 0)
		return;
	at = (char *)iov[1].iov_base + iov[1].iov_len - sizeof(out);
	memcpy(&out, at, sizeof(out));
	out.open_flags |= FOPEN_PARALLEL_DIRECT_WRITES;
	memcpy(at, &out, sizeof(out));
}

void wire_patch_reply(struct iovec *iov, int count, bool want)
{
	uint64_t unique = atomic_load(&init_unique);
	struct fuse_out_header h;
	struct fuse_init_out *out;

	if (open_parallel)
		patch_open_reply(iov, count);
	if (unique == 0 || count < 2 || iov[0].iov_len < sizeof(h))
		return;
	memcpy(&h, iov[0].iov_base, sizeof(h));
	if (h.unique != unique)
		return;
	atomic_store(&init_unique, 0);
	if (h.error != 0 || iov[1].iov_len < offsetof(struct fuse_init_out, flags) + sizeof(out->flags))
		return;
	out = iov[1].iov_base;
	if (want && atomic_load(&offered)) {
		out->flags |= FUSE_HANDLE_KILLPRIV_V2;
		atomic_store(&agreed, true);
		log_debug("init: FUSE_HANDLE_KILLPRIV_V2 added to the reply");
	}
	/* flags2 counts only with FUSE_INIT_EXT, which libfuse sets when the
	 * kernel did; the field is inside every reply of protocol 7.23 on. */
	if (want && atomic_load(&mmap_offered) && (out->flags & FUSE_INIT_EXT) != 0 &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) + sizeof(out->flags2)) {
		out->flags2 |= (uint32_t)(FUSE_DIRECT_IO_ALLOW_MMAP >> 32);
		atomic_store(&mmap_agreed, true);
		log_debug("init: FUSE_DIRECT_IO_ALLOW_MMAP added to the reply");
	}
	if (want && ring_per_queue > 0 && atomic_load(&ring_offered) &&
	    (out->flags & FUSE_INIT_EXT) != 0 &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, max_pages) + sizeof(out->max_pages)) {
		/* The kernel refuses an entry whose payload is smaller than
		 * its largest request or reply. */
		size_t pages = (out->flags & FUSE_MAX_PAGES) ? out->max_pages : 32;

		ring_payload = pages * 4096;
		if (ring_payload < out->max_write)
			ring_payload = out->max_write;
		if (ring_payload < 8192)
			ring_payload = 8192;
		if (ring_payload >= RING_MIN_PAYLOAD) {
			out->flags2 |= (uint32_t)(RING_FUSE_OVER_IO_URING >> 32);
			ring_after_write = true;
			log_debug("init: FUSE_OVER_IO_URING added to the reply");
		} else {
			log_notice("init: fuse.max_request_kib is below %d: requests come over "
				   "/dev/fuse, not io_uring", RING_MIN_PAYLOAD / 1024);
		}
	} else if (ring_per_queue > 0) {
		log_info("init: the kernel does not offer FUSE over io_uring (fuse module "
			 "parameter enable_uring, Linux 6.14 on); requests come over /dev/fuse");
	}
}

static ssize_t wire_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);

	(void)userdata;
	if (n > 0)
		wire_note_request(buf, (size_t)n);
	return n;
}

static ssize_t wire_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	ssize_t n;

	(void)userdata;
	if (open_parallel || atomic_load(&init_unique) != 0)
		wire_patch_reply(iov, count, atomic_load(&wanted));
	n = ring_take_reply(iov, count);
	if (n >= 0)
		return n;
	n = writev(fd, iov, count);
	if (ring_after_write) {
		/* The kernel has taken the INIT reply: entries may register. */
		ring_after_write = false;
		if (n >= 0 && ring_start(wire_se, fuse_session_fd(wire_se), ring_per_queue,
					 ring_payload) < 0)
			log_error("ring: not started; requests come over /dev/fuse");
	}
	return n;
}

int wire_install(struct fuse_session *se, unsigned ring_threads_per_queue)
{
	static const struct fuse_custom_io io = { .read = wire_read, .writev = wire_writev };

	/* The flag promises that relocfs sees every request's kill flag: true
	 * while each request comes through wire_read or the ring, as in
	 * libfuse up to 3.17 without splice (op_init turns splice off); later
	 * ones can receive through their own io_uring. */
	wire_se = se;
	atomic_store(&wanted, fuse_version() >= 314 && fuse_version() < 318);
	ring_per_queue = atomic_load(&wanted) ? ring_threads_per_queue : 0;
	if (!atomic_load(&wanted))
		log_notice("libfuse %d: FUSE_HANDLE_KILLPRIV_V2 not negotiated", fuse_version());
	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

void wire_stop(void)
{
	ring_stop();
}

bool wire_kill_priv_v2(void)
{
	return atomic_load(&agreed);
}

bool wire_kill_suidgid(void)
{
	return kill_request;
}

bool wire_parallel_direct_writes(void)
{
	return atomic_load(&mmap_agreed);
}

void wire_reply_parallel_direct_writes(void)
{
	open_parallel = true;
}
