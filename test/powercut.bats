#!/usr/bin/env bats
# Power cut during a relocation (DESIGN.md invariant 3: a write acknowledged
# by fsync survives kill -9 of relocfs AND a power cut of the machine).
#
# The state dir, the source datastore and the destination datastore all
# live in ONE faultfs mount (test/tools/faultfs.c) over a tmpfs: faultfs
# holds every data write in memory until it is fsync'ed, so killing it
# (with relocfs) loses exactly what a power cut loses, in all three at once.
# syncfs does not reach it (the kernel never sends syncfs to a FUSE daemon):
# relocfs must fsync what it needs durable.
#
# Each test mounts relocfs over the source with RELOCFS_FAILPOINT set (see
# src/failpoint.c) or kills it at a moment, runs the crash writer
# (tools/crashwriter.py: logs each write once fsync acknowledged it) on the
# home's disk through the mount, starts a relocation, and cuts the power
# there: relocfs dies (SIGKILL), then faultfs (SIGKILL), both mounts are
# dropped lazily. Then faultfs is mounted again over the same backing
# directory, relocfs again over the source (its recovery runs), and:
#   - every acknowledged write is in the disk, through the mount, and in the
#     backing directory (what is durable) on the datastore holding the home
#   - the relocation completed (forward) or rolled back (back), as its phase
#     at the cut says; the home is on exactly one datastore
#   - no reloc-* directory is left in the state dir, no relocation runs
#   - a second power cut right after the recovery changes none of that.
# The home also holds vm1-ctk.vmdk, a sparse file ending in a hole that
# nobody writes: its copy on the destination must be durable too.
#
# Debugging: PC_DEBUG=1 makes faultfs log its overlay events (created,
# flushed, dropped) to $BATS_TEST_TMPDIR/faultfs.ffs.log and keeps a copy of
# the backing dir as it was at the cut (back-at-cut); run bats with
# --no-tempdir-cleanup to look at them.

bats_require_minimum_version 1.5.0

load lib/common
load lib/reloc
load lib/faultfs

# How long a driven relocation may take to reach its failpoint.
PC_DEATH_TIMEOUT=${PC_DEATH_TIMEOUT:-60}

setup() {
	reloc_require
	faultfs_require
	BACK=$BATS_TEST_TMPDIR/back
	FFS=$BATS_TEST_TMPDIR/ffs
	MNT=$BATS_TEST_TMPDIR/mnt
	rfs_tmpfs "$BACK" 512m
	mkdir "$BACK/src" "$BACK/dst" "$BACK/state"
	# the home is made natively in the backing dir: durable from the start
	SRC=$BACK/src
	reloc_make_home vm1 4 8
	# a sparse file nobody writes during the test, ending in a hole
	truncate -s 2M "$SRC/vm1/vm1-ctk.vmdk"
	head -c 64k /dev/urandom | dd of="$SRC/vm1/vm1-ctk.vmdk" conv=notrunc status=none
	SEED=$RANDOM
	BASE=$BATS_TEST_TMPDIR/base.img
	ACKLOG=$BATS_TEST_TMPDIR/acked.log
	cp --sparse=always -- "$SRC/vm1/disk-flat.vmdk" "$BASE"
	: >"$ACKLOG"
	PC_SUMS=$(reloc_sums_small "$SRC/vm1")
	FAULTFS_TRACE=${PC_DEBUG:-} faultfs_mount "$BACK" "$FFS"
	SRC=$FFS/src
	DST=$FFS/dst
	STATE=$FFS/state
	PC_WRITER=
}

teardown() {
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		local f
		for f in "$BATS_TEST_TMPDIR"/crashwriter.out "$BATS_TEST_TMPDIR"/migrate.err \
			"$BATS_TEST_TMPDIR"/faultfs.*.log; do
			[ -s "$f" ] && { echo "---- $f"; tail -n 20 -- "$f"; }
		done
		echo "---- backing dir"
		(cd "$BACK" && find . -printf '%p %s\n' | sort | head -n 60)
	fi
	reloc_teardown
}

