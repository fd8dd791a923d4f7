# campaign.bash: the crash campaign of test/crash_campaign.bats.
#
# Load after lib/common and lib/reloc.
#
# One kill point per test: relocfs is started with RELOCFS_FAILPOINT=POINT
# (src/failpoint.c), which makes it print "relocfs: failpoint NAME" and
# SIGKILL itself at exactly that step of a relocation (or of the recovery at
# mount). A crash writer (tools/crashwriter.py) writes through the mount all
# along and logs every write acknowledged by fsync. After the kill the dead
# mount is dropped lazily, relocfs is mounted again without the failpoint,
# and campaign_check asserts what src/recover.c promises:
#
#   back     rolled back: the home is on the source, no copy on the
#            destination
#   forward  rolled forward: the home is on the destination, the source copy
#            removed
#   keep     rolled forward with --keep-source: on the destination, the
#            source copy still there
#
# and, in every case: every acknowledged write is in the disk file (through
# the mount and in the copy on the datastore that holds the home), the other
# files of the home are intact, no reloc-* directory is left in the state
# dir, no relocation is running, and the log shows the failpoint was hit.

# How long the driven relocation may take to reach its kill point.
CAMPAIGN_DEATH_TIMEOUT=${CAMPAIGN_DEATH_TIMEOUT:-90}

# From setup: the suite's usual layout (reloc_setup) and a home vm1 whose
# sparse 8 MiB disk holds 4 MiB of random data in four extents; BASE is the
# disk as it was before the writer started, SUMS the checksums of the other
# files of the home.
campaign_setup() {
	reloc_setup
	# a malformed value is refused before anything else: proof that this
	# relocfs has failpoints at all
	RELOCFS_FAILPOINT=@ "$RELOCFS" / / 2>&1 | grep -q RELOCFS_FAILPOINT ||
		fail "$RELOCFS does not read RELOCFS_FAILPOINT (built without failpoints?)"
	reloc_make_home vm1 4 8
	SEED=$RANDOM
	BASE=$BATS_TEST_TMPDIR/base.img
	ACKLOG=$BATS_TEST_TMPDIR/acked.log
	cp --sparse=always -- "$SRC/vm1/disk-flat.vmdk" "$BASE"
	: >"$ACKLOG"
	CAMPAIGN_SUMS=$(reloc_sums_small "$SRC/vm1")
	CAMPAIGN_WRITER=
}

campaign_teardown() {
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ] && [ -s "$BATS_TEST_TMPDIR/crashwriter.out" ]; then
		echo "---- crashwriter output"
		tail -n 20 -- "$BATS_TEST_TMPDIR/crashwriter.out"
	fi
	reloc_teardown
}

# campaign_mount [POINT]: mount SRC on MNT as reloc_mount does, with
# RELOCFS_FAILPOINT=POINT in relocfs's environment when POINT is given.
campaign_mount() {
	local -a RFS_LAUNCHER=(env -u RELOCFS_FAILPOINT)
	[ -n "${1:-}" ] && RFS_LAUNCHER=(env "RELOCFS_FAILPOINT=$1")
	reloc_mount
}

# campaign_writer_start: the crash writer on MNT/vm1/disk-flat.vmdk; returns
# once it has acknowledged a first write.
campaign_writer_start() {
	"$RFS_PY" "$RELOC_TOOLS/crashwriter.py" "$MNT/vm1/disk-flat.vmdk" "$ACKLOG" --seed "$SEED" \
		</dev/null >"$BATS_TEST_TMPDIR/crashwriter.out" 2>&1 3>&- &
	CAMPAIGN_WRITER=$!
	_rfs_register pid "$CAMPAIGN_WRITER"
	local n=0
	while [ ! -s "$ACKLOG" ]; do
		kill -0 "$CAMPAIGN_WRITER" 2>/dev/null ||
			{ fail "the crash writer exited at start: $(cat -- "$BATS_TEST_TMPDIR/crashwriter.out")"; return 1; }
		n=$((n + 1))
		[ "$n" -lt 600 ] || { fail "the crash writer acknowledged nothing in 30 s"; return 1; }
		sleep 0.05
	done
}

