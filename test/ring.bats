#!/usr/bin/env bats
# FUSE requests over io_uring (fs/ring.c): with the fuse module's
# enable_uring switched on for this suite (and put back after), relocfs
# serves its requests from ring entries. A selection of the POSIX cases
# (each compared with a native directory, lib/posix_cases.bash) and a live
# relocation run over the ring; then the switches that keep /dev/fuse, and
# the ways a ring-serving relocfs stops.

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc
load lib/posix_cases

URING_PARAM=/sys/module/fuse/parameters/enable_uring
RING_LINE="FUSE requests now come over io_uring"

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	[ -w "$URING_PARAM" ] || return 0
	cat -- "$URING_PARAM" >"$BATS_FILE_TMPDIR/enable_uring.saved"
	echo Y >"$URING_PARAM"
	reloc_setup_file
	posix_setup_file_tmpfs
}

teardown_file() {
	if [ -s "$BATS_FILE_TMPDIR/enable_uring.saved" ]; then
		cat -- "$BATS_FILE_TMPDIR/enable_uring.saved" >"$URING_PARAM" || true
	fi
	rfs_cleanup
}

# ring_require: the kernel can serve FUSE over io_uring.
ring_require() {
	rfs_require_root
	[ -w "$URING_PARAM" ] ||
		skip "this kernel has no FUSE over io_uring ($URING_PARAM: Linux 6.14 on, CONFIG_FUSE_IO_URING)"
}

setup() {
	ring_require
}

teardown() {
	if [ "${RING_RELOC:-}" = 1 ]; then
		reloc_teardown
	else
		posix_teardown
	fi
}

# ring_wait_used: lookups of fresh names through MNT until the daemon's log
# says a request came over the ring (its threads register just after INIT;
# until every queue has one, requests come over /dev/fuse).
ring_wait_used() {
	local i
	for i in $(seq 1 100); do
		stat -- "$MNT/.ring-probe-$i" >/dev/null 2>&1 || true
		grep -qF -- "$RING_LINE" <(ring_last_log) && return 0
		sleep 0.1
	done
	fail "relocfs did not serve over io_uring: $(cat -- "$RFS_LOG")"
}

# ring_last_log: the daemon's log since its last mount (the log of a mount
# point is appended to by each relocfs that serves it).
ring_last_log() {
	awk '/: serving / { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$RFS_LOG"
}

# ring_case CASE: the POSIX case CASE against a mount that serves it over
# the ring.
ring_case() {
	posix_setup
	ring_wait_used
	"$1"
}

@test "over io_uring: stat of native files equals the backing files" {
	ring_case case_stat_of_native_files_matches_backing
}

@test "over io_uring: readdir of many entries" {
	ring_case case_readdir_many_entries
}

@test "over io_uring: 5 MiB written and read back, odd block sizes, one 1 MiB write" {
	ring_case case_write_read_5m
	case_write_read_odd_block_sizes
	case_single_1mib_write
}

@test "over io_uring: O_DIRECT writes and reads, beside cached handles and mappings, 16 parallel writers" {
	ring_case case_o_direct_write_and_read
	case_o_direct_beside_cache_mappings_and_parallel_writers
}

@test "over io_uring: xattrs, many and large" {
	ring_case case_xattr_many_and_large_values
}

@test "over io_uring: rename exchange, copy_file_range, fcntl locks, unlinked open files" {
	ring_case case_rename_exchange
	case_copy_file_range_whole_file
	case_fcntl_lock_conflict
	case_unlinked_open_file_keeps_working
}

@test "over io_uring: a user's files are the user's; a user's write clears setuid/setgid" {
	ring_case case_user_creates_files_owned_by_user
	case_user_write_clears_setuid_setgid
}

@test "over io_uring: migrate --wait moves a home in use: no stale byte, same inode, data on DST" {
	RING_RELOC=1
	reloc_setup
	reloc_make_home vm1 16 64
	reloc_mount
	ring_wait_used
	reloc_writer_start disk "$MNT/vm1/disk-flat.vmdk" --size 64M --seed 21 --interval 0.001
	reloc_writer_more disk 50
	local inodes_before
	inodes_before=$(rfs_inodes "$MNT/vm1")
	reloc_migrate vm1 "$DST" --wait
	reloc_writer_more disk 300
	reloc_writer_stop disk
	reloc_assert_model disk "$DST/vm1/disk-flat.vmdk"
	cmp -- "$DST/vm1/disk-flat.vmdk" "$MNT/vm1/disk-flat.vmdk"
	[ "$(rfs_inodes "$MNT/vm1")" = "$inodes_before" ] || fail "inode numbers changed with the relocation"
	assert_not_exist "$SRC/vm1"
	reloc_assert_home_on vm1 "$DST"
}

