#!/usr/bin/env bats
# The relocfs command line: help/version, usage errors (exit 2, one line on
# stderr, nothing mounted), daemon and foreground modes, signals, mount
# options, and the state_dir lock against a second instance.

bats_require_minimum_version 1.5.0
load lib/common

setup() {
	rfs_require_binary
	export LC_ALL=C
	T="$BATS_TEST_TMPDIR"
	SRC="$T/src"
	MNT="$T/mnt"
	STATE="$T/state"
	mkdir -p -- "$SRC" "$MNT" "$STATE"
	# if a command under test wrongly mounts, cleanup still finds it
	_rfs_register daemon "$MNT"
	_rfs_register fuse "$MNT"
	MOUNTS_BEFORE=$(rfs_count_relocfs_mounts)
}

teardown() {
	rfs_dump_log_on_failure
	rfs_cleanup
}

# run relocfs (daemon mode, bounded in time) with separate stdout/stderr
run_relocfs() {
	run --separate-stderr timeout 20 "$RELOCFS" "$@"
}

# assert_cli_error CODE SUBSTRING...: the last run_relocfs failed with exit
# CODE, nothing on stdout, exactly one line on stderr starting with
# "relocfs: " and containing every SUBSTRING; nothing got mounted.
assert_cli_error() {
	local code=$1 s
	shift
	local -a lines=()
	[ -n "$stderr" ] && mapfile -t lines <<<"$stderr"
	[ "$status" = "$code" ] || fail "exit status $status, expected $code; stderr: $stderr"
	[ -z "$output" ] || fail "expected nothing on stdout, got: $output"
	[ "${#lines[@]}" = 1 ] || fail "expected exactly one line on stderr, got ${#lines[@]}: $stderr"
	[[ $stderr == "relocfs: "* ]] || fail "stderr does not start with 'relocfs: ': $stderr"
	for s in "$@"; do
		[[ $stderr == *"$s"* ]] || fail "stderr lacks '$s': $stderr"
	done
	assert_nothing_mounted "$MNT"
}

assert_nothing_mounted() {
	local m
	for m in "$@"; do
		! rfs_is_mounted "$m" || fail "$m got mounted"
		run mountpoint -q -- "$m"
		[ "$status" != 0 ] || fail "mountpoint says $m is mounted"
	done
	assert_equal "$(rfs_count_relocfs_mounts)" "$MOUNTS_BEFORE"
}

version_from_makefile() {
	sed -n 's/^VERSION[[:space:]]*:*=[[:space:]]*\([^[:space:]]*\).*/\1/p' "$BATS_TEST_DIRNAME/../Makefile"
}

# the pid of the relocfs serving MNT (exactly one)
daemon_pid() {
	local -a pids
	mapfile -t pids < <(rfs_pids_for "$1")
	[ "${#pids[@]}" = 1 ] || fail "expected one relocfs process for $1, found: ${pids[*]}"
	echo "${pids[0]}"
}

# ---------------------------------------------------------------- help, version

@test "--help prints the usage on stdout and exits 0" {
	run_relocfs --help
	assert_success
	assert_output --partial "usage: relocfs [options] SOURCE MOUNTPOINT"
	assert_equal "$stderr" ""
}

@test "-h prints the same help as --help" {
	run_relocfs --help
	local long=$output
	run_relocfs -h
	assert_success
	assert_equal "$output" "$long"
	assert_equal "$stderr" ""
}

@test "--help documents -f, -d, -s, config, state_dir, allow_other, default_permissions" {
	run_relocfs --help
	assert_success
	local w
	for w in " -f" " -d" " -s" "config=" "state_dir=" "allow_other" "default_permissions" "--version"; do
		assert_output --partial "$w"
	done
}