# pc_mount [POINT]: relocfs over SRC, state in STATE, with
# RELOCFS_FAILPOINT=POINT when given.
pc_mount() {
	local -a RFS_LAUNCHER=(env -u RELOCFS_FAILPOINT)
	[ -n "${1:-}" ] && RFS_LAUNCHER=(env "RELOCFS_FAILPOINT=$1")
	reloc_mount
}

# pc_writer_start: the crash writer on MNT/vm1/disk-flat.vmdk; returns once
# it has acknowledged a first write.
pc_writer_start() {
	"$RFS_PY" "$RELOC_TOOLS/crashwriter.py" "$MNT/vm1/disk-flat.vmdk" "$ACKLOG" --seed "$SEED" \
		</dev/null >"$BATS_TEST_TMPDIR/crashwriter.out" 2>&1 3>&- &
	PC_WRITER=$!
	_rfs_register pid "$PC_WRITER"
	local n=0
	while [ ! -s "$ACKLOG" ]; do
		kill -0 "$PC_WRITER" 2>/dev/null ||
			{ fail "the crash writer exited at start: $(cat -- "$BATS_TEST_TMPDIR/crashwriter.out")"; return 1; }
		n=$((n + 1))
		[ "$n" -lt 600 ] || { fail "the crash writer acknowledged nothing in 30 s"; return 1; }
		sleep 0.05
	done
}

# pc_migrate FLAGS...: relocctl migrate MNT/vm1 --to DST FLAGS, whose answer
# a failpoint right after the start may cut off.
pc_migrate() {
	RCTL_TIMEOUT=30 rctl migrate "$MNT/vm1" --to "$DST" "$@" \
		>"$BATS_TEST_TMPDIR/migrate.out" 2>"$BATS_TEST_TMPDIR/migrate.err" || true
	RELOC_ID=$(head -n 1 -- "$BATS_TEST_TMPDIR/migrate.out")
}

pc_request() {
	RCTL_TIMEOUT=30 rctl "$1" "$MNT/vm1" >>"$BATS_TEST_TMPDIR/migrate.out" \
		2>>"$BATS_TEST_TMPDIR/migrate.err" || true
}

pc_wait_phase() {
	[[ $RELOC_ID =~ ^[1-9][0-9]*$ ]] ||
		{ fail "relocctl migrate gave no id: $(cat -- "$BATS_TEST_TMPDIR/migrate.out" "$BATS_TEST_TMPDIR/migrate.err")"; return 1; }
	reloc_wait_phase "$RELOC_ID" "$1" 60
}

