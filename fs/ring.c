/* ring: owns the transport of FUSE requests over io_uring (the kernel's
 * FUSE_OVER_IO_URING, Linux 6.14 on, used when the fuse module parameter
 * enable_uring is on and the INIT reply agreed to it; see fs/wire.c).
 *
 * Why: over /dev/fuse each request costs the daemon a read(2) and a
 * writev(2) and the requester a wakeup on another CPU. Over the ring the
 * kernel hands a request to an entry registered on the queue of the
 * requester's CPU, and one io_uring_enter commits the reply and fetches the
 * next. A 4k write round trip takes about half the time here.
 *
 * Shape: one thread per ring entry, each with its own io_uring; the kernel
 * has one queue per possible CPU, and every queue needs an entry before it
 * switches from /dev/fuse. A thread turns the entry's request back into the
 * /dev/fuse form in front of its payload (the header and first argument
 * copied, the payload not), hands it to libfuse, and wire's writev hook
 * passes the reply here (ring_take_reply), which copies it into the entry;
 * the thread then commits it and fetches the next request. Forgets,
 * interrupts and notifications stay on /dev/fuse, in libfuse's loop.
 *
 * Invariants: an entry serves one request at a time, and only its own
 * thread writes its buffers; relocfs answers every request on the thread
 * that serves it, so a reply that does not match this thread's request is
 * not the ring's. A request libfuse did not answer is answered EIO, so the
 * entry is never stuck. Threads exit only on ring_stop or when the kernel
 * ends the connection. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <linux/fuse.h>

#include "relocfs/log.h"
#include "relocfs/ring.h"
#include "relocfs/wire.h"

enum { CMD_REGISTER = 1, CMD_COMMIT_AND_FETCH = 2 };

struct ring_cmd_req {		/* in the SQE's 80-byte command area */
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

enum { TAG_CMD = 1, TAG_STOP = 2 };
#define REGISTER_TRIES 3	/* before the ring is in use */

struct ring_thread {
	pthread_t thread;
	bool started;
	bool uring_ok;
	uint16_t qid;
	struct io_uring uring;
	struct ring_req_header *hdr;
	char *region;			/* RING_HEADROOM, then the payload */
	char *payload;
	size_t cap;
	uint64_t unique;		/* of the request served, 0 if none */
	uint64_t commit_id;
	bool replied;
};

static struct fuse_session *ring_se;
static int ring_fd = -1;
static int stop_fd = -1;
static struct ring_thread *threads;
static unsigned nthreads;
static atomic_bool stopping;
static atomic_bool active;
static __thread struct ring_thread *cur;

unsigned ring_queues(void)
{
	/* The kernel's num_possible_cpus(), as libfuse's own ring counts it. */
	int n = get_nprocs_conf();

	return n > 0 ? (unsigned)n : 1;
}

void *ring_frame(const struct ring_req_header *hdr, char *payload, size_t cap, size_t *len)
{
	struct fuse_in_header h;
	size_t psz = hdr->ent.payload_sz, arg0;
	char *start;

	memcpy(&h, hdr->in_out, sizeof(h));
	if (psz > cap || h.len < sizeof(h) + psz)
		return NULL;
	arg0 = h.len - sizeof(h) - psz;
	if (arg0 > RING_HEADER_OP_IN)
		return NULL;
	start = payload - sizeof(h) - arg0;
	memcpy(start, &h, sizeof(h));
	memcpy(start + sizeof(h), hdr->op_in, arg0);
	*len = h.len;
	return start;
}

void *ring_reply_buffer(size_t size)
{
	struct ring_thread *t = cur;

	return t != NULL && t->unique != 0 && size <= t->cap ? t->payload : NULL;
}

