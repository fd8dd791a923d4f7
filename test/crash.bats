#!/usr/bin/env bats
# Crash safety: relocfs killed with SIGKILL during a relocation, then mounted
# again on the same source and state dir. Before the first convergence round
# the remount rolls the relocation back (the journal is replayed onto the
# source); from the first round on it rolls it forward (the remaining journal
# onto the destination). Either way every write the application fsync'ed
# before the kill is there afterwards. A damaged state file or journal makes
# the mount refuse, naming the file, and changes nothing.

load lib/common
load lib/reloc
bats_require_minimum_version 1.5.0

setup_file() { reloc_setup_file; }
teardown_file() { reloc_teardown_file; }
setup() {
	reloc_setup
	SEED=$RANDOM
	BASE=$BATS_TEST_TMPDIR/base.img
	LOG=$BATS_TEST_TMPDIR/acked.log
	mkdir "$SRC/vm1"
	echo 'displayName = "vm1"' >"$SRC/vm1/vm1.vmx"
	head -c 8M /dev/urandom >"$SRC/vm1/disk-flat.vmdk"
	cp "$SRC/vm1/disk-flat.vmdk" "$BASE"
	: >"$LOG"
}
teardown() { reloc_teardown; }

# crash_writer_start: the crash writer on MNT/vm1/disk-flat.vmdk, in the background
crash_writer_start() {
	"$RFS_PY" "$RELOC_TOOLS/crashwriter.py" "$MNT/vm1/disk-flat.vmdk" "$LOG" --seed "$SEED" \
		</dev/null >"$BATS_TEST_TMPDIR/crashwriter.out" 2>&1 3>&- &
	WRITER=$!
	_rfs_register pid "$WRITER"
	local n=0
	while [ ! -s "$LOG" ] && [ "$n" -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
}

# crash_kill: SIGKILL relocfs, drop its dead mount, let the writer fail out
crash_kill() {
	kill -9 "$RFS_PID"
	wait "$RFS_PID" 2>/dev/null || true
	fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	local n=0
	while kill -0 "$WRITER" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	kill -9 "$WRITER" 2>/dev/null || true
}

# crash_check_data: the file through the new mount holds every acknowledged write
crash_check_data() {
	run "$RFS_PY" "$RELOC_TOOLS/crashcheck.py" "$MNT/vm1/disk-flat.vmdk" "$BASE" "$LOG" --seed "$SEED"
	assert_success
	[ "$(wc -l <"$LOG")" -gt 0 ] || fail "the writer acknowledged nothing before the kill"
	run cat "$MNT/vm1/vm1.vmx"
	assert_output 'displayName = "vm1"'
	run find "$STATE" -maxdepth 2 -name 'reloc-*'
	assert_output ''
}

@test "SIGKILL during the copy: the remount rolls back, every fsync'ed write is on the source" {
	reloc_mount
	crash_writer_start
	reloc_migrate vm1 "$DST" --rate 1
	reloc_wait_phase "$RELOC_ID" copy 30
	sleep 1
	crash_kill
	reloc_mount
	grep -q 'rolled back' "$RFS_LOG" || fail "no rollback in the log: $(cat "$RFS_LOG")"
	crash_check_data
	reloc_assert_home_on vm1 "$SRC"
	assert_not_exist "$DST/vm1"
	# and it can be relocated again
	reloc_migrate vm1 "$DST" --wait
	crash_check_data
}

@test "SIGKILL while waiting for a manual cutover: the remount completes the relocation" {
	reloc_mount
	crash_writer_start
	reloc_migrate vm1 "$DST" --manual-cutover
	reloc_wait_phase "$RELOC_ID" ready 60
	sleep 1
	crash_kill
	reloc_mount
	grep -q 'completed on' "$RFS_LOG" || fail "no roll-forward in the log: $(cat "$RFS_LOG")"
	crash_check_data
	reloc_assert_home_on vm1 "$DST"
	assert_not_exist "$SRC/vm1"
	run "$RFS_PY" "$RELOC_TOOLS/crashcheck.py" "$DST/vm1/disk-flat.vmdk" "$BASE" "$LOG" --seed "$SEED"
	assert_success
}

@test "SIGKILL in ready after an append ending mid-block and a truncation inside a rewritten block: the remount's replay keeps both files' sizes and bytes" {
	local ref=$BATS_TEST_TMPDIR
	WRITER=
	seq -f "%08g log line" 1 2000 >"$SRC/vm1/vmware.log"
	head -c 8192 /dev/urandom >"$SRC/vm1/vm1.nvram"
	reloc_mount
	# a budget that leaves the records in the journal: no round applies them
	reloc_migrate vm1 "$DST" --manual-cutover --pause-budget 5000
	reloc_wait_phase "$RELOC_ID" ready
	cp -- "$SRC/vm1/vmware.log" "$ref/log.ref"
	printf 'appended line\n' >>"$ref/log.ref"
	head -c 5000 -- "$SRC/vm1/vm1.nvram" >"$ref/nvram.ref"
	"$RFS_PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.write(fd, b"appended line\n")
os.fsync(fd)
os.close(fd)
fd = os.open(sys.argv[2], os.O_RDWR)
os.pwrite(fd, b"x" * 10, 6000)
os.ftruncate(fd, 5000)
os.fsync(fd)
os.close(fd)' "$MNT/vm1/vmware.log" "$MNT/vm1/vm1.nvram"
	crash_kill
	reloc_mount
	grep -q 'recovery:' "$RFS_LOG" || fail "no recovery in the log: $(cat "$RFS_LOG")"
	reloc_assert_home_on vm1 "$DST"
	assert_equal "$(stat -c %s -- "$MNT/vm1/vmware.log")" "$(stat -c %s -- "$ref/log.ref")"
	cmp -- "$ref/log.ref" "$MNT/vm1/vmware.log"
	assert_equal "$(stat -c %s -- "$MNT/vm1/vm1.nvram")" 5000
	cmp -- "$ref/nvram.ref" "$MNT/vm1/vm1.nvram"
}

@test "SIGKILL at six points of a relocation under load: data intact, home on exactly one datastore" {
	local delay
	for delay in 0.1 0.4 0.8 1.5 2.5 4; do
		reloc_mount
		crash_writer_start
		# relocate toward whichever datastore the home is not on
		local to=$DST
		[ -e "$DST/vm1" ] && to=$SRC
		run rctl migrate "$MNT/vm1" --to "$to" --rate 4
		sleep "$delay"
		crash_kill
		reloc_mount
		crash_check_data
		# exactly one copy of the home is left
		if [ -e "$SRC/vm1" ] && [ -e "$DST/vm1" ]; then
			fail "after the kill at ${delay}s the home is on both datastores"
		fi
		# the next round starts from what this one left, with writes of
		# its own (a writer with the same seed would repeat this one's)
		cp -- "$MNT/vm1/disk-flat.vmdk" "$BASE"
		: >"$LOG"
		SEED=$((SEED + 1))
		reloc_umount
	done
}

@test "a damaged relocation state file: the mount refuses, naming it, and changes nothing" {
	reloc_mount
	reloc_migrate vm1 "$DST" --rate 1
	reloc_wait_phase "$RELOC_ID" copy 30
	crash_kill
	local st
	st=$(find "$STATE" -path '*/reloc-*/state')
	[ -f "$st" ] || fail "no state file"
	printf 'X' | dd of="$st" bs=1 seek=30 conv=notrunc status=none
	cp -a "$STATE" "$BATS_TEST_TMPDIR/state.before"
	run "$RELOCFS" -f -o "allow_other,state_dir=$STATE" "$SRC" "$MNT"
	assert_failure 1
	assert_output --partial "state: damaged"
	assert_output --partial "refusing to mount"
	! rfs_is_mounted "$MNT"
	diff -r "$STATE" "$BATS_TEST_TMPDIR/state.before"
	assert_exist "$DST/vm1"
}

@test "a journal generation with a foreign header: the mount refuses, naming it" {
	reloc_mount
	crash_writer_start
	reloc_migrate vm1 "$DST" --rate 1
	reloc_wait_phase "$RELOC_ID" copy 30
	sleep 0.5
	crash_kill
	local g
	g=$(find "$STATE" -path '*/reloc-*/gen-*' | head -n 1)
	[ -f "$g" ] || fail "no journal generation"
	printf 'NOTAJRNL' | dd of="$g" bs=1 seek=0 conv=notrunc status=none
	run "$RELOCFS" -f -o "allow_other,state_dir=$STATE" "$SRC" "$MNT"
	assert_failure 1
	assert_output --partial "$(basename "$g")"
	assert_output --partial "damaged"
	! rfs_is_mounted "$MNT"
}

@test "a journal that reaches its limit rolls the relocation back; no write fails" {
	local conf=$BATS_TEST_TMPDIR/small-journal.conf
	printf 'relocation = { journal_max_mib = 1; };\n' >"$conf"
	rfs_mount "$SRC" "$MNT" -o "allow_other,state_dir=$STATE,config=$conf"
	crash_writer_start
	RCTL_TIMEOUT=120 run --separate-stderr rctl migrate "$MNT/vm1" --to "$DST" --rate 1 --wait
	assert_failure 1
	[[ $stderr == *"failed and was rolled back: the journal reached its limit of 1 MiB"* ]] ||
		fail "stderr: $stderr"
	sleep 0.5
	kill "$WRITER"
	wait "$WRITER" 2>/dev/null || true
	run cat "$BATS_TEST_TMPDIR/crashwriter.out"
	refute_output --partial 'writer stopped'
	crash_check_data
	reloc_assert_home_on vm1 "$SRC"
	assert_not_exist "$DST/vm1"
}

@test "a state dir that fills up rolls the relocation back; no write or fsync fails" {
	rfs_tmpfs "$STATE" 6m
	reloc_mount
	head -c 8M /dev/urandom >"$BATS_TEST_TMPDIR/r1"
	head -c 8M /dev/urandom >"$BATS_TEST_TMPDIR/r2"
	reloc_migrate vm1 "$DST" --rate 1
	local id=$RELOC_ID
	reloc_wait_phase "$id" copy
	# 16 MiB of journal for a 6 MiB filesystem: appends fail with ENOSPC
	run dd if="$BATS_TEST_TMPDIR/r1" of="$MNT/vm1/disk-flat.vmdk" bs=64k conv=notrunc,fsync status=none
	assert_success
	run dd if="$BATS_TEST_TMPDIR/r2" of="$MNT/vm1/disk-flat.vmdk" bs=64k conv=notrunc,fsync status=none
	assert_success
	reloc_wait_phase "$id" failed 60
	reloc_status
	[[ $(rq get "$id" error) == "journal "*"failed: No space left on device"* ]] ||
		fail "error: $(rq get "$id" error)"
	cmp -- "$BATS_TEST_TMPDIR/r2" "$MNT/vm1/disk-flat.vmdk"
	cmp -- "$BATS_TEST_TMPDIR/r2" "$SRC/vm1/disk-flat.vmdk"
	reloc_assert_home_on vm1 "$SRC"
	assert_not_exist "$DST/vm1"
	reloc_assert_no_journal
}

@test "a state dir full when the cutover is to be recorded: the journal, not needed once the destination is flushed, is deleted first and frees it; the relocation completes" {
	local hold=$BATS_TEST_TMPDIR/hold id
	local -a RFS_LAUNCHER=(env "RELOCFS_FAILPOINT_HOLD=cutover-resumed:$hold")
	rfs_tmpfs "$STATE" 8m
	reloc_mount
	head -c 192K /dev/urandom >"$BATS_TEST_TMPDIR/r1"
	# under 256 KiB of journal and a budget that takes it into the pause:
	# no round, the journal's generation holds it at the cutover
	reloc_migrate vm1 "$DST" --manual-cutover --pause-budget 5000
	id=$RELOC_ID
	reloc_wait_phase "$id" ready
	run dd if="$BATS_TEST_TMPDIR/r1" of="$MNT/vm1/disk-flat.vmdk" bs=64k conv=notrunc,fsync status=none
	assert_success
	run -0 rctl cutover "$MNT/vm1"
	# flipped; the state dir's filesystem is then filled up
	rfs_wait_file "$hold" 60
	run dd if=/dev/zero of="$STATE/filler" bs=64k status=none
	assert_failure
	assert_output --partial "No space left on device"
	rm -f -- "$hold"
	reloc_wait_phase "$id" done 60
	assert_equal "$(rq get "$id" error)" ""
	cmp -n 196608 -- "$BATS_TEST_TMPDIR/r1" "$MNT/vm1/disk-flat.vmdk"
	cmp -n 196608 -- "$BATS_TEST_TMPDIR/r1" "$DST/vm1/disk-flat.vmdk"
	reloc_assert_home_on vm1 "$DST"
	assert_not_exist "$SRC/vm1"
	reloc_assert_no_journal
	rm -f -- "$STATE/filler"
	# and the next mount finds nothing to recover
	reloc_umount
	reloc_mount
	reloc_assert_home_on vm1 "$DST"
	! grep -q "recovery:" "$RFS_LOG" || fail "a recovery ran: $(grep recovery: "$RFS_LOG")"
}

@test "a home's datastore gone at mount: relocfs refuses rather than serve the home from elsewhere" {
	reloc_mount
	reloc_migrate vm1 "$DST" --wait --keep-source
	reloc_umount
	mv "$DST" "$DST.gone"
	run "$RELOCFS" -f -o "allow_other,state_dir=$STATE" "$SRC" "$MNT"
	mv "$DST.gone" "$DST"
	assert_failure 1
	assert_output --partial "home vm1 lives on datastore $DST, which cannot be opened"
	! rfs_is_mounted "$MNT"
	reloc_mount
	reloc_assert_home_on vm1 "$DST"
}