# pc_cut [POINT]: the power cut. With POINT, wait until relocfs killed itself
# there first. relocfs and faultfs die (SIGKILL, relocfs first: nothing
# reaches faultfs after it), both mounts are dropped lazily, the writer
# fails out.
pc_cut() {
	local point=${1:-} n rc=0
	if [ -n "$point" ]; then
		n=$((PC_DEATH_TIMEOUT * 20))
		while rfs_pid_alive "$RFS_PID" && [ "$n" -gt 0 ]; do
			sleep 0.05
			n=$((n - 1))
		done
		rfs_pid_alive "$RFS_PID" &&
			{ fail "relocfs still running ${PC_DEATH_TIMEOUT} s after the relocation started: failpoint $point never reached"; return 1; }
	fi
	kill -KILL "$RFS_PID" 2>/dev/null || true
	faultfs_powercut "$FFS" || return 1
	wait "$RFS_PID" 2>/dev/null || rc=$?
	_rfs_unregister pid "$RFS_PID"
	fusermount3 -uz -- "$MNT" 2>/dev/null || umount -l -- "$MNT" 2>/dev/null || true
	if [ -n "$PC_WRITER" ]; then
		n=0
		while kill -0 "$PC_WRITER" 2>/dev/null && [ "$n" -lt 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -9 "$PC_WRITER" 2>/dev/null || true
		wait "$PC_WRITER" 2>/dev/null || true
		_rfs_unregister pid "$PC_WRITER"
		PC_WRITER=
	fi
	if [ -n "${PC_DEBUG:-}" ]; then
		# post-mortem: what was durable at the cut, and faultfs's trace
		rm -rf -- "$BATS_TEST_TMPDIR/back-at-cut"
		cp -a -- "$BACK" "$BATS_TEST_TMPDIR/back-at-cut"
		cp -- "$BATS_TEST_TMPDIR/faultfs.ffs.log" "$BATS_TEST_TMPDIR/faultfs-at-cut.log"
	fi
	if [ -n "$point" ]; then
		[ "$rc" = 137 ] || { fail "relocfs exited with status $rc, not killed by SIGKILL (137); log: $(cat -- "$RFS_LOG")"; return 1; }
		grep -qF -- "relocfs: failpoint ${point%@*}" "$RFS_LOG" ||
			{ fail "no 'relocfs: failpoint ${point%@*}' in relocfs's stderr: $(tail -n 30 -- "$RFS_LOG")"; return 1; }
	fi
	return 0
}

# pc_restart: the machine is back: faultfs over the same backing dir, then
# relocfs (whose recovery runs before it mounts).
pc_restart() {
	FAULTFS_TRACE=${PC_DEBUG:-} faultfs_mount "$BACK" "$FFS" || return 1
	pc_mount
}

# pc_check_in DIR WHAT: the disk in DIR/vm1 holds every acknowledged write
# and the other files of the home are intact
pc_check_in() {
	local d
	run "$RFS_PY" "$RELOC_TOOLS/crashcheck.py" "$1/vm1/disk-flat.vmdk" "$BASE" "$ACKLOG" --seed "$SEED"
	[ "$status" = 0 ] || { fail "$2: an acknowledged write is missing from $1/vm1/disk-flat.vmdk: $output"; return 1; }
	d=$(diff <(printf '%s\n' "$PC_SUMS") <(reloc_sums_small "$1/vm1")) ||
		{ fail "$(printf '%s: the other files of the home changed in %s/vm1:\n%s' "$2" "$1" "$d")"; return 1; }
}

# pc_check EXPECT: after the restart (EXPECT: back or forward)
pc_check() {
	local expect=$1 on gone left
	[ "$(wc -l <"$ACKLOG")" -gt 0 ] || { fail "the writer acknowledged nothing before the cut"; return 1; }
	case $expect in
	back) on=src gone=dst ;;
	forward) on=dst gone=src ;;
	*) fail "powercut: unknown outcome '$expect'"; return 1 ;;
	esac
	pc_check_in "$MNT" "through the mount" || return 1
	reloc_assert_home_on vm1 "$FFS/$on" || return 1
	reloc_status || return 1
	[ -z "$(rq active)" ] || { fail "a relocation is still running after the restart: $RELOC_JSON"; return 1; }
	# what is durable: the backing directory itself
	pc_check_in "$BACK/$on" "in the backing dir (durable)" || return 1
	[ ! -e "$BACK/$gone/vm1" ] ||
		{ fail "the home is on $on (expected: $expect), but a copy is left in $gone/vm1: $(ls -la -- "$BACK/$gone/vm1")"; return 1; }
	left=$(find "$BACK/state" -mindepth 2 -maxdepth 2 -name 'reloc-*')
	[ -z "$left" ] || { fail "relocation state left in the state dir: $left"; return 1; }
}

# pc_recheck EXPECT: a second power cut right after the recovery: nothing of
# what it did may be lost
pc_recheck() {
	local before
	pc_cut || return 1
	before=$(wc -l <"$RFS_LOG")
	pc_restart || return 1
	tail -n +"$((before + 1))" -- "$RFS_LOG" | grep -q 'recovery:' &&
		{ fail "the second restart recovered something again: $(tail -n +"$((before + 1))" -- "$RFS_LOG")"; return 1; }
	pc_check "$1"
}

# pc POINT EXPECT DRIVE [FLAGS...]: one power cut at a failpoint, end to end.
#   run          migrate FLAGS
#   abort-copy   migrate --rate 1 FLAGS, wait for copy, relocctl abort
#   abort-ready  migrate --manual-cutover FLAGS, wait for ready, relocctl abort
pc() {
	local point=$1 expect=$2 drive=$3
	shift 3
	pc_mount "$point"
	pc_writer_start || return 1
	case $drive in
	run) pc_migrate "$@" ;;
	abort-copy)
		pc_migrate --rate 1 "$@"
		pc_wait_phase copy || return 1
		pc_request abort ;;
	abort-ready)
		pc_migrate --manual-cutover "$@"
		pc_wait_phase ready || return 1
		pc_request abort ;;
	*) fail "powercut: unknown drive '$drive'"; return 1 ;;
	esac
	pc_cut "$point" || return 1
	pc_restart || return 1
	pc_check "$expect" || return 1
	pc_recheck "$expect"
}