@test "--version prints 'relocfs VERSION' with the Makefile's version and exits 0" {
	local v
	v=$(version_from_makefile)
	[ -n "$v" ] || fail "no VERSION in the Makefile"
	run_relocfs --version
	assert_success
	assert_equal "$stderr" ""
	[[ ${lines[0]} =~ ^relocfs\ ${v//./\\.}($|[[:space:]]) ]] || fail "first line '${lines[0]}' is not 'relocfs $v'"
}

@test "-V prints the same as --version" {
	run_relocfs --version
	local long=$output
	run_relocfs -V
	assert_success
	assert_equal "$output" "$long"
}

# ---------------------------------------------------------------- usage errors

@test "no arguments: exit 2, one usage line naming --help, nothing mounted" {
	run_relocfs
	assert_cli_error 2 "relocfs: usage: relocfs [options] SOURCE MOUNTPOINT" "--help"
	[[ $stderr == "relocfs: usage: relocfs [options] SOURCE MOUNTPOINT"* ]] || fail "usage line: $stderr"
}

@test "a malformed RELOCFS_FAILPOINT or RELOCFS_FAILPOINT_HOLD: exit 2, naming it, nothing mounted" {
	local v
	for v in "RELOCFS_FAILPOINT=copy-chunk@0" "RELOCFS_FAILPOINT=@3"; do
		run --separate-stderr env "$v" timeout 20 "$RELOCFS" -o "state_dir=$STATE" "$SRC" "$MNT"
		assert_cli_error 2 "RELOCFS_FAILPOINT '${v#*=}' is not NAME or NAME@N"
		assert_nothing_mounted "$MNT"
	done
	for v in "RELOCFS_FAILPOINT_HOLD=round-sealed" "RELOCFS_FAILPOINT_HOLD=round-sealed:relative/file" \
		"RELOCFS_FAILPOINT_HOLD=:/tmp/x" "RELOCFS_FAILPOINT_HOLD=ready:/tmp/x," \
		"RELOCFS_FAILPOINT_HOLD=a:/1,b:/2,c:/3,d:/4,e:/5"; do
		run --separate-stderr env "$v" timeout 20 "$RELOCFS" -o "state_dir=$STATE" "$SRC" "$MNT"
		assert_cli_error 2 "RELOCFS_FAILPOINT_HOLD '${v#*=}' is not NAME:/FILE, or up to 4 of them separated by commas"
		assert_nothing_mounted "$MNT"
	done
}

@test "SOURCE without MOUNTPOINT: exit 2, usage line" {
	run_relocfs -o "state_dir=$STATE" "$SRC"
	assert_cli_error 2 "relocfs: usage: relocfs [options] SOURCE MOUNTPOINT" "--help"
}

@test "three positional arguments: exit 2, usage line, nothing mounted" {
	mkdir -p -- "$T/third"
	run_relocfs -o "state_dir=$STATE" "$SRC" "$MNT" "$T/third"
	assert_cli_error 2 "relocfs: usage: relocfs [options] SOURCE MOUNTPOINT"
	assert_nothing_mounted "$T/third"
}

@test "options only, no positional arguments: exit 2, usage line" {
	run_relocfs -f -o "state_dir=$STATE"
	assert_cli_error 2 "relocfs: usage: relocfs [options] SOURCE MOUNTPOINT"
}

@test "missing SOURCE: exit 2, names the path and 'No such file or directory'" {
	run_relocfs -o "state_dir=$STATE" "$T/nope" "$MNT"
	assert_cli_error 2 "$T/nope" "No such file or directory"
}

@test "SOURCE is a regular file: exit 2, 'is not a directory'" {
	: >"$T/file"
	run_relocfs -o "state_dir=$STATE" "$T/file" "$MNT"
	assert_cli_error 2 "$T/file" "is not a directory"
}

@test "SOURCE is a symlink to a file: exit 2, 'is not a directory'" {
	: >"$T/file"
	ln -s file "$T/link"
	run_relocfs -o "state_dir=$STATE" "$T/link" "$MNT"
	assert_cli_error 2 "is not a directory"
}

@test "MOUNTPOINT inside SOURCE: exit 2, 'is inside SOURCE'" {
	mkdir -p -- "$SRC/sub/mnt"
	run_relocfs -o "state_dir=$STATE" "$SRC" "$SRC/sub/mnt"
	assert_cli_error 2 "is inside SOURCE"
	assert_nothing_mounted "$SRC/sub/mnt"
}

@test "MOUNTPOINT inside SOURCE through a symlinked path: exit 2, 'is inside SOURCE'" {
	mkdir -p -- "$SRC/sub/mnt"
	ln -s src "$T/alias"
	run_relocfs -o "state_dir=$STATE" "$SRC" "$T/alias/sub/mnt"
	assert_cli_error 2 "is inside SOURCE"
	assert_nothing_mounted "$SRC/sub/mnt"
}

@test "SOURCE inside MOUNTPOINT: exit 2, 'is inside MOUNTPOINT'" {
	mkdir -p -- "$MNT/inner/src"
	run_relocfs -o "state_dir=$STATE" "$MNT/inner/src" "$MNT"
	assert_cli_error 2 "is inside MOUNTPOINT"
}

@test "SOURCE equal to MOUNTPOINT: exit 2, 'is inside'" {
	run_relocfs -o "state_dir=$STATE" "$SRC" "$SRC"
	assert_cli_error 2 "is inside"
	assert_nothing_mounted "$SRC"
}

@test "SOURCE equal to MOUNTPOINT spelled differently (trailing slash, ./): exit 2, 'is inside'" {
	run_relocfs -o "state_dir=$STATE" "$SRC/" "$T/./src"
	assert_cli_error 2 "is inside"
	assert_nothing_mounted "$SRC"
}

@test "-o bogus: exit 2, 'unknown option', nothing mounted" {
	run_relocfs -o "state_dir=$STATE" -o bogus "$SRC" "$MNT"
	assert_cli_error 2 "unknown option"
}

@test "an unknown option inside an -o list: exit 2, 'unknown option'" {
	run_relocfs -o "state_dir=$STATE,allow_other,bogus=1" "$SRC" "$MNT"
	assert_cli_error 2 "unknown option"
}

@test "--bogus: exit 2, 'unknown option', nothing mounted" {
	run_relocfs -o "state_dir=$STATE" --bogus "$SRC" "$MNT"
	assert_cli_error 2 "unknown option"
}

@test "missing MOUNTPOINT directory: fails, names the path, nothing mounted" {
	rfs_require_root
	run_relocfs -o "state_dir=$STATE" "$SRC" "$T/nomnt"
	[ "$status" != 0 ] || fail "relocfs succeeded with a missing mount point"
	[[ $stderr == *"$T/nomnt"* ]] || fail "stderr does not name the mount point: $stderr"
	assert_nothing_mounted "$MNT" "$T/nomnt"
}

# ---------------------------------------------------------------- daemon and foreground

@test "without -f relocfs returns 0 once mounted and keeps serving in the background" {
	rfs_require_root
	echo native >"$SRC/f"
	run_relocfs -o "state_dir=$STATE" "$SRC" "$MNT"
	assert_success
	rfs_is_mounted "$MNT" || fail "not mounted when relocfs returned"
	assert_equal "$(rfs_fstype "$MNT")" fuse.relocfs
	assert_equal "$(cat -- "$MNT/f")" native
	echo through >"$MNT/g"
	assert_equal "$(cat -- "$SRC/g")" through
	local pid
	pid=$(daemon_pid "$MNT")
	[ "$(awk '{print $4}' "/proc/$pid/stat")" != "$$" ] || fail "the daemon is still a child of the caller"
}

@test "the daemon detaches: cwd /, the caller's stdout/stderr not held open" {
	rfs_require_root
	rfs_mount_daemon "$SRC" "$MNT"
	local pid fd target
	pid=$(daemon_pid "$MNT")
	assert_equal "$(readlink "/proc/$pid/cwd")" /
	for fd in 0 1 2; do
		target=$(readlink "/proc/$pid/fd/$fd" || true)
		[ "$target" != "$(readlink -f -- "$RFS_LOG")" ] || fail "daemon fd $fd still points at the caller's output file"
	done
}

@test "fusermount3 -u unmounts a daemonized relocfs and the daemon exits" {
	rfs_require_root
	rfs_mount_daemon "$SRC" "$MNT"
	local pid
	pid=$(daemon_pid "$MNT")
	fusermount3 -u -- "$MNT"
	rfs_wait_gone "$pid" || fail "relocfs $pid still running after fusermount3 -u"
	assert_nothing_mounted "$MNT"
}

@test "umount unmounts a daemonized relocfs and the daemon exits" {
	rfs_require_root
	rfs_mount_daemon "$SRC" "$MNT"
	local pid
	pid=$(daemon_pid "$MNT")
	umount -- "$MNT"
	rfs_wait_gone "$pid" || fail "relocfs $pid still running after umount"
	assert_nothing_mounted "$MNT"
}

@test "-f stays in the foreground until unmounted, then exits 0" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT"
	local pid=$RFS_PID
	rfs_pid_alive "$pid" || fail "foreground relocfs is gone"
	assert_equal "$(rfs_pids_for "$MNT")" "$pid"
	fusermount3 -u -- "$MNT"
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 0
	assert_nothing_mounted "$MNT"
}

@test "SIGTERM to a foreground relocfs unmounts and ends it" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT"
	kill -TERM "$RFS_PID"
	rfs_wait_gone "$RFS_PID" || fail "relocfs still running 10s after SIGTERM"
	assert_nothing_mounted "$MNT"
}

@test "SIGINT to a foreground relocfs unmounts and ends it" {
	rfs_require_root
	# a non-interactive shell starts background jobs with SIGINT ignored,
	# and libfuse leaves ignored signals alone: restore the default first
	local -a RFS_LAUNCHER=(env --default-signal=INT)
	rfs_mount "$SRC" "$MNT"
	kill -INT "$RFS_PID"
	rfs_wait_gone "$RFS_PID" || fail "relocfs still running 10s after SIGINT"
	assert_nothing_mounted "$MNT"
}

@test "-d runs in the foreground and prints the FUSE requests" {
	rfs_require_root
	echo x >"$SRC/f"
	mkdir -p -- "$MNT"
	RFS_LOG="$T/relocfs.debug.log"
	"$RELOCFS" -d -o "state_dir=$STATE" "$SRC" "$MNT" </dev/null >"$RFS_LOG" 2>&1 3>&- &
	local pid=$!
	_rfs_register pid "$pid"
	_rfs_register fuse "$MNT"
	rfs_wait_mounted "$MNT" "$pid" "$RFS_LOG"
	cat -- "$MNT/f" >/dev/null
	rfs_pid_alive "$pid" || fail "relocfs -d did not stay in the foreground"
	grep -qi lookup "$RFS_LOG" || fail "no LOOKUP request in the -d output: $(head -c 2000 "$RFS_LOG")"
}

@test "a write is one FUSE request: the kernel asks for security.capability once, not before each write" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT" -d
	grep -q "FUSE_HANDLE_KILLPRIV_V2 added" "$RFS_LOG" ||
		skip "this kernel does not offer FUSE_HANDLE_KILLPRIV_V2"
	head -c 409600 /dev/urandom >"$T/data"
	local from
	from=$(($(stat -c %s "$RFS_LOG") + 1))
	dd if="$T/data" of="$MNT/f" bs=4k count=100 status=none
	cmp -- "$T/data" "$SRC/f"
	tail -c "+$from" "$RFS_LOG" >"$T/requests"
	run grep -c "opcode: WRITE" "$T/requests"
	assert_output 100
	run grep -c "opcode: GETXATTR" "$T/requests"
	[ "$output" -le 1 ] || fail "$output GETXATTR requests for 100 writes"
}

