#!/usr/bin/env bats
# The build's deliverables: make install with PREFIX and DESTDIR, and the
# daemon's logging to syslog once it has daemonized.

load lib/common

setup() {
	REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
}

teardown() {
	rfs_cleanup
	if [ -n "${SYSLOG_PID:-}" ]; then
		kill "$SYSLOG_PID" 2>/dev/null || true
		wait "$SYSLOG_PID" 2>/dev/null || true
		rm -f /dev/log
	fi
}

@test "make install puts binaries, man pages and the config under DESTDIR and PREFIX" {
	local d=$BATS_TEST_TMPDIR/dest
	run make -C "$REPO" --no-print-directory install DESTDIR="$d" PREFIX=/usr
	assert_success
	assert_file_executable "$d/usr/sbin/relocfs"
	assert_file_executable "$d/usr/sbin/relocctl"
	assert_file_exist "$d/usr/share/man/man8/relocfs.8"
	assert_file_exist "$d/usr/share/man/man8/relocctl.8"
	assert_file_exist "$d/usr/share/man/man5/relocfs.conf.5"
	cmp "$REPO/conf/relocfs.conf" "$d/etc/relocfs/relocfs.conf"
	run "$d/usr/sbin/relocfs" --version
	assert_success
	assert_output --regexp '^relocfs [0-9]+\.[0-9]+\.[0-9]+ '
	run "$d/usr/sbin/relocctl" --version
	assert_success
	assert_output --regexp '^relocctl [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "make install keeps an existing, edited config file" {
	local d=$BATS_TEST_TMPDIR/dest
	mkdir -p "$d/etc/relocfs"
	echo 'log = { level = "debug"; };' >"$d/etc/relocfs/relocfs.conf"
	run make -C "$REPO" --no-print-directory install DESTDIR="$d" PREFIX=/usr
	assert_success
	assert_output --partial "keeping $d/etc/relocfs/relocfs.conf"
	run cat "$d/etc/relocfs/relocfs.conf"
	assert_output 'log = { level = "debug"; };'
}

@test "the installed man pages render without warnings" {
	rfs_require_cmd groff
	local p
	for p in "$REPO"/doc/*.8 "$REPO"/doc/*.5; do
		run groff -man -ww -z "$p"
		assert_success
		assert_output ''
	done
}

@test "a daemonized relocfs logs one line per event to syslog" {
	rfs_require_root
	rfs_require_binary
	[ ! -e /dev/log ] || skip "a syslog daemon owns /dev/log on this machine"
	local got=$BATS_TEST_TMPDIR/syslog.txt
	"$RFS_PY" - "$got" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(4096) + b"\n")
PY
	SYSLOG_PID=$!
	local i
	for i in $(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done
	rfs_tmpfs "$BATS_TEST_TMPDIR/src"
	rfs_mount_daemon "$BATS_TEST_TMPDIR/src" "$BATS_TEST_TMPDIR/mnt"
	rfs_umount "$BATS_TEST_TMPDIR/mnt"
	for i in $(seq 50); do grep -q 'unmounted' "$got" 2>/dev/null && break; sleep 0.1; done
	run cat "$got"
	assert_output --regexp 'relocfs\[[0-9]+\]: serving .*/src on .*/mnt'
	assert_output --regexp 'relocfs\[[0-9]+\]: unmounted .*/mnt'
	# Nothing went to the daemon's stderr after it detached.
	run cat "$RFS_LOG"
	refute_output --partial 'serving'
}
