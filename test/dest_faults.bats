#!/usr/bin/env bats
# Destination faults during a relocation (DESIGN.md invariants 1 and 4): the
# destination fails while the home is copied, with a writer on the home's
# disk all along. Each time the relocation must end in phase "failed" with
# an error that says why, the home must be served from the source again,
# with every byte the writer wrote (its reference model) and without the
# writer ever seeing an error, and nothing may be left of the relocation:
# no destination copy, no reloc-* directory in the state dir.
#
#   1. the destination returns EIO (it sits on faultfs, switched to fail
#      mode with SIGUSR1: test/tools/faultfs.c)
#   2. the destination's copy of the home is removed behind relocfs's back
#   3. the destination datastore's filesystem is unmounted lazily
#   4. one file of the destination copy is removed before the cutover
#   5. a round's flush of the destination fails and loses what the round
#      wrote (faultfs SIGRTMIN+1): the rollback must take those blocks from
#      the journal, not from the destination
#
# and, once a home moved to a destination that reports delayed write errors
# at close(2) (faultfs SIGRTMIN+2, as NFS does), close through the mount
# returns them: its files are opened without FOPEN_NOFLUSH.
#
# The copy is slowed down (--rate 1, 4 MiB of data) so that the fault hits
# it while it runs.

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc
load lib/faultfs

setup_file() { reloc_setup_file; }
teardown_file() { reloc_teardown_file; }

setup() {
	reloc_setup
	reloc_make_home vm1 4 8
	SUMS_BEFORE=$(reloc_sums_small "$SRC/vm1")
}

teardown() {
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		local f
		for f in "$BATS_TEST_TMPDIR"/faultfs.*.log; do
			[ -s "$f" ] && { echo "---- $f"; tail -n 20 -- "$f"; }
		done
	fi
	reloc_teardown
}

# df_faultfs_dst: DST on a faultfs over a tmpfs; BACK is the tmpfs, FFS
# the faultfs mount
df_faultfs_dst() {
	BACK=$BATS_TEST_TMPDIR/back
	FFS=$BATS_TEST_TMPDIR/ffs
	faultfs_require
	rfs_tmpfs "$BACK" 256m
	faultfs_mount "$BACK" "$FFS"
	mkdir "$FFS/dst"
	DST=$FFS/dst
}

# df_start: relocfs, the writer on the disk, and a relocation of vm1 to DST
# at 1 MiB/s that has begun copying. RELOC_ID is its id.
df_start() {
	local n=0
	reloc_mount
	reloc_writer_start w "$MNT/vm1/disk-flat.vmdk" --seed "$1" --interval 0.002
	reloc_migrate vm1 "$DST" --rate 1
	reloc_wait_phase "$RELOC_ID" copy 30 || return 1
	# the copy is under way
	while reloc_status && [ "$(rq get "$RELOC_ID" bytes_copied)" = 0 ]; do
		n=$((n + 1))
		[ "$n" -lt 300 ] || { fail "the copy did not start in 30 s: $RELOC_JSON"; return 1; }
		sleep 0.1
	done
	[ "$(rq phase "$RELOC_ID")" = copy ] ||
		{ fail "the relocation left the copy before the fault: $RELOC_JSON"; return 1; }
}

# df_assert_failed PATTERN: the relocation ended failed, with an error that
# contains PATTERN, in the JSON status and in the table of relocctl status
df_assert_failed() {
	local err
	reloc_wait_phase "$RELOC_ID" failed 60 || return 1
	reloc_status
	err=$(rq get "$RELOC_ID" error)
	echo "relocation $RELOC_ID failed: $err"
	[[ $err == *"$1"* ]] || { fail "the error of the failed relocation is '$err', expected it to mention '$1'"; return 1; }
	run rctl status "$MNT"
	assert_success
	assert_output --partial "failed"
	assert_output --partial "$1"
}

# df_assert_rolled_back: served from the source, nothing left of the
# relocation, the writer saw no error and the data is its model
df_assert_rolled_back() {
	local d
	reloc_assert_home_on vm1 "$SRC"
	reloc_status
	[ -z "$(rq active)" ] || { fail "a relocation is still running: $RELOC_JSON"; return 1; }
	reloc_assert_no_journal
	# the home goes on working from the source
	reloc_writer_more w 20
	echo "after the rollback" >"$MNT/vm1/new-file"
	assert_exist "$SRC/vm1/new-file"
	reloc_writer_stop w
	reloc_assert_model w "$MNT/vm1/disk-flat.vmdk"
	reloc_assert_model w "$SRC/vm1/disk-flat.vmdk"
	rm -- "$MNT/vm1/new-file"
	d=$(diff <(printf '%s\n' "$SUMS_BEFORE") <(reloc_sums_small "$SRC/vm1")) ||
		fail "$(printf 'the other files of the home changed:\n%s' "$d")"
}