# ---------------------------------------------------------------- copy

@test "power cut during the copy (3rd chunk): rolled back, every fsync'ed write on the source" {
	pc copy-chunk@3 back run --rate 8
}

@test "power cut at moments of a relocation under load (no failpoint): data intact, home on one datastore" {
	local delay on
	for delay in 0.5 1.5 3; do
		# a fresh start: the disk as it is now (made durable) is the base
		sync -- "$SRC/vm1/disk-flat.vmdk"
		cp --sparse=always -- "$SRC/vm1/disk-flat.vmdk" "$BASE"
		: >"$ACKLOG"
		SEED=$RANDOM
		pc_mount
		pc_writer_start
		pc_migrate --rate 2
		sleep "$delay"
		pc_cut
		pc_restart
		on=back
		[ -e "$BACK/dst/vm1" ] && on=forward
		pc_check "$on"
		reloc_umount
		# the next round starts from here: the home back on the source
		if [ "$on" = forward ]; then
			pc_mount
			reloc_migrate vm1 "$SRC" --wait
			reloc_umount
		fi
	done
}

@test "power cut during the copy: a write made before the start and fsync'ed after it is kept" {
	# The application writes a block before the relocation starts (it is
	# then only in the source file's cache) and fsyncs the file once the
	# relocation runs: the fsync is acknowledged, so the block must
	# survive, whichever way recovery goes.
	local x=$BATS_TEST_TMPDIR/block f=vm1/vm1.nvram n=0
	head -c 4096 /dev/urandom >"$x"
	pc_mount
	"$RFS_PY" -c '
import os, sys, time
f, x, d = sys.argv[1:4]
fd = os.open(f, os.O_RDWR)
os.pwrite(fd, open(x, "rb").read(), 0)
open(d + "/ready", "w").close()
while not os.path.exists(d + "/go"):
    time.sleep(0.02)
os.fsync(fd)
open(d + "/acked", "w").close()
time.sleep(3600)' "$MNT/$f" "$x" "$BATS_TEST_TMPDIR" </dev/null >"$BATS_TEST_TMPDIR/holder.out" 2>&1 3>&- &
	PC_WRITER=$!
	_rfs_register pid "$PC_WRITER"
	rfs_wait_file "$BATS_TEST_TMPDIR/ready" 30
	pc_migrate --rate 1
	pc_wait_phase copy
	touch "$BATS_TEST_TMPDIR/go"
	rfs_wait_file "$BATS_TEST_TMPDIR/acked" 30
	pc_cut
	pc_restart
	reloc_assert_home_on vm1 "$SRC"
	cmp -n 4096 -- "$MNT/$f" "$x" ||
		fail "the fsync'ed block is missing from $f through the mount"
	cmp -n 4096 -- "$BACK/src/$f" "$x" ||
		fail "the fsync'ed block is missing from $f in the backing dir (not durable)"
	run find "$BACK/state" -mindepth 2 -maxdepth 2 -name 'reloc-*'
	assert_output ''
	assert_not_exist "$BACK/dst/vm1"
}

# ---------------------------------------------------------------- converge

@test "power cut right after a round's generation was sealed (sealing does not flush it): rolled forward" {
	pc round-sealed forward run --manual-cutover --pause-budget 1
}

@test "power cut after a round was applied, before its generation is dropped: rolled forward" {
	pc round-applied forward run --manual-cutover --pause-budget 1
}

@test "power cut after the 2nd round's generation was dropped: rolled forward" {
	pc round-dropped@2 forward run --manual-cutover --pause-budget 1
}

# pc_pwrite FILE OFFSET LENGTH BYTE [fsync]: LENGTH bytes of BYTE at OFFSET
# through the mount, fsync'ed when asked
pc_pwrite() {
	"$RFS_PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, sys.argv[4].encode() * int(sys.argv[3]), int(sys.argv[2]))
if sys.argv[5:] == ["fsync"]:
    os.fsync(fd)
os.close(fd)' "$@"
}