# campaign_wait_death POINT: wait until the relocfs of the last mount has
# killed itself, drop its dead mount, let the writer fail out.
campaign_wait_death() {
	local point=$1 n rc=0
	n=$((CAMPAIGN_DEATH_TIMEOUT * 20))
	while rfs_pid_alive "$RFS_PID" && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	if rfs_pid_alive "$RFS_PID"; then
		fail "relocfs (pid $RFS_PID) still running ${CAMPAIGN_DEATH_TIMEOUT} s after the relocation was started: failpoint $point never reached"
		return 1
	fi
	wait "$RFS_PID" 2>/dev/null || rc=$?
	_rfs_unregister pid "$RFS_PID"
	fusermount3 -uz -- "$MNT" 2>/dev/null || umount -l -- "$MNT" 2>/dev/null || true
	if [ -n "$CAMPAIGN_WRITER" ]; then
		n=0
		while kill -0 "$CAMPAIGN_WRITER" 2>/dev/null && [ "$n" -lt 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -9 "$CAMPAIGN_WRITER" 2>/dev/null || true
		wait "$CAMPAIGN_WRITER" 2>/dev/null || true
		_rfs_unregister pid "$CAMPAIGN_WRITER"
		CAMPAIGN_WRITER=
	fi
	[ "$rc" = 137 ] || { fail "relocfs exited with status $rc, not killed by SIGKILL (137); log: $(cat -- "$RFS_LOG")"; return 1; }
	campaign_assert_hit "$point" "$RFS_LOG"
}

# campaign_assert_hit POINT FILE: FILE shows that relocfs reached POINT
campaign_assert_hit() {
	local name=${1%@*}
	grep -qF -- "relocfs: failpoint $name" "$2" ||
		fail "no 'relocfs: failpoint $name' in relocfs's stderr: $(tail -n 30 -- "$2")"
}

# campaign_migrate FLAGS...: relocctl migrate MNT/vm1 --to DST FLAGS. Its
# status is not asserted: a point right after the start can kill relocfs
# before it answers. Output kept for a failure report.
campaign_migrate() {
	RCTL_TIMEOUT=30 rctl migrate "$MNT/vm1" --to "$DST" "$@" \
		>"$BATS_TEST_TMPDIR/migrate.out" 2>"$BATS_TEST_TMPDIR/migrate.err" || true
	RELOC_ID=$(head -n 1 -- "$BATS_TEST_TMPDIR/migrate.out")
}

# campaign_request CMD: relocctl CMD MNT/vm1 (cutover or abort), whose
# answer may be cut off by the kill it leads to.
campaign_request() {
	RCTL_TIMEOUT=30 rctl "$1" "$MNT/vm1" >>"$BATS_TEST_TMPDIR/migrate.out" \
		2>>"$BATS_TEST_TMPDIR/migrate.err" || true
}

# campaign_wait_id_phase PHASE: wait for the relocation just started (whose
# migrate must have answered) to be in PHASE
campaign_wait_id_phase() {
	[[ $RELOC_ID =~ ^[1-9][0-9]*$ ]] ||
		{ fail "relocctl migrate gave no id: $(cat -- "$BATS_TEST_TMPDIR/migrate.out" "$BATS_TEST_TMPDIR/migrate.err")"; return 1; }
	reloc_wait_phase "$RELOC_ID" "$1" 60
}

# campaign_drive DRIVE FLAGS...: start the relocation of vm1 to DST and
# steer it toward the armed point:
#   run          migrate FLAGS, nothing more
#   cutover      migrate --manual-cutover FLAGS, wait for ready, relocctl cutover
#   abort-copy   migrate --rate 1 FLAGS, wait for copy, relocctl abort
#   abort-ready  migrate --manual-cutover FLAGS, wait for ready, relocctl abort
campaign_drive() {
	local drive=$1
	shift
	case $drive in
	run)
		campaign_migrate "$@" ;;
	cutover)
		campaign_migrate --manual-cutover "$@"
		campaign_wait_id_phase ready || return 1
		campaign_request cutover ;;
	abort-copy)
		campaign_migrate --rate 1 "$@"
		campaign_wait_id_phase copy || return 1
		campaign_request abort ;;
	abort-ready)
		campaign_migrate --manual-cutover "$@"
		campaign_wait_id_phase ready || return 1
		campaign_request abort ;;
	*)
		fail "campaign: unknown drive '$drive'"
		return 1 ;;
	esac
}