@test "the destination fails with EIO during the copy: failed (Input/output error), rolled back, partial copy removed" {
	df_faultfs_dst
	df_start 61
	assert_exist "$BACK/dst/vm1"
	faultfs_fail "$FFS"
	df_assert_failed "Input/output error"
	# removed in fail mode (unlink and rmdir still work)
	assert_not_exist "$BACK/dst/vm1"
	df_assert_rolled_back
	faultfs_heal "$FFS"
	assert_equal "$(ls -A "$BACK/dst")" ""
	# the same destination works again once healed
	reloc_migrate vm1 "$DST" --wait
	reloc_assert_home_on vm1 "$DST"
	reloc_assert_no_journal
}

@test "the destination copy of the home is removed during the copy: failed (removed), rolled back" {
	df_start 62
	assert_exist "$DST/vm1"
	rm -rf -- "$DST/vm1"
	df_assert_failed "removed"
	assert_not_exist "$DST/vm1"
	df_assert_rolled_back
}

@test "the destination datastore's filesystem is unmounted lazily during the copy: failed (unmounted), rolled back" {
	local dfs=$BATS_TEST_TMPDIR/dstfs
	rfs_tmpfs "$dfs" 256m
	DST=$dfs
	df_start 63
	assert_exist "$DST/vm1"
	umount -l -- "$dfs"
	! rfs_is_mounted "$dfs"
	df_assert_failed "unmounted"
	# what the path shows now (the directory below the old mount) got nothing
	assert_not_exist "$DST/vm1"
	df_assert_rolled_back
}

@test "one destination file removed behind relocfs's back before a manual cutover: failed (removed), rolled back" {
	reloc_mount
	reloc_writer_start w "$MNT/vm1/disk-flat.vmdk" --seed 64 --interval 0.002
	reloc_migrate vm1 "$DST" --manual-cutover
	reloc_wait_phase "$RELOC_ID" ready 60
	rm -- "$DST/vm1/vm1.nvram"
	run -0 rctl cutover "$MNT/vm1"
	df_assert_failed "the destination copy of vm1.nvram"
	assert_not_exist "$DST/vm1"
	df_assert_rolled_back
}

@test "a round's flush of the destination fails and loses what the round wrote: failed (Input/output error), rolled back from the journal's copy" {
	local hold=$BATS_TEST_TMPDIR/hold
	local -a RFS_LAUNCHER=(env "RELOCFS_FAILPOINT_HOLD=round-sealed:$hold")
	df_faultfs_dst
	reloc_mount
	reloc_writer_start w "$MNT/vm1/disk-flat.vmdk" --seed 65 --interval 0.002
	reloc_migrate vm1 "$DST" --manual-cutover --pause-budget 1
	# the first round has sealed a generation of the writer's blocks
	rfs_wait_file "$hold" 60
	faultfs_fail_lossy "$FFS"
	rm -f -- "$hold"
	df_assert_failed "Input/output error"
	faultfs_heal "$FFS"
	df_assert_rolled_back
	assert_equal "$(ls -A "$BACK/dst")" ""
}

@test "a destination that reports write errors at close(2), as NFS does: once the home moved there, close through the mount returns them" {
	df_faultfs_dst
	reloc_mount
	reloc_migrate vm1 "$DST" --wait
	reloc_assert_home_on vm1 "$DST"
	faultfs_fail_close "$FFS"
	# an existing file opened, and a new one created, on the destination
	run "$RFS_PY" -c '
import os, sys, errno
res = []
for path, flags in ((sys.argv[1], os.O_WRONLY | os.O_APPEND),
                    (sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL)):
    fd = os.open(path, flags, 0o644)
    os.write(fd, b"after the move\n")
    try:
        os.close(fd)
        res.append("close ok")
    except OSError as e:
        res.append("close " + errno.errorcode[e.errno])
print(" / ".join(res))' "$MNT/vm1/vm1.vmx" "$MNT/vm1/new.log"
	assert_success
	assert_output "close EIO / close EIO"
	faultfs_heal "$FFS"
	# the writes themselves went through (faultfs holds them until fsync)
	assert_equal "$(tail -n 1 -- "$MNT/vm1/vm1.vmx")" "after the move"
	assert_equal "$(cat -- "$FFS/dst/vm1/new.log")" "after the move"
	run -0 "$RFS_PY" -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_WRONLY))' "$MNT/vm1/new.log"
}