@test "-s (single-threaded) serves reads and writes correctly" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT" -s
	head -c 3000000 /dev/urandom >"$T/data"
	cp -- "$T/data" "$MNT/f"
	cmp -- "$T/data" "$MNT/f"
	cmp -- "$T/data" "$SRC/f"
	local i
	local -a readers=()
	for i in 1 2 3 4; do
		timeout 30 cat -- "$MNT/f" >"$T/out$i" 3>&- &
		readers+=($!)
	done
	for i in "${readers[@]}"; do wait "$i"; done
	for i in 1 2 3 4; do cmp -- "$T/data" "$T/out$i"; done
}

@test "relative SOURCE and MOUNTPOINT work in daemon mode" {
	rfs_require_root
	echo rel >"$SRC/f"
	run --separate-stderr bash -c 'cd "$1" && timeout 20 "$RELOCFS" -o "state_dir=$2" src mnt' _ "$T" "$STATE"
	assert_success
	rfs_is_mounted "$MNT" || fail "not mounted at $MNT"
	assert_equal "$(cat -- "$MNT/f")" rel
}

@test "trailing slashes on SOURCE and MOUNTPOINT are accepted" {
	rfs_require_root
	echo slash >"$SRC/f"
	run_relocfs -o "state_dir=$STATE" "$SRC/" "$MNT/"
	assert_success
	rfs_is_mounted "$MNT" || fail "not mounted at $MNT"
	assert_equal "$(cat -- "$MNT/f")" slash
}

