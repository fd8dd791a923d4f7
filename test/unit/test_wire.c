/* Unit tests of the FUSE message hooks: the INIT reply takes
 * FUSE_HANDLE_KILLPRIV_V2 and FUSE_DIRECT_IO_ALLOW_MMAP only when offered
 * and wanted, an OPEN or CREATE reply takes FOPEN_PARALLEL_DIRECT_WRITES
 * only when the thread serving it asked, nothing else of any message
 * changes, and each request's kill flag is read from the right field, per
 * thread, and never past the end of a short message. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <linux/fuse.h>

#include "relocfs/wire.h"
#include "unit.h"

struct msg {
	struct fuse_in_header h;
	union {
		struct fuse_init_in init;
		struct fuse_write_in write;
		struct fuse_open_in open;
		struct fuse_create_in create;
		struct fuse_read_in read;
		struct fuse_setattr_in setattr;
	} u;
};

static size_t request(struct msg *m, uint32_t opcode, uint64_t unique)
{
	memset(m, 0, sizeof(*m));
	m->h.opcode = opcode;
	m->h.unique = unique;
	m->h.len = sizeof(*m);
	return sizeof(*m);
}

/* An INIT request and its reply; the reply's flags after the patch. */
static uint32_t init_exchange(uint64_t unique, uint32_t offered, bool want, int32_t error,
			      uint64_t reply_unique)
{
	struct msg m;
	struct fuse_out_header oh = { .len = sizeof(oh), .error = error, .unique = reply_unique };
	struct fuse_init_out out = { .major = 7, .minor = 36, .flags = FUSE_ASYNC_READ };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { &out, sizeof(out) } };

	request(&m, FUSE_INIT, unique);
	m.u.init.flags = offered;
	wire_note_request(&m, sizeof(m.h) + sizeof(m.u.init));
	wire_patch_reply(iov, 2, want);
	return out.flags;
}

static void test_init_flag_only_when_offered_and_wanted(void)
{
	CHECK_EQ(init_exchange(1, FUSE_ASYNC_READ, true, 0, 1), FUSE_ASYNC_READ);
	CHECK(!wire_kill_priv_v2());
	CHECK_EQ(init_exchange(2, FUSE_HANDLE_KILLPRIV_V2, false, 0, 2), FUSE_ASYNC_READ);
	CHECK(!wire_kill_priv_v2());
	/* An error reply, or another request's reply, is left alone. */
	CHECK_EQ(init_exchange(3, FUSE_HANDLE_KILLPRIV_V2, true, -EPROTO, 3), FUSE_ASYNC_READ);
	CHECK_EQ(init_exchange(4, FUSE_HANDLE_KILLPRIV_V2, true, 0, 5), FUSE_ASYNC_READ);
	CHECK(!wire_kill_priv_v2());
	CHECK_EQ(init_exchange(6, FUSE_HANDLE_KILLPRIV_V2 | FUSE_ASYNC_READ, true, 0, 6),
		 FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV_V2);
	CHECK(wire_kill_priv_v2());
}

#define ALLOW_MMAP2 (1u << 4)	/* FUSE_DIRECT_IO_ALLOW_MMAP >> 32 */
#define PARALLEL_DW (1u << 6)	/* FOPEN_PARALLEL_DIRECT_WRITES */

/* An INIT of protocol 7.minor whose flags2 offer offered2; the reply's
 * flags2 after the patch, or ~0 if its flags changed. */
static uint32_t init_exchange2(uint64_t unique, uint32_t minor, uint32_t flags, uint32_t offered2,
			       uint32_t reply_flags, bool want)
{
	struct msg m;
	struct fuse_out_header oh = { .len = sizeof(oh), .unique = unique };
	struct fuse_init_out out = { .major = 7, .minor = 31, .flags = reply_flags };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { &out, sizeof(out) } };

	request(&m, FUSE_INIT, unique);
	m.u.init.major = 7;
	m.u.init.minor = minor;
	m.u.init.flags = flags;
	m.u.init.flags2 = offered2;
	wire_note_request(&m, sizeof(m.h) + sizeof(m.u.init));
	wire_patch_reply(iov, 2, want);
	return out.flags == reply_flags ? out.flags2 : ~0u;
}