ssize_t ring_take_reply(const struct iovec *iov, int count)
{
	struct ring_thread *t = cur;
	struct fuse_out_header oh;
	size_t total = 0;
	int i;

	if (t == NULL || t->unique == 0 || t->replied || count < 1 || iov[0].iov_len < sizeof(oh))
		return -1;
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (oh.unique != t->unique)
		return -1;
	for (i = 1; i < count; i++)
		total += iov[i].iov_len;
	if (total > t->cap) {
		/* Cannot happen with the payload the kernel asked for. */
		log_error("ring: reply of %zu bytes to request %" PRIu64 " exceeds the entry's %zu",
			  total, oh.unique, t->cap);
		oh.error = -EIO;
		total = 0;
	} else {
		char *at = t->payload;

		for (i = 1; i < count; i++) {
			/* Data read into ring_reply_buffer is in place. */
			if (iov[i].iov_base != at)
				memmove(at, iov[i].iov_base, iov[i].iov_len);
			at += iov[i].iov_len;
		}
	}
	oh.len = (uint32_t)(sizeof(oh) + total);
	memcpy(t->hdr->in_out, &oh, sizeof(oh));
	t->hdr->ent.payload_sz = (uint32_t)total;
	t->replied = true;
	return (ssize_t)oh.len;
}

static void prep_cmd(struct ring_thread *t, int op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->uring);
	/* In the headroom's first bytes, clear of the frame that serve()
	 * builds just before the payload. */
	struct iovec *iov = (struct iovec *)t->region;
	struct ring_cmd_req *c;

	iov[0] = (struct iovec){ t->hdr, sizeof(*t->hdr) };
	iov[1] = (struct iovec){ t->payload, t->cap };
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, ring_fd, iov, 2, 0);
	sqe->cmd_op = (uint32_t)op;
	c = (struct ring_cmd_req *)sqe->cmd;
	memset(sqe->cmd, 0, 80);
	c->qid = t->qid;
	c->commit_id = op == CMD_COMMIT_AND_FETCH ? t->commit_id : 0;
	io_uring_sqe_set_data64(sqe, TAG_CMD);
}

static void prep_stop_poll(struct ring_thread *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->uring);

	io_uring_prep_poll_add(sqe, stop_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, TAG_STOP);
}

/* Serves the request in t's entry; its reply is then in the entry. */
static void serve(struct ring_thread *t)
{
	struct fuse_in_header h;
	struct fuse_buf buf = { 0 };
	size_t len;
	void *msg;

	memcpy(&h, t->hdr->in_out, sizeof(h));
	t->commit_id = t->hdr->ent.commit_id;
	t->unique = h.unique;
	t->replied = false;
	msg = ring_frame(t->hdr, t->payload, t->cap, &len);
	if (msg == NULL) {
		log_error("ring: request %" PRIu64 " (opcode %" PRIu32 ") has inconsistent lengths "
			  "(%" PRIu32 " in all, payload %" PRIu32 "): answered EIO",
			  h.unique, h.opcode, h.len, t->hdr->ent.payload_sz);
	} else {
		buf.mem = msg;
		buf.size = len;
		wire_note_request(msg, len);
		fuse_session_process_buf(ring_se, &buf);
	}
	if (!t->replied) {
		struct fuse_out_header oh = { .len = sizeof(oh), .error = -EIO, .unique = h.unique };
		struct iovec iov = { &oh, sizeof(oh) };

		ring_take_reply(&iov, 1);
	}
	t->unique = 0;
}

/* Returns the command's result, or 1 when told to stop. A request handed
 * over with the stop is served first: its requester would wait otherwise. */
static int wait_cmd(struct ring_thread *t)
{
	struct io_uring_cqe *cqe;
	bool stop = false;
	int ret;

	for (;;) {
		ret = io_uring_submit_and_wait(&t->uring, 1);
		if (ret < 0 && ret != -EINTR)
			return ret;
		while (io_uring_peek_cqe(&t->uring, &cqe) == 0) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);

			ret = cqe->res;
			io_uring_cqe_seen(&t->uring, cqe);
			if (tag == TAG_CMD)
				return ret;
			if (tag == TAG_STOP)
				stop = true;
		}
		if (stop || atomic_load(&stopping))
			return 1;
	}
}