@test "a MOUNTPOINT whose name extends SOURCE's (src, src2) is not 'inside'" {
	rfs_require_root
	mkdir -p -- "$T/src2"
	echo sib >"$SRC/f"
	run_relocfs -o "state_dir=$STATE" "$SRC" "$T/src2"
	_rfs_register daemon "$T/src2"
	_rfs_register fuse "$T/src2"
	assert_success
	assert_equal "$(cat -- "$T/src2/f")" sib
}

# ---------------------------------------------------------------- mount options

@test "the mount is listed as fuse.relocfs" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT"
	assert_equal "$(rfs_fstype "$MNT")" fuse.relocfs
	assert_equal "$(rfs_count_relocfs_mounts)" "$((MOUNTS_BEFORE + 1))"
}

@test "default_permissions is always on, even when not asked for" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT"
	[[ ,$(rfs_mount_opts "$MNT"), == *,default_permissions,* ]] || fail "options: $(rfs_mount_opts "$MNT")"
}

@test "-o default_permissions is accepted" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT" -o default_permissions
	[[ ,$(rfs_mount_opts "$MNT"), == *,default_permissions,* ]] || fail "options: $(rfs_mount_opts "$MNT")"
}

@test "-o allow_other shows in the mount options and lets another user in" {
	rfs_require_root
	chmod 0755 -- "$SRC"
	echo pub >"$SRC/f"
	chmod 0644 -- "$SRC/f"
	rfs_mount "$SRC" "$MNT" -o allow_other
	rfs_allow_traverse "$MNT"
	[[ ,$(rfs_mount_opts "$MNT"), == *,allow_other,* ]] || fail "options: $(rfs_mount_opts "$MNT")"
	run rfs_as_user cat -- "$MNT/f"
	assert_success
	assert_output pub
}