static void test_init_allow_mmap_only_when_offered_and_wanted(void)
{
	/* Not offered; offered without FUSE_INIT_EXT (flags2 then means
	 * nothing); not wanted; a reply without FUSE_INIT_EXT; offered by a
	 * kernel before 7.40, where agreeing turns parallel writes off. */
	CHECK_EQ(init_exchange2(40, 45, FUSE_INIT_EXT, 0, FUSE_INIT_EXT, true), 0);
	CHECK_EQ(init_exchange2(41, 45, 0, ALLOW_MMAP2, FUSE_INIT_EXT, true), 0);
	CHECK_EQ(init_exchange2(42, 45, FUSE_INIT_EXT, ALLOW_MMAP2, FUSE_INIT_EXT, false), 0);
	CHECK_EQ(init_exchange2(43, 45, FUSE_INIT_EXT, ALLOW_MMAP2, 0, true), 0);
	CHECK_EQ(init_exchange2(44, 39, FUSE_INIT_EXT, ALLOW_MMAP2, FUSE_INIT_EXT, true), 0);
	CHECK(!wire_parallel_direct_writes());
	CHECK_EQ(init_exchange2(45, 40, FUSE_INIT_EXT, ALLOW_MMAP2 | 1u, FUSE_INIT_EXT, true),
		 ALLOW_MMAP2);
	CHECK(wire_parallel_direct_writes());
}

/* A request of opcode, whose reply (error, for reply_unique, with body
 * bytes before the fuse_open_out) goes out after the thread asked
 * (ask) for parallel direct writes; the reply's open_flags, or ~0 if any
 * other byte of it changed. */
static uint32_t open_exchange(uint32_t opcode, uint64_t unique, bool ask, int32_t error,
			      uint64_t reply_unique, size_t before)
{
	struct msg m;
	struct fuse_out_header oh = { .len = sizeof(oh), .error = error, .unique = reply_unique };
	char body[sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out)];
	struct fuse_open_out out = { .fh = 77, .open_flags = FOPEN_KEEP_CACHE };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { body, before + sizeof(out) } };

	memset(body, 0xa5, sizeof(body));
	memcpy(body + before, &out, sizeof(out));
	request(&m, opcode, unique);
	wire_note_request(&m, sizeof(m));
	if (ask)
		wire_reply_parallel_direct_writes();
	wire_patch_reply(iov, 2, true);
	for (size_t i = 0; i < before; i++)
		if ((unsigned char)body[i] != 0xa5)
			return ~0u;
	memcpy(&out, body + before, sizeof(out));
	return out.fh == 77 && oh.unique == reply_unique ? out.open_flags : ~0u;
}

static void test_open_reply_flag_only_when_asked(void)
{
	size_t entry = sizeof(struct fuse_entry_out);

	CHECK_EQ(open_exchange(FUSE_OPEN, 50, false, 0, 50, 0), FOPEN_KEEP_CACHE);
	CHECK_EQ(open_exchange(FUSE_OPEN, 51, true, 0, 51, 0), FOPEN_KEEP_CACHE | PARALLEL_DW);
	/* CREATE: the fuse_open_out follows the entry. */
	CHECK_EQ(open_exchange(FUSE_CREATE, 52, true, 0, 52, entry), FOPEN_KEEP_CACHE | PARALLEL_DW);
	/* An error, another request's reply, or another opcode: left alone. */
	CHECK_EQ(open_exchange(FUSE_OPEN, 53, true, -EACCES, 53, 0), FOPEN_KEEP_CACHE);
	CHECK_EQ(open_exchange(FUSE_OPEN, 54, true, 0, 55, 0), FOPEN_KEEP_CACHE);
	CHECK_EQ(open_exchange(FUSE_OPENDIR, 56, true, 0, 56, 0), FOPEN_KEEP_CACHE);
	CHECK_EQ(open_exchange(FUSE_OPEN, 57, false, 0, 57, 0), FOPEN_KEEP_CACHE);
}

/* The ask lasts for one reply, and a reply of another shape is left alone. */
static void test_open_reply_flag_once_and_shape_checked(void)
{
	struct msg m;
	struct fuse_out_header oh = { .len = sizeof(oh), .unique = 60 };
	struct fuse_open_out out = { .fh = 1 };
	struct fuse_open_out out3[2] = { { .fh = 1 }, { .fh = 2 } };
	struct iovec iov[3] = { { &oh, sizeof(oh) }, { &out, sizeof(out) }, { &out, sizeof(out) } };

	request(&m, FUSE_OPEN, 60);
	wire_note_request(&m, sizeof(m));
	wire_reply_parallel_direct_writes();
	wire_patch_reply(iov, 2, true);
	CHECK_EQ(out.open_flags, PARALLEL_DW);
	out.open_flags = 0;
	wire_patch_reply(iov, 2, true);	/* the same request's reply again */
	CHECK_EQ(out.open_flags, 0);
	/* Three iovecs, or a body too short for a fuse_open_out. */
	wire_note_request(&m, sizeof(m));
	wire_reply_parallel_direct_writes();
	iov[1].iov_base = &out3[0];
	iov[2].iov_base = &out3[1];
	wire_patch_reply(iov, 3, true);
	CHECK_EQ(out3[0].open_flags, 0);
	CHECK_EQ(out3[1].open_flags, 0);
	wire_note_request(&m, sizeof(m));
	wire_reply_parallel_direct_writes();
	iov[1].iov_base = &out;
	iov[1].iov_len = sizeof(out) - 1;
	wire_patch_reply(iov, 2, true);
	CHECK_EQ(out.open_flags, 0);
	CHECK_EQ(out.fh, 1);
}

