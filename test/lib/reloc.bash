# reloc.bash: helpers of the live relocation suites (test/relocation.bats,
# test/relocation_refusals.bats).
#
# Load after lib/common:
#     load lib/common
#     load lib/reloc
#
# Layout of a test (reloc_setup):
#   SRC    the source datastore: a fresh tmpfs
#   DST    a destination datastore on a DIFFERENT filesystem: an empty
#          directory of its own on the ext4 image that setup_file loop-mounts
#          (reloc_setup_file), removed in teardown
#   MNT    the relocfs mount of SRC (reloc_mount), state in STATE
# Everything mounted or started is registered with common.bash's cleanup list,
# so teardown (reloc_teardown) undoes it even when a test fails half-way.

RELOCCTL=${RELOCCTL:-$BATS_TEST_DIRNAME/../build/relocctl}
if [[ $RELOCCTL == */* && -e $RELOCCTL ]]; then
	RELOCCTL=$(readlink -f -- "$RELOCCTL")
fi
RELOC_TOOLS=$(readlink -f -- "$BATS_TEST_DIRNAME/tools")
export RELOCCTL RELOC_TOOLS

# Terminal phases of a relocation.
RELOC_TERMINAL="done failed aborted"

# ---------------------------------------------------------------- guards

reloc_require() {
	rfs_require_root
	rfs_require_binary
	rfs_require_cmd mkfs.ext4 losetup fusermount3 setfattr getfattr sha256sum
	[ -x "$RELOCCTL" ] || fail "relocctl not found at '$RELOCCTL' (run make at the repo root)"
	"$RELOCCTL" --help 2>&1 | grep -qw migrate ||
		fail "relocctl has no migrate command yet ('$RELOCCTL --help' does not list it)"
}

# ---------------------------------------------------------------- file/test setup

# reloc_ext4 IMG DIR SIZE: an ext4 image with 4 KiB blocks and 256-byte inodes
# (a 1500-byte xattr must fit), loop-mounted on DIR.
reloc_ext4() {
	local img=$1 dir=$2 size=$3 dev
	truncate -s "$size" -- "$img"
	_rfs_register rmfile "$img"
	mkfs.ext4 -q -F -b 4096 -I 256 -E lazy_itable_init=1,lazy_journal_init=1 -- "$img"
	dev=$(losetup -f --show -- "$img")
	_rfs_register loop "$dev"
	mkdir -p -- "$dir"
	mount -t ext4 "$dev" "$dir"
	_rfs_register mount "$dir"
}

# From setup_file: one ext4 filesystem shared by the tests of the file; each
# test gets its own empty directory on it as DST.
reloc_setup_file() {
	rfs_require_root
	export RELOC_EXT4="$BATS_FILE_TMPDIR/ext4"
	reloc_ext4 "$BATS_FILE_TMPDIR/ext4.img" "$RELOC_EXT4" 2G
}

reloc_teardown_file() {
	rfs_cleanup
}

# From setup: SRC (tmpfs), DST (ext4 directory), STATE, MNT (not mounted yet).
reloc_setup() {
	reloc_require
	[ -n "${RELOC_EXT4:-}" ] && rfs_is_mounted "$RELOC_EXT4" ||
		fail "the suite's ext4 filesystem is not mounted (setup_file failed?)"
	SRC=$BATS_TEST_TMPDIR/src
	MNT=$BATS_TEST_TMPDIR/mnt
	STATE=$BATS_TEST_TMPDIR/state
	DST=$RELOC_EXT4/t$BATS_TEST_NUMBER
	rfs_tmpfs "$SRC" 2g
	mkdir -p -- "$STATE"
	rm -rf -- "$DST"
	mkdir -- "$DST"
	_rfs_register rmtree "$DST"
	RELOC_WRITERS=()
}

# reloc_teardown: on failure show relocfs's log, the status and the writers'
# output; then undo everything.
reloc_teardown() {
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		rfs_dump_log_on_failure
		if [ -n "${MNT:-}" ] && rfs_is_mounted "$MNT"; then
			echo "---- relocctl status $MNT --json"
			timeout 10 "$RELOCCTL" status "$MNT" --json 2>&1 || true
		fi
		local f
		for f in "$BATS_TEST_TMPDIR"/writer.*.out "$BATS_TEST_TMPDIR"/bgmigrate.*.err; do
			[ -s "$f" ] || continue
			echo "---- $f (last 30 lines)"
			tail -n 30 -- "$f"
		done
	fi
	rfs_cleanup
}

# reloc_mount: mount SRC on MNT with allow_other and state in STATE.
reloc_mount() {
	rfs_mount "$SRC" "$MNT" -o "allow_other,state_dir=$STATE"
}

# reloc_umount: unmount MNT and wait until the relocfs process of the last
# reloc_mount has exited (it holds the state dir's lock until then).
reloc_umount() {
	local pid=$RFS_PID n=300
	rfs_umount "$MNT" || { fail "could not unmount $MNT"; return 1; }
	while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	kill -0 "$pid" 2>/dev/null && { fail "relocfs (pid $pid) still running 30 s after the unmount"; return 1; }
	return 0
}

# reloc_make_home NAME [DATA_MIB] [DISK_MIB]: a VM home made natively in SRC
# (call before reloc_mount): NAME.vmx, NAME.nvram, vmware.log, disk.vmdk, a
# sparse disk-flat.vmdk of DISK_MIB (default 64) MiB holding DATA_MIB
# (default 16) MiB of random data in four extents, and sub/file.
reloc_make_home() {
	local name=$1 data=${2:-16} disk=${3:-64} h i step
	h=$SRC/$name
	mkdir -- "$h"
	printf 'displayName = "%s"\nmemsize = "2048"\nscsi0:0.fileName = "disk.vmdk"\n' "$name" >"$h/$name.vmx"
	head -c 8192 /dev/urandom >"$h/$name.nvram"
	seq -f "%08g log line of $name" 1 2000 >"$h/vmware.log"
	printf '# Disk DescriptorFile\nRW %d VMFS "disk-flat.vmdk"\n' $((disk * 2048)) >"$h/disk.vmdk"
	truncate -s "${disk}M" -- "$h/disk-flat.vmdk"
	step=$((disk / 4))
	for i in 0 1 2 3; do
		dd if=/dev/urandom of="$h/disk-flat.vmdk" bs=1M count=$((data / 4)) seek=$((i * step)) \
			conv=notrunc iflag=fullblock status=none
	done
	mkdir -- "$h/sub"
	echo "a file in a subdirectory" >"$h/sub/file"
}

# reloc_sums DIR: "sha256  path" of every regular file below DIR, sorted
reloc_sums() {
	( cd -- "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum -- )
}

# reloc_sums_small DIR: reloc_sums without the big disk files
reloc_sums_small() {
	( cd -- "$1" && find . -type f ! -name '*-flat.vmdk' -print0 | LC_ALL=C sort -z | xargs -0r sha256sum -- )
}

# ---------------------------------------------------------------- relocctl

# rctl ARGS...: relocctl with a timeout (RCTL_TIMEOUT, default 30 s)
rctl() {
	timeout "${RCTL_TIMEOUT:-30}" "$RELOCCTL" "$@"
}

# reloc_migrate HOME DATASTORE [FLAGS...]: relocctl migrate MNT/HOME --to
# DATASTORE FLAGS; asserts exit 0 and a positive id on the first stdout line,
# leaves it in RELOC_ID. With --wait among the flags it waits up to 180 s.
reloc_migrate() {
	local home=$1 ds=$2
	shift 2
	RCTL_TIMEOUT=180 run --separate-stderr rctl migrate "$MNT/$home" --to "$ds" "$@"
	if [ "$status" != 0 ]; then
		fail "$(printf 'relocctl migrate %s --to %s %s: exit %s\nstdout: %s\nstderr: %s' \
			"$MNT/$home" "$ds" "$*" "$status" "$output" "$stderr")"
		return 1
	fi
	RELOC_ID=${lines[0]:-}
	[[ $RELOC_ID =~ ^[1-9][0-9]*$ ]] ||
		fail "relocctl migrate: first stdout line '$RELOC_ID' is not a positive id (stdout: $output)"
	RELOC_MIGRATE_ERR=$stderr
}

# reloc_migrate_bg NAME HOME DATASTORE [FLAGS...]: relocctl migrate ... --wait
# in the background (stdout/stderr in $BATS_TEST_TMPDIR/bgmigrate.NAME.out/.err);
# returns once the id is printed, in RELOC_ID.
reloc_migrate_bg() {
	local name=$1 home=$2 ds=$3 b n=0
	shift 3
	b=$BATS_TEST_TMPDIR/bgmigrate.$name
	"$RELOCCTL" migrate "$MNT/$home" --to "$ds" --wait "$@" </dev/null >"$b.out" 2>"$b.err" 3>&- &
	echo $! >"$b.pid"
	_rfs_register pid "$!"
	while ! [[ $(head -n 1 -- "$b.out" 2>/dev/null) =~ ^[1-9][0-9]*$ ]]; do
		if ! kill -0 "$(cat -- "$b.pid")" 2>/dev/null; then
			fail "relocctl migrate --wait exited before printing an id; stdout: $(cat -- "$b.out"); stderr: $(cat -- "$b.err")"
			return 1
		fi
		n=$((n + 1))
		[ "$n" -lt 300 ] || { fail "relocctl migrate printed no id in 30 s"; return 1; }
		sleep 0.1
	done
	RELOC_ID=$(head -n 1 -- "$b.out")
}

# reloc_migrate_bg_wait NAME [TIMEOUT_S]: wait for a reloc_migrate_bg; leaves
# its exit status in status, its stderr in stderr.
reloc_migrate_bg_wait() {
	local b=$BATS_TEST_TMPDIR/bgmigrate.$1 pid n
	n=$(( ${2:-120} * 10 ))
	pid=$(cat -- "$b.pid")
	while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	kill -0 "$pid" 2>/dev/null && { fail "relocctl migrate --wait (pid $pid) still running after ${2:-120} s"; return 1; }
	status=0
	wait "$pid" || status=$?
	_rfs_unregister pid "$pid"
	stderr=$(cat -- "$b.err")
	output=$(cat -- "$b.out")
}

# reloc_status [PATH]: relocctl status PATH --json into RELOC_JSON
reloc_status() {
	local rc=0
	RELOC_JSON=$(rctl status "${1:-$MNT}" --json 2>"$BATS_TEST_TMPDIR/status.err") || rc=$?
	if [ "$rc" != 0 ]; then
		fail "relocctl status ${1:-$MNT} --json: exit $rc: $(cat -- "$BATS_TEST_TMPDIR/status.err")"
		return 1
	fi
}

# rq ARGS...: query RELOC_JSON with tools/rstat.py
rq() {
	printf '%s' "$RELOC_JSON" | "$RFS_PY" "$RELOC_TOOLS/rstat.py" "$@"
}

# reloc_wait_phase ID PHASE [TIMEOUT_S]: poll status until relocation ID is in
# PHASE. Fails at once if it ends in another terminal phase or disappears,
# and after TIMEOUT_S (default 60).
reloc_wait_phase() {
	local id=$1 want=$2 n ph=""
	n=$(( ${3:-60} * 10 ))
	while [ "$n" -gt 0 ]; do
		reloc_status || return 1
		ph=$(rq phase "$id")
		[ "$ph" = "$want" ] && return 0
		if [ "$ph" = missing ]; then
			fail "relocation $id is not in the status (waiting for phase $want): $RELOC_JSON"
			return 1
		fi
		if [[ " $RELOC_TERMINAL " == *" $ph "* ]]; then
			fail "relocation $id ended in phase $ph (error: $(rq get "$id" error)) while waiting for $want: $RELOC_JSON"
			return 1
		fi
		sleep 0.1
		n=$((n - 1))
	done
	fail "relocation $id still in phase '$ph' after ${3:-60} s waiting for $want: $RELOC_JSON"
}

# reloc_assert_home_on HOME DATASTORE: status lists HOME on DATASTORE
reloc_assert_home_on() {
	local got
	reloc_status || return 1
	got=$(rq datastore "$1")
	[ "$got" = "$(readlink -f -- "$2")" ] ||
		fail "status lists $1 on '$got', expected $(readlink -f -- "$2"): $RELOC_JSON"
}

# reloc_assert_valid_status: the status document has the contract's shape
reloc_assert_valid_status() {
	local bad
	reloc_status "${1:-$MNT}" || return 1
	bad=$(rq validate "$MNT" "$SRC") || fail "status --json does not follow the contract: $bad; document: $RELOC_JSON"
}

# reloc_assert_no_journal: no reloc-* directory left under STATE/*/
reloc_assert_no_journal() {
	local left
	left=$(find "$STATE" -mindepth 2 -maxdepth 2 -name 'reloc-*' 2>/dev/null)
	[ -z "$left" ] || fail "journal/relocation state left behind: $left"
}

# reloc_assert_only DIR NAME...: DIR holds exactly the entries NAME... (no
# leftover journal or temp files)
reloc_assert_only() {
	local dir=$1 got want
	shift
	got=$(ls -A -- "$dir" | LC_ALL=C sort | tr '\n' ' ')
	want=$(printf '%s\n' "$@" | sed '/^$/d' | LC_ALL=C sort | tr '\n' ' ')
	[ "$got" = "$want" ] || fail "$dir holds '$got', expected '$want'"
}

# ---------------------------------------------------------------- writers

# reloc_writer_start NAME FILE [writer.py args...]: start tools/writer.py on
# FILE in the background; returns once it is writing. Its files are
# $BATS_TEST_TMPDIR/writer.NAME.{out,stop,progress,ready,model,pid}.
reloc_writer_start() {
	local name=$1 file=$2 w pid n=0
	shift 2
	w=$BATS_TEST_TMPDIR/writer.$name
	rm -f -- "$w".stop "$w".ready "$w".progress "$w".model
	"$RFS_PY" "$RELOC_TOOLS/writer.py" "$file" --stop "$w.stop" --ready "$w.ready" \
		--progress "$w.progress" --model-out "$w.model" "$@" </dev/null >"$w.out" 2>&1 3>&- &
	pid=$!
	echo "$pid" >"$w.pid"
	_rfs_register pid "$pid"
	while [ ! -e "$w.ready" ]; do
		kill -0 "$pid" 2>/dev/null || { fail "writer $name exited at start: $(cat -- "$w.out")"; return 1; }
		n=$((n + 1))
		[ "$n" -lt 600 ] || { fail "writer $name did not start in 60 s: $(cat -- "$w.out")"; return 1; }
		sleep 0.1
	done
}

# reloc_writer_count NAME: operations done so far
reloc_writer_count() {
	local c
	c=$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/writer.$1.progress" 2>/dev/null)
	echo "${c:-0}"
}

# reloc_writer_more NAME N [TIMEOUT_S]: wait until writer NAME has done N more
# operations than now (shows it still makes progress)
reloc_writer_more() {
	local c0 n
	c0=$(reloc_writer_count "$1")
	n=$(( ${3:-30} * 10 ))
	while [ "$(reloc_writer_count "$1")" -lt $((c0 + $2)) ]; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || { fail "writer $1 made no progress (stuck at $(reloc_writer_count "$1") operations)"; return 1; }
		sleep 0.1
	done
}

# reloc_writer_stop NAME: stop writer NAME, wait for its verdict, and assert
# "mismatches=0 errors=0 ino_same=1 writes=N>0" and exit 0.
reloc_writer_stop() {
	local w=$BATS_TEST_TMPDIR/writer.$1 pid rc=0 n=1800 last
	pid=$(cat -- "$w.pid")
	touch -- "$w.stop"
	while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		fail "writer $1 did not finish within 180 s of being stopped; output: $(cat -- "$w.out")"
		return 1
	fi
	wait "$pid" || rc=$?
	_rfs_unregister pid "$pid"
	last=$(tail -n 1 -- "$w.out")
	if [ "$rc" != 0 ] || ! [[ $last =~ ^mismatches=0\ errors=0\ ino_same=1\ writes=[1-9][0-9]*$ ]]; then
		fail "$(printf 'writer %s failed (exit %s):\n%s' "$1" "$rc" "$(cat -- "$w.out")")"
		return 1
	fi
}

# reloc_writer_model NAME: path of the model writer NAME dumped
reloc_writer_model() {
	echo "$BATS_TEST_TMPDIR/writer.$1.model"
}

# reloc_assert_model NAME FILE: FILE (read natively) equals writer NAME's model
reloc_assert_model() {
	local m d
	m=$(reloc_writer_model "$1")
	[ -f "$m" ] || { fail "writer $1 left no model"; return 1; }
	[ -f "$2" ] || { fail "$2 does not exist"; return 1; }
	d=$(cmp -- "$m" "$2" 2>&1) || fail "$2 differs from writer $1's model: $d"
}

# ---------------------------------------------------------------- refusals

# reloc_stable_json: RELOC_JSON without homes_tracked, which any lookup of
# a home (relocctl's own) may raise
reloc_stable_json() {
	printf '%s' "$RELOC_JSON" | sed -E 's/"homes_tracked": [0-9]+, //'
}

# reloc_snapshot: record what a refused command must not change: the status
# document, the source tree, the destination's and the state dir's listings.
reloc_snapshot() {
	reloc_status || return 1
	RELOC_SNAP_JSON=$(reloc_stable_json)
	RELOC_SNAP_SRC=$(rfs_tree "$SRC" times)
	RELOC_SNAP_DST=$(cd -- "$DST" && find . | LC_ALL=C sort)
	RELOC_SNAP_STATE=$(cd -- "$STATE" && find . | LC_ALL=C sort)
}

# reloc_assert_unchanged: nothing changed since reloc_snapshot
reloc_assert_unchanged() {
	local d
	reloc_status || return 1
	[ "$(reloc_stable_json)" = "$RELOC_SNAP_JSON" ] ||
		fail "$(printf 'status changed:\nbefore: %s\nafter:  %s' "$RELOC_SNAP_JSON" "$(reloc_stable_json)")"
	d=$(diff <(printf '%s\n' "$RELOC_SNAP_SRC") <(rfs_tree "$SRC" times)) ||
		fail "$(printf 'the source datastore changed:\n%s' "$d")"
	d=$(diff <(printf '%s\n' "$RELOC_SNAP_DST") <(cd -- "$DST" && find . | LC_ALL=C sort)) ||
		fail "$(printf 'the destination changed:\n%s' "$d")"
	d=$(diff <(printf '%s\n' "$RELOC_SNAP_STATE") <(cd -- "$STATE" && find . | LC_ALL=C sort)) ||
		fail "$(printf 'the state dir changed:\n%s' "$d")"
}

# reloc_refused EXIT PATTERN CMD...: run CMD (a relocctl command line,
# without the binary); assert exit status EXIT, nothing on stdout, exactly one
# stderr line, starting "relocctl: " and matching the extended regex PATTERN.
reloc_refused() {
	local want=$1 pat=$2
	shift 2
	run --separate-stderr rctl "$@"
	local msg
	msg=$(printf 'relocctl %s\nexit %s (expected %s)\nstdout: %s\nstderr: %s' "$*" "$status" "$want" "$output" "$stderr")
	[ "$status" = "$want" ] || { fail "$msg"; return 1; }
	[ -z "$output" ] || { fail "stdout not empty: $msg"; return 1; }
	[ "${#stderr_lines[@]}" = 1 ] || { fail "expected exactly one stderr line: $msg"; return 1; }
	[[ ${stderr_lines[0]} == "relocctl: "* ]] || { fail "stderr line does not start with 'relocctl: ': $msg"; return 1; }
	grep -Eq -- "$pat" <<<"${stderr_lines[0]}" || { fail "stderr does not match /$pat/: $msg"; return 1; }
}