# campaign_check EXPECT: the promises of the header, after the remount
campaign_check() {
	local expect=$1 on gone d
	run "$RFS_PY" "$RELOC_TOOLS/crashcheck.py" "$MNT/vm1/disk-flat.vmdk" "$BASE" "$ACKLOG" --seed "$SEED"
	[ "$status" = 0 ] || { fail "through the mount, an acknowledged write is missing: $output"; return 1; }
	[ "$(wc -l <"$ACKLOG")" -gt 0 ] || { fail "the writer acknowledged nothing before the kill"; return 1; }
	d=$(diff <(printf '%s\n' "$CAMPAIGN_SUMS") <(reloc_sums_small "$MNT/vm1")) ||
		{ fail "$(printf 'the other files of the home changed (through the mount):\n%s' "$d")"; return 1; }
	case $expect in
	back) on=$SRC gone=$DST ;;
	forward) on=$DST gone=$SRC ;;
	keep) on=$DST gone= ;;
	*) fail "campaign: unknown outcome '$expect'"; return 1 ;;
	esac
	reloc_assert_home_on vm1 "$on" || return 1
	if [ -n "$gone" ] && [ -e "$gone/vm1" ]; then
		fail "the home is on $on (as expected: $expect), but a copy is left in $gone/vm1: $(ls -la -- "$gone/vm1")"
		return 1
	fi
	if [ "$expect" = keep ]; then
		[ -d "$SRC/vm1" ] || { fail "--keep-source, but the source copy $SRC/vm1 is gone"; return 1; }
	fi
	run "$RFS_PY" "$RELOC_TOOLS/crashcheck.py" "$on/vm1/disk-flat.vmdk" "$BASE" "$ACKLOG" --seed "$SEED"
	[ "$status" = 0 ] || { fail "in $on/vm1 (read natively), an acknowledged write is missing: $output"; return 1; }
	d=$(diff <(printf '%s\n' "$CAMPAIGN_SUMS") <(reloc_sums_small "$on/vm1")) ||
		{ fail "$(printf 'the other files of the home changed (in %s):\n%s' "$on/vm1" "$d")"; return 1; }
	reloc_assert_no_journal || return 1
	reloc_status || return 1
	[ -z "$(rq active)" ] || { fail "a relocation is still running after the remount: $RELOC_JSON"; return 1; }
}

# campaign_recover_killed POINT: start relocfs on SRC and STATE with
# RELOCFS_FAILPOINT=POINT, a point of the recovery at mount; assert that it
# kills itself there, before mounting.
campaign_recover_killed() {
	local rpoint=$1 rlog=$BATS_TEST_TMPDIR/recover-kill.log pid rc=0 n
	_rfs_register fuse "$MNT"
	RELOCFS_FAILPOINT=$rpoint "$RELOCFS" -f -o "allow_other,state_dir=$STATE" "$SRC" "$MNT" \
		</dev/null >"$rlog" 2>&1 3>&- &
	pid=$!
	_rfs_register pid "$pid"
	n=$((CAMPAIGN_DEATH_TIMEOUT * 20))
	while rfs_pid_alive "$pid" && ! rfs_is_mounted "$MNT" && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	if rfs_pid_alive "$pid"; then
		fail "relocfs with failpoint $rpoint $(rfs_is_mounted "$MNT" && echo "mounted: its recovery never reached the point" || echo "neither died nor mounted"): $(cat -- "$rlog")"
		return 1
	fi
	wait "$pid" 2>/dev/null || rc=$?
	_rfs_unregister pid "$pid"
	[ "$rc" = 137 ] ||
		{ fail "relocfs with failpoint $rpoint at mount: exit $rc, expected 137 (SIGKILL): $(cat -- "$rlog")"; return 1; }
	campaign_assert_hit "$rpoint" "$rlog" || return 1
	! rfs_is_mounted "$MNT" || { fail "relocfs killed during its recovery left $MNT mounted"; return 1; }
}

# campaign POINT EXPECT DRIVE [FLAGS...] [-- RECOVER_POINT]:
# one kill point, end to end. With "-- RECOVER_POINT", the first remount is
# killed at RECOVER_POINT during its recovery, and the second remount must
# give what an uninterrupted recovery gives (EXPECT).
campaign() {
	local point=$1 expect=$2 drive=$3 rpoint= a
	shift 3
	local -a flags=()
	while [ $# -gt 0 ]; do
		a=$1
		shift
		if [ "$a" = -- ]; then
			rpoint=${1:-}
			break
		fi
		flags+=("$a")
	done
	campaign_mount "$point"
	campaign_writer_start || return 1
	campaign_drive "$drive" "${flags[@]}" || return 1
	campaign_wait_death "$point" || return 1
	if [ -n "$rpoint" ]; then
		campaign_recover_killed "$rpoint" || return 1
	fi
	campaign_mount
	campaign_check "$expect"
}