static void *ring_thread_main(void *arg)
{
	struct ring_thread *t = arg;
	int op = CMD_REGISTER, tries = 0, ret;
	unsigned backoff_ms = 10;

	cur = t;
	prep_stop_poll(t);
	for (;;) {
		prep_cmd(t, op);
		if (op == CMD_COMMIT_AND_FETCH && atomic_load(&stopping)) {
			/* Deliver the reply; the fetch is cancelled on exit. */
			io_uring_submit(&t->uring);
			break;
		}
		ret = wait_cmd(t);
		if (ret == 1)
			break;
		if (ret == -ENOTCONN || ret == -ENODEV || ret == -ECANCELED)
			break;	/* the connection ended */
		if (ret < 0) {
			/* A refused register, or a commit the kernel could not
			 * match, leaves this entry unusable: register anew. Once
			 * the ring is in use the kernel sends this CPU's requests
			 * nowhere else, so never leave a queue short then. */
			if (++tries > REGISTER_TRIES && !atomic_load(&active)) {
				log_error("ring: queue %u: %s, %d times; this thread stops",
					  t->qid, strerror(-ret), tries);
				break;
			}
			if (tries == 1 || tries % 60 == 0)
				log_warning("ring: queue %u: %s %s; registering again", t->qid,
					    op == CMD_REGISTER ? "register" : "commit", strerror(-ret));
			usleep(backoff_ms * 1000);
			if (backoff_ms < 1000)
				backoff_ms *= 2;
			op = CMD_REGISTER;
			continue;
		}
		tries = 0;
		backoff_ms = 10;
		if (!atomic_exchange(&active, true))
			log_notice("FUSE requests now come over io_uring (%u threads on %u queues)",
				   nthreads, ring_queues());
		serve(t);
		op = CMD_COMMIT_AND_FETCH;
	}
	cur = NULL;
	return NULL;
}

static int thread_init(struct ring_thread *t, uint16_t qid, size_t payload)
{
	int ret;

	t->qid = qid;
	t->cap = payload;
	t->hdr = aligned_alloc(64, sizeof(*t->hdr));
	t->region = aligned_alloc(4096, RING_HEADROOM + payload);
	if (t->hdr == NULL || t->region == NULL)
		return -ENOMEM;
	memset(t->hdr, 0, sizeof(*t->hdr));
	t->payload = t->region + RING_HEADROOM;
	ret = io_uring_queue_init(4, &t->uring, IORING_SETUP_SQE128);
	if (ret < 0)
		return ret;
	t->uring_ok = true;
	return 0;
}

int ring_start(struct fuse_session *se, int fd, unsigned threads_per_queue, size_t payload)
{
	unsigned nq = ring_queues(), i;
	sigset_t all, old;
	int ret = 0;

	ring_se = se;
	ring_fd = fd;
	atomic_store(&stopping, false);
	stop_fd = eventfd(0, EFD_CLOEXEC);
	if (stop_fd < 0)
		return -errno;
	if (threads_per_queue == 0)
		threads_per_queue = 1;
	nthreads = nq * threads_per_queue;
	threads = calloc(nthreads, sizeof(*threads));
	if (threads == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	/* Signals belong to libfuse's threads (its handlers end the loop). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		struct ring_thread *t = &threads[i];

		ret = thread_init(t, (uint16_t)(i % nq), payload);
		if (ret == 0)
			ret = -pthread_create(&t->thread, NULL, ring_thread_main, t);
		if (ret < 0)
			break;
		t->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret < 0)
		log_error("ring: thread %u of %u: %s; %s", i + 1, nthreads, strerror(-ret),
			  i < nq ? "requests stay on /dev/fuse" : "fewer threads serve the ring");
	ret = i > 0 ? 0 : ret;
out:
	if (ret < 0)
		ring_stop();
	return ret;
}

void ring_stop(void)
{
	uint64_t one = 1;
	unsigned i;

	if (stop_fd < 0)
		return;
	atomic_store(&stopping, true);
	if (write(stop_fd, &one, sizeof(one)) != sizeof(one))
		log_error("ring: cannot wake its threads: %s", strerror(errno));
	for (i = 0; threads != NULL && i < nthreads; i++) {
		struct ring_thread *t = &threads[i];

		if (t->started)
			pthread_join(t->thread, NULL);
		/* Cancels the entry's pending fetch. */
		if (t->uring_ok)
			io_uring_queue_exit(&t->uring);
		free(t->hdr);
		free(t->region);
	}
	free(threads);
	threads = NULL;
	nthreads = 0;
	close(stop_fd);
	stop_fd = -1;
}