@test "without allow_other another user gets 'Permission denied'" {
	rfs_require_root
	chmod 0755 -- "$SRC"
	echo pub >"$SRC/f"
	chmod 0644 -- "$SRC/f"
	rfs_mount "$SRC" "$MNT"
	rfs_allow_traverse "$MNT"
	[[ ,$(rfs_mount_opts "$MNT"), != *,allow_other,* ]] || fail "allow_other without asking: $(rfs_mount_opts "$MNT")"
	run rfs_as_user cat -- "$MNT/f"
	assert_failure
	assert_output --partial "Permission denied"
}

@test "-o ro gives a read-only mount: reads work, writes fail with EROFS" {
	rfs_require_root
	echo ro >"$SRC/f"
	rfs_mount "$SRC" "$MNT" -o ro
	assert_equal "$(cat -- "$MNT/f")" ro
	run bash -c 'echo x >> "$1"' _ "$MNT/f"
	assert_failure
	assert_output --partial "Read-only file system"
	run touch -- "$MNT/new"
	assert_failure
	assert_output --partial "Read-only file system"
	assert_equal "$(cat -- "$SRC/f")" ro
	assert_file_not_exist "$SRC/new"
}

# ---------------------------------------------------------------- state_dir lock

@test "a second relocfs on the same SOURCE and state_dir fails 'already mounted', exit 1" {
	rfs_require_root
	echo one >"$SRC/f"
	rfs_mount "$SRC" "$MNT" -o "state_dir=$STATE"
	local before
	before=$(rfs_count_relocfs_mounts)
	mkdir -p -- "$T/mnt2"
	_rfs_register daemon "$T/mnt2"
	_rfs_register fuse "$T/mnt2"
	run_relocfs -o "state_dir=$STATE" "$SRC" "$T/mnt2"
	MOUNTS_BEFORE=$before
	local -a l=()
	mapfile -t l <<<"$stderr"
	assert_equal "$status" 1
	assert_equal "${#l[@]}" 1
	[[ $stderr == "relocfs: "*"already mounted"* ]] || fail "stderr: $stderr"
	assert_nothing_mounted "$T/mnt2"
	# the first mount is unharmed
	assert_equal "$(cat -- "$MNT/f")" one
	echo two >"$MNT/g"
	assert_equal "$(cat -- "$SRC/g")" two
}