@test "fuse.io_uring = false keeps requests on /dev/fuse" {
	posix_setup
	rfs_umount "$MNT"
	printf 'fuse = {\n  io_uring = false;\n};\n' >"$BATS_TEST_TMPDIR/noring.conf"
	rfs_mount "$SRC" "$MNT" -o "allow_other,config=$BATS_TEST_TMPDIR/noring.conf"
	head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/ref"
	cp -- "$BATS_TEST_TMPDIR/ref" "$MNT/f"
	cmp -- "$BATS_TEST_TMPDIR/ref" "$MNT/f"
	cmp -- "$BATS_TEST_TMPDIR/ref" "$SRC/f"
	run grep -F -- "$RING_LINE" <(ring_last_log)
	[ "$status" = 1 ] || fail "relocfs served over io_uring with fuse.io_uring = false: $output"
}

@test "fuse.max_request_kib below 68 keeps requests on /dev/fuse (the ring could not carry a 64 KiB xattr)" {
	posix_setup
	rfs_umount "$MNT"
	printf 'fuse = {\n  max_request_kib = 16;\n};\n' >"$BATS_TEST_TMPDIR/small.conf"
	rfs_mount "$SRC" "$MNT" -o "allow_other,config=$BATS_TEST_TMPDIR/small.conf"
	grep -qF "fuse.max_request_kib is below 68" <(ring_last_log) ||
		fail "no word of the small requests in the log: $(cat -- "$RFS_LOG")"
	stat -- "$MNT/.ring-probe" >/dev/null 2>&1 || true
	# Over the ring, this kernel cannot carry the value: check first.
	run grep -F -- "$RING_LINE" <(ring_last_log)
	[ "$status" = 1 ] || fail "relocfs serves over io_uring with 16 KiB requests: $output"
	: >"$MNT/x"
	head -c 8192 /dev/urandom | base64 -w0 | head -c 8192 >"$BATS_TEST_TMPDIR/val"
	setfattr -n user.big -v "$(cat -- "$BATS_TEST_TMPDIR/val")" -- "$MNT/x"
	[ "$(getfattr --only-values -n user.big -- "$SRC/x")" = "$(cat -- "$BATS_TEST_TMPDIR/val")" ]
	[ "$(getfattr --only-values -n user.big -- "$MNT/x")" = "$(cat -- "$BATS_TEST_TMPDIR/val")" ]
}

@test "with enable_uring off, relocfs says so and serves over /dev/fuse" {
	posix_setup
	rfs_umount "$MNT"
	echo N >"$URING_PARAM"
	rfs_mount "$SRC" "$MNT" -o allow_other
	echo Y >"$URING_PARAM"
	echo data >"$MNT/f"
	[ "$(cat -- "$MNT/f")" = data ]
	stat -- "$MNT/.ring-probe" >/dev/null 2>&1 || true
	grep -qF "the kernel does not offer FUSE over io_uring" <(ring_last_log) ||
		fail "no word of the missing offer in the log: $(cat -- "$RFS_LOG")"
	run grep -F -- "$RING_LINE" <(ring_last_log)
	[ "$status" = 1 ] || fail "relocfs claims io_uring that the kernel did not offer: $output"
}

@test "a relocfs serving over io_uring exits 0 on unmount and on SIGTERM with a file open" {
	posix_setup
	ring_wait_used
	echo data >"$MNT/f"
	local pid=$RFS_PID rc=0
	fusermount3 -u -- "$MNT"
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || fail "relocfs exited $rc after the unmount: $(cat -- "$RFS_LOG")"

	rfs_mount "$SRC" "$MNT" -o allow_other
	pid=$RFS_PID
	ring_wait_used
	[ "$(cat -- "$MNT/f")" = data ]
	exec 7<"$MNT/f"
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	exec 7<&-
	[ "$rc" = 0 ] || fail "relocfs exited $rc on SIGTERM: $(cat -- "$RFS_LOG")"
	[ "$(grep -cF "unmounted $MNT" "$RFS_LOG")" = 2 ] || fail "not two unmounts in the log: $(cat -- "$RFS_LOG")"
}