static void test_reply_too_short_is_left_alone(void)
{
	struct msg m;
	struct fuse_out_header oh = { .len = sizeof(oh), .unique = 9 };
	uint32_t out[2] = { 7, 36 };	/* major, minor: no room for flags */
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { out, sizeof(out) } };

	request(&m, FUSE_INIT, 9);
	m.u.init.flags = FUSE_HANDLE_KILLPRIV_V2;
	wire_note_request(&m, sizeof(m));
	wire_patch_reply(iov, 2, true);
	CHECK_EQ(out[0], 7);
	CHECK_EQ(out[1], 36);
	CHECK_EQ(oh.unique, 9);
}

/* The u32 field at off of the request body. */
static void set_u32(struct msg *m, size_t off, uint32_t v)
{
	memcpy((char *)&m->u + off, &v, sizeof(v));
}

static void test_kill_flags_per_request(void)
{
	static const struct {
		uint32_t opcode;
		size_t off;
		uint32_t kill, other;
	} cases[] = {
		{ FUSE_WRITE, offsetof(struct fuse_write_in, write_flags),
		  FUSE_WRITE_KILL_SUIDGID, FUSE_WRITE_CACHE | FUSE_WRITE_LOCKOWNER },
		{ FUSE_OPEN, offsetof(struct fuse_open_in, open_flags), FUSE_OPEN_KILL_SUIDGID, 0 },
		{ FUSE_SETATTR, offsetof(struct fuse_setattr_in, valid),
		  FATTR_KILL_SUIDGID, FATTR_SIZE | FATTR_MODE },
		/* Nothing to drop on a new file: the flag is not taken. */
		{ FUSE_CREATE, offsetof(struct fuse_create_in, open_flags), 0, FUSE_OPEN_KILL_SUIDGID },
		/* The same bits elsewhere mean nothing. */
		{ FUSE_READ, offsetof(struct fuse_read_in, flags), 0, 0xffffffff },
	};
	struct msg m, primer;

	request(&primer, FUSE_WRITE, 9);
	primer.u.write.write_flags = FUSE_WRITE_KILL_SUIDGID;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = request(&m, cases[i].opcode, 10 + i);

		/* Each request replaces the record of the one before. */
		wire_note_request(&primer, sizeof(primer));
		set_u32(&m, cases[i].off, cases[i].kill | cases[i].other);
		wire_note_request(&m, n);
		CHECK_EQ(wire_kill_suidgid(), cases[i].kill != 0);
		set_u32(&m, cases[i].off, cases[i].other);
		wire_note_request(&m, n);
		CHECK(!wire_kill_suidgid());
	}
}

static void test_short_requests_read_nothing(void)
{
	struct msg m;

	request(&m, FUSE_WRITE, 20);
	m.u.write.write_flags = FUSE_WRITE_KILL_SUIDGID;
	/* Cut just before the end of write_flags. */
	wire_note_request(&m, sizeof(m.h) + offsetof(struct fuse_write_in, write_flags) + 3);
	CHECK(!wire_kill_suidgid());
	wire_note_request(&m, sizeof(m.h) - 1);
	CHECK(!wire_kill_suidgid());
	wire_note_request(&m, 0);
	CHECK(!wire_kill_suidgid());
}

static void *other_thread(void *arg)
{
	*(bool *)arg = wire_kill_suidgid();
	return NULL;
}

static void test_record_is_per_thread(void)
{
	struct msg m;
	pthread_t t;
	bool seen = true;

	request(&m, FUSE_WRITE, 30);
	m.u.write.write_flags = FUSE_WRITE_KILL_SUIDGID;
	wire_note_request(&m, sizeof(m));
	CHECK_EQ(pthread_create(&t, NULL, other_thread, &seen), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK(!seen);
	CHECK(wire_kill_suidgid());
}

int main(void)
{
	UNIT_RUN(test_init_flag_only_when_offered_and_wanted);
	UNIT_RUN(test_init_allow_mmap_only_when_offered_and_wanted);
	UNIT_RUN(test_open_reply_flag_only_when_asked);
	UNIT_RUN(test_open_reply_flag_once_and_shape_checked);
	UNIT_RUN(test_reply_too_short_is_left_alone);
	UNIT_RUN(test_kill_flags_per_request);
	UNIT_RUN(test_short_requests_read_nothing);
	UNIT_RUN(test_record_is_per_thread);
	return UNIT_DONE();
}
