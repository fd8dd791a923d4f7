/* Unit tests of the ring's message forms: a ring entry's request (header
 * and first argument in the header buffer, the rest in the payload)
 * becomes the /dev/fuse form in front of the payload with the payload left
 * in place; inconsistent lengths are refused; a reply is the ring's only on
 * a thread serving that request. The transport itself needs the kernel:
 * test/ring.bats. */
#define _GNU_SOURCE
#include <sys/uio.h>
#include <linux/fuse.h>

#include "relocfs/ring.h"
#include "unit.h"

static char region[RING_HEADROOM + 8192];

static void entry(struct ring_req_header *hdr, uint32_t opcode, const void *arg0, size_t arg0_len,
		  const void *payload, size_t payload_len)
{
	struct fuse_in_header h = { 0 };

	memset(hdr, 0, sizeof(*hdr));
	h.opcode = opcode;
	h.unique = 42;
	h.nodeid = 7;
	h.len = (uint32_t)(sizeof(h) + arg0_len + payload_len);
	memcpy(hdr->in_out, &h, sizeof(h));
	if (arg0_len > 0)
		memcpy(hdr->op_in, arg0, arg0_len);
	memcpy(region + RING_HEADROOM, payload, payload_len);
	hdr->ent.payload_sz = (uint32_t)payload_len;
	hdr->ent.commit_id = 42;
}

static void test_write_request_framed_before_its_payload(void)
{
	struct ring_req_header hdr;
	struct fuse_write_in w = { .fh = 3, .offset = 8192, .size = 4096 };
	char data[4096], *msg;
	struct fuse_in_header h;
	size_t len = 0;

	memset(data, 'x', sizeof(data));
	entry(&hdr, FUSE_WRITE, &w, sizeof(w), data, sizeof(data));
	msg = ring_frame(&hdr, region + RING_HEADROOM, 8192, &len);
	CHECK(msg != NULL);
	CHECK_EQ(len, sizeof(h) + sizeof(w) + sizeof(data));
	/* The payload is not copied: the frame ends where it starts. */
	CHECK(msg + sizeof(h) + sizeof(w) == region + RING_HEADROOM);
	memcpy(&h, msg, sizeof(h));
	CHECK_EQ(h.opcode, FUSE_WRITE);
	CHECK_EQ(h.unique, 42);
	CHECK_EQ(h.nodeid, 7);
	CHECK(memcmp(msg + sizeof(h), &w, sizeof(w)) == 0);
	CHECK(memcmp(msg + sizeof(h) + sizeof(w), data, sizeof(data)) == 0);
}

static void test_lookup_has_no_first_argument(void)
{
	struct ring_req_header hdr;
	size_t len = 0;
	char *msg;

	entry(&hdr, FUSE_LOOKUP, NULL, 0, "vm1", 4);
	msg = ring_frame(&hdr, region + RING_HEADROOM, 8192, &len);
	CHECK(msg != NULL);
	CHECK_EQ(len, sizeof(struct fuse_in_header) + 4);
	CHECK_STR(msg + sizeof(struct fuse_in_header), "vm1");
}

static void test_inconsistent_lengths_refused(void)
{
	struct ring_req_header hdr;
	struct fuse_in_header h;
	size_t len = 0;

	/* A payload larger than the entry's buffer. */
	entry(&hdr, FUSE_LOOKUP, NULL, 0, "vm1", 4);
	CHECK(ring_frame(&hdr, region + RING_HEADROOM, 3, &len) == NULL);
	/* A total shorter than header plus payload. */
	entry(&hdr, FUSE_LOOKUP, NULL, 0, "vm1", 4);
	memcpy(&h, hdr.in_out, sizeof(h));
	h.len = sizeof(h) + 2;
	memcpy(hdr.in_out, &h, sizeof(h));
	CHECK(ring_frame(&hdr, region + RING_HEADROOM, 8192, &len) == NULL);
	/* A first argument larger than the header buffer holds. */
	entry(&hdr, FUSE_LOOKUP, NULL, 0, "vm1", 4);
	h.len = sizeof(h) + RING_HEADER_OP_IN + 1 + 4;
	memcpy(hdr.in_out, &h, sizeof(h));
	CHECK(ring_frame(&hdr, region + RING_HEADROOM, 8192, &len) == NULL);
}

static void test_reply_not_the_rings_off_a_ring_thread(void)
{
	struct fuse_out_header oh = { .len = sizeof(oh), .error = 0, .unique = 42 };
	struct iovec iov = { &oh, sizeof(oh) };

	CHECK_EQ(ring_take_reply(&iov, 1), -1);
}

int main(void)
{
	UNIT_RUN(test_write_request_framed_before_its_payload);
	UNIT_RUN(test_lookup_has_no_first_argument);
	UNIT_RUN(test_inconsistent_lengths_refused);
	UNIT_RUN(test_reply_not_the_rings_off_a_ring_thread);
	return UNIT_DONE();
}