@test "power cut after a round dropped a generation whose fsync'ed write a newer, unsynced one superseded: the fsync'ed data or newer is kept" {
	local hold=$BATS_TEST_TMPDIR/hold got
	# held at the first round's seal (in ready: nothing to converge before)
	local -a RFS_LAUNCHER=(env RELOCFS_FAILPOINT=round-dropped "RELOCFS_FAILPOINT_HOLD=round-sealed:$hold")
	reloc_mount
	pc_migrate --manual-cutover --pause-budget 1
	pc_wait_phase ready
	# 512 KiB of A, acknowledged: the round seals its generation and holds
	pc_pwrite "$MNT/vm1/disk-flat.vmdk" 0 524288 A fsync
	rfs_wait_file "$hold" 30
	# block 0 rewritten, not fsync'ed, in the next generation: the round
	# will not apply block 0 of the sealed one
	pc_pwrite "$MNT/vm1/disk-flat.vmdk" 0 4096 B
	rm -f -- "$hold"
	pc_cut round-dropped
	pc_restart
	reloc_assert_home_on vm1 "$FFS/dst"
	for f in "$MNT/vm1/disk-flat.vmdk" "$BACK/dst/vm1/disk-flat.vmdk"; do
		got=$("$RFS_PY" -c 'import sys
d = open(sys.argv[1], "rb").read(524288)
b0 = d[:4096]
print("ok" if b0 in (b"A" * 4096, b"B" * 4096) and d[4096:] == b"A" * (524288 - 4096) else "lost: block 0 starts %r" % b0[:8])' "$f")
		[ "$got" = ok ] || fail "$f: the fsync'ed write is $got"
	done
}

@test "power cut after a round whose only change to a file was an fsync'ed size change: the size is kept" {
	pc_mount round-dropped
	pc_migrate --manual-cutover --pause-budget 1
	pc_wait_phase ready
	"$RFS_PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.ftruncate(fd, 100000)
os.fsync(fd)
os.close(fd)' "$MNT/vm1/vm1.nvram"
	# enough journal for a round
	pc_pwrite "$MNT/vm1/disk-flat.vmdk" 0 524288 A fsync
	pc_cut round-dropped
	pc_restart
	reloc_assert_home_on vm1 "$FFS/dst"
	[ "$(stat -c %s -- "$MNT/vm1/vm1.nvram")" = 100000 ] ||
		fail "vm1.nvram through the mount: size $(stat -c %s -- "$MNT/vm1/vm1.nvram"), fsync'ed 100000"
	[ "$(stat -c %s -- "$BACK/dst/vm1/vm1.nvram")" = 100000 ] ||
		fail "vm1.nvram in the backing dir: size $(stat -c %s -- "$BACK/dst/vm1/vm1.nvram"), fsync'ed 100000"
}

# ---------------------------------------------------------------- cutover

@test "power cut right after the cutover, before the destination is flushed: rolled forward" {
	pc cutover-resumed forward run
}

@test "power cut after the journal was deleted at the cutover, before the state says cleanup: rolled forward" {
	pc cutover-journal-dropped forward run
}

@test "power cut after the destination flush, with the state at cleanup: rolled forward" {
	pc cleanup-state forward run
}

@test "power cut after the journal was removed, before the source copy: rolled forward" {
	pc cleanup-journal forward run
}

# The state dir takes new files and renames, but its fsync fails (faultfs
# SIGRTMIN) from the cutover on: the placement naming the destination is
# renamed into place unflushed. A rollback would delete the copy it names;
# the flip goes on instead, and nothing after it is acknowledged until the
# move is on disk.
@test "the state dir cannot be flushed from the cutover on: the flip goes on, fsyncs fail until the restart, whose recovery completes the move with every acknowledged write" {
	local hold=$BATS_TEST_TMPDIR/hold
	local -a RFS_LAUNCHER=(env -u RELOCFS_FAILPOINT "RELOCFS_FAILPOINT_HOLD=cutover-state:$hold")
	reloc_mount
	pc_writer_start
	pc_migrate
	rfs_wait_file "$hold" 60
	faultfs_fail_dirsync "$FFS"
	rm -f -- "$hold"
	reloc_wait_phase "$RELOC_ID" done 60
	run rq get "$RELOC_ID" error
	assert_output --partial "after the cutover, flushing the destination failed: Input/output error"
	assert_output --partial "until then changes to the home fail"
	grep -q "home vm1: the placement naming .* is in the state dir, but flushing the state dir failed" \
		"$RFS_LOG" || fail "no warning about the unflushed placement: $(tail -n 20 -- "$RFS_LOG")"
	reloc_assert_home_on vm1 "$DST"
	run --separate-stderr "$RFS_PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.fsync(fd)' "$MNT/vm1/vm1.nvram"
	assert_failure
	[[ $stderr == *"Input/output error"* ]] || fail "fsync after the failed flush: $stderr"
	run mkdir -- "$MNT/vm1/newdir"
	assert_failure
	assert_output --partial "Input/output error"
	# nor does any other change: the recovery's replay would undo it
	run --separate-stderr "$RFS_PY" -c 'import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
res = []
for name, f in (("write", lambda: os.pwrite(fd, b"x", 0)), ("truncate", lambda: os.ftruncate(fd, 1)),
                ("chmod", lambda: os.fchmod(fd, 0o600)), ("setxattr", lambda: os.setxattr(fd, "user.x", b"1"))):
    try:
        f(); res.append(name + " ok")
    except OSError as e:
        res.append(name + " " + errno.errorcode[e.errno])
print(" / ".join(res))' "$MNT/vm1/vm1.nvram"
	assert_success
	assert_output "write EIO / truncate EIO / chmod EIO / setxattr EIO"
	# and no new relocation of the home until the recovery has run
	mkdir -- "$FFS/other"
	run rctl migrate "$MNT/vm1" --to "$FFS/other"
	assert_failure
	assert_output --partial "the last relocation of vm1 could not be made durable (Input/output error); unmount and mount relocfs again"
	pc_cut
	pc_restart
	pc_check forward
	pc_recheck forward
}

@test "the state dir cannot be flushed at the flip, then heals: the relocation completes, the placement is flushed again" {
	local h1=$BATS_TEST_TMPDIR/hold1 h2=$BATS_TEST_TMPDIR/hold2
	local -a RFS_LAUNCHER=(env -u RELOCFS_FAILPOINT
		"RELOCFS_FAILPOINT_HOLD=cutover-state:$h1,cutover-resumed:$h2")
	reloc_mount
	pc_writer_start
	pc_migrate
	rfs_wait_file "$h1" 60
	faultfs_fail_dirsync "$FFS"
	rm -f -- "$h1"
	rfs_wait_file "$h2" 60
	faultfs_heal "$FFS"
	rm -f -- "$h2"
	reloc_wait_phase "$RELOC_ID" done 60
	assert_equal "$(rq get "$RELOC_ID" error)" ""
	grep -q "home vm1: the placement naming .* is in the state dir, but flushing the state dir failed" \
		"$RFS_LOG" || fail "no warning about the unflushed placement: $(tail -n 20 -- "$RFS_LOG")"
	grep -q "home vm1: the placement is flushed now" "$RFS_LOG" ||
		fail "the placement was not flushed again: $(tail -n 20 -- "$RFS_LOG")"
	pc_cut
	pc_restart
	pc_check forward
}

# ---------------------------------------------------------------- abort

@test "power cut in an abort during the copy, after a rollback round wrote B unflushed: rolled back" {
	pc rollback-round back abort-copy
}

@test "power cut in an abort in ready, after a rollback round wrote B unflushed: rolled forward" {
	pc rollback-round forward abort-ready
}

@test "power cut in an abort during the copy, the source restored: rolled back" {
	pc rollback-restored back abort-copy
}

@test "power cut in an abort during the copy, 'aborted' persisted: rolled back" {
	pc rollback-state back abort-copy
}

@test "power cut in an abort in ready, the source restored but not yet recorded: rolled forward" {
	pc rollback-restored forward abort-ready
}

@test "power cut in an abort in ready, 'aborted' persisted: rolled back" {
	pc rollback-state back abort-ready
}