@test "the lock also catches the same SOURCE under another spelling (symlink, trailing slash)" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT" -o "state_dir=$STATE"
	local before
	before=$(rfs_count_relocfs_mounts)
	ln -s src "$T/alias"
	mkdir -p -- "$T/mnt2" "$T/mnt3"
	_rfs_register daemon "$T/mnt2"
	_rfs_register fuse "$T/mnt2"
	_rfs_register daemon "$T/mnt3"
	_rfs_register fuse "$T/mnt3"
	MOUNTS_BEFORE=$before
	run_relocfs -o "state_dir=$STATE" "$T/alias" "$T/mnt2"
	assert_equal "$status" 1
	[[ $stderr == *"already mounted"* ]] || fail "stderr: $stderr"
	run_relocfs -o "state_dir=$STATE" "$SRC/" "$T/mnt3"
	assert_equal "$status" 1
	[[ $stderr == *"already mounted"* ]] || fail "stderr: $stderr"
	assert_nothing_mounted "$T/mnt2" "$T/mnt3"
}

@test "the lock is released at unmount: the same SOURCE mounts again" {
	rfs_require_root
	echo persist >"$SRC/f"
	rfs_mount "$SRC" "$MNT" -o "state_dir=$STATE"
	local pid=$RFS_PID
	fusermount3 -u -- "$MNT"
	wait "$pid" || true
	rfs_mount "$SRC" "$MNT" -o "state_dir=$STATE"
	assert_equal "$(cat -- "$MNT/f")" persist
}

@test "the lock is released when relocfs is killed -9: the same SOURCE mounts again" {
	rfs_require_root
	echo persist >"$SRC/f"
	rfs_mount "$SRC" "$MNT" -o "state_dir=$STATE"
	kill -KILL "$RFS_PID"
	wait "$RFS_PID" 2>/dev/null || true
	fusermount3 -uz -- "$MNT" 2>/dev/null || umount -l -- "$MNT"
	rfs_mount "$SRC" "$T/mnt2" -o "state_dir=$STATE"
	assert_equal "$(cat -- "$T/mnt2/f")" persist
}

