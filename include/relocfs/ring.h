/* ring: FUSE requests over io_uring (Linux 6.14 and later, when the fuse
 * module's enable_uring parameter is on), beside libfuse's /dev/fuse loop. */
#ifndef RELOCFS_RING_H
#define RELOCFS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <fuse_lowlevel.h>

/* The kernel's interface (include/uapi/linux/fuse.h, protocol 7.42), which
 * Debian 12's headers predate. */
#define RING_FUSE_OVER_IO_URING (1ULL << 41)
#define RING_HEADER_IN_OUT 128
#define RING_HEADER_OP_IN 128
/* The smallest payload the ring is used with: the kernel copies a request
 * into an entry up to its own payload size (fuse.max_request_kib), and a
 * SETXATTR carries a name and a value of up to 64 KiB (Linux 6.18 does not
 * check that it fits: a kernel BUG). */
#define RING_MIN_PAYLOAD (64 * 1024 + 4096)

struct ring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

struct ring_req_header {
	char in_out[RING_HEADER_IN_OUT];	/* fuse_in_header / fuse_out_header */
	char op_in[RING_HEADER_OP_IN];		/* the request's first argument */
	struct ring_ent_in_out ent;
};

/* Starts the ring threads on the session's device fd: threads_per_queue
 * entries on each of the kernel's queues (one per possible CPU), each with
 * a payload buffer of payload bytes. Until every queue has an entry the
 * kernel keeps to /dev/fuse. 0, or -errno if none could start. */
int ring_start(struct fuse_session *se, int fd, unsigned threads_per_queue, size_t payload);

/* Stops and joins the ring threads (waiting for requests being served);
 * call after the session loop returned, before unmounting. */
void ring_stop(void);

/* The kernel's queue count: its possible CPUs. */
unsigned ring_queues(void);

/* Takes the reply if it answers the request this thread serves from the
 * ring: copies it into the ring entry, to be committed after the handler
 * returns. Returns its length, or -1 if it is not the ring's (write it to
 * /dev/fuse). */
ssize_t ring_take_reply(const struct iovec *iov, int count);

/* The entry's payload buffer if the calling thread serves a request from
 * the ring and it holds size bytes, else NULL: a READ's data read into it
 * is replied without a copy. Valid until the reply. */
void *ring_reply_buffer(size_t size);

/* The /dev/fuse form of a ring entry's request, built in place in front
 * of the payload (exposed for the unit tests): hdr holds the header and
 * first argument, payload (cap bytes, with RING_HEADROOM bytes writable
 * before it) the rest. Returns the message's start and sets *len, or NULL
 * if the entry is inconsistent. */
#define RING_HEADROOM 4096
void *ring_frame(const struct ring_req_header *hdr, char *payload, size_t cap, size_t *len);

#endif