@test "two different SOURCEs share one state_dir side by side" {
	rfs_require_root
	mkdir -p -- "$T/srcB"
	echo A >"$SRC/f"
	echo B >"$T/srcB/f"
	rfs_mount "$SRC" "$MNT" -o "state_dir=$STATE"
	rfs_mount "$T/srcB" "$T/mntB" -o "state_dir=$STATE"
	assert_equal "$(cat -- "$MNT/f")" A
	assert_equal "$(cat -- "$T/mntB/f")" B
}

@test "state_dir is not created inside SOURCE and SOURCE is left untouched by a mount" {
	rfs_require_root
	mkdir -p -- "$SRC/d"
	echo x >"$SRC/d/f"
	touch -d 2001-01-01 -- "$SRC/d/f" "$SRC/d" "$SRC"
	local before
	before=$(cd "$SRC" && find . -printf '%p %y %m %s %T@\n' | sort)
	rfs_mount "$SRC" "$MNT" -o "state_dir=$STATE"
	ls -R -- "$MNT" >/dev/null
	fusermount3 -u -- "$MNT"
	wait "$RFS_PID" || true
	assert_equal "$(cd "$SRC" && find . -printf '%p %y %m %s %T@\n' | sort)" "$before"
}

# reads_during LOG CMD...: READ requests relocfs logged (-d) while CMD ran
reads_during() {
	local log=$1 from
	shift
	from=$(($(stat -c %s "$log") + 1))
	"$@"
	tail -c "+$from" -- "$log" | grep -c "opcode: READ (" || true
}

@test "while a handle of a file bypasses the page cache (O_DIRECT with FOPEN_DIRECT_IO), its other handles do too; then the cache is dropped once and serves them again" {
	rfs_require_root
	rfs_mount "$SRC" "$MNT" -d
	grep -q "FUSE_DIRECT_IO_ALLOW_MMAP added" "$RFS_LOG" ||
		skip "this kernel does not offer FUSE_DIRECT_IO_ALLOW_MMAP with protocol 7.40 (Linux 6.9)"
	head -c 65536 /dev/urandom >"$SRC/f"
	"$RFS_PY" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
os.close(fd)' "$MNT/f" "$T/ready" "$T/stop" &
	local holder=$! n
	_rfs_register pid "$holder"
	rfs_wait_file "$T/ready" 30
	# buffered reads while the O_DIRECT handle is open: each reaches relocfs
	for _ in 1 2; do
		n=$(reads_during "$RFS_LOG" dd if="$MNT/f" of=/dev/null bs=4096 count=1 status=none)
		[ "$n" -ge 1 ] || fail "a buffered read beside an O_DIRECT handle was served from the page cache"
	done
	touch -- "$T/stop"
	wait "$holder"
	_rfs_unregister pid "$holder"
	# alone again (once the kernel's RELEASE of the holder's handle, which
	# close(2) does not wait for, is in): the first buffered open drops what
	# the page cache may hold, and a second read comes from the cache
	local tries=0
	until n=$(reads_during "$RFS_LOG" dd if="$MNT/f" of=/dev/null bs=4096 count=1 status=none) &&
		n=$(reads_during "$RFS_LOG" dd if="$MNT/f" of=/dev/null bs=4096 count=1 status=none) &&
		[ "$n" = 0 ]; do
		tries=$((tries + 1))
		[ "$tries" -lt 50 ] || fail "buffered reads still reach relocfs after the O_DIRECT handle closed"
		sleep 0.1
	done
	grep -q "page cache dropped, then used" "$RFS_LOG" ||
		fail "no open dropped the page cache after the O_DIRECT handle: $(grep 'page cache' "$RFS_LOG" | tail -n 5)"
	cmp -- "$SRC/f" "$MNT/f"
}
