# faultfs.bash: helpers for test/tools/faultfs.c (build/faultfs, built by
# `make testtools`), a FUSE pass-through that holds every data write in
# memory until it is fsync'ed (a power cut drops the rest) and fails writes
# with EIO on demand. Used by test/faultfs.bats, test/powercut.bats and
# test/dest_faults.bats.
#
# Load after lib/common:
#     load lib/common
#     load lib/faultfs
#
#   faultfs_mount BACKDIR MNT    mount BACKDIR at MNT; the daemon's pid in
#                                FAULTFS_PID (and in a file, for the helpers
#                                below); registered for cleanup
#   faultfs_powercut MNT         SIGKILL the daemon, drop the mount lazily:
#                                what was not fsync'ed is gone
#   faultfs_fail MNT             from now on writes fail with EIO (SIGUSR1)
#   faultfs_fail_dirsync MNT     from now on only fsyncdir fails with EIO
#                                (SIGRTMIN)
#   faultfs_fail_lossy MNT       from now on fsync of a file fails with EIO
#                                and loses its pending writes (SIGRTMIN+1)
#   faultfs_fail_close MNT       from now on close(2) of a file fails with
#                                EIO, as NFS reports a delayed write error
#                                (SIGRTMIN+2)
#   faultfs_heal MNT             back to normal (SIGUSR2)
#   faultfs_pid MNT              the pid of MNT's daemon

FAULTFS=${FAULTFS:-$BATS_TEST_DIRNAME/../build/faultfs}
if [[ $FAULTFS == */* && -e $FAULTFS ]]; then
	FAULTFS=$(readlink -f -- "$FAULTFS")
fi
export FAULTFS

faultfs_require() {
	rfs_require_root
	rfs_require_cmd fusermount3
	[ -x "$FAULTFS" ] || fail "faultfs not found at '$FAULTFS' (run make testtools at the repo root)"
}

# Where the pid of the faultfs serving MNT is kept.
_faultfs_pidfile() {
	local p
	p=$(readlink -m -- "$1")
	printf '%s/.faultfs.%s.pid\n' "$(_rfs_scope)" "$(printf '%s' "$p" | md5sum | cut -c1-16)"
}

faultfs_pid() {
	cat -- "$(_faultfs_pidfile "$1")" 2>/dev/null
}

# faultfs_mount BACKDIR MNT [faultfs options...]
faultfs_mount() {
	local back=$1 mnt=$2 log
	shift 2
	mkdir -p -- "$mnt"
	log="$(_rfs_scope)/faultfs.$(basename -- "$mnt").log"
	"$FAULTFS" "$back" "$mnt" -f "$@" </dev/null >>"$log" 2>&1 3>&- &
	FAULTFS_PID=$!
	_rfs_register pid "$FAULTFS_PID"
	_rfs_register fuse "$mnt"
	echo "$FAULTFS_PID" >"$(_faultfs_pidfile "$mnt")"
	rfs_wait_mounted "$mnt" "$FAULTFS_PID" "$log" || return 1
	[ "$(rfs_fstype "$mnt")" = fuse.faultfs ] ||
		fail "$mnt is mounted, but as $(rfs_fstype "$mnt"), not fuse.faultfs"
}

# faultfs_powercut MNT: the daemon of MNT dies at once (SIGKILL) with every
# write that was not fsync'ed; its dead mount is detached lazily.
faultfs_powercut() {
	local mnt=$1 pid
	pid=$(faultfs_pid "$mnt")
	[ -n "$pid" ] || { fail "no faultfs daemon known for $mnt"; return 1; }
	kill -KILL "$pid" 2>/dev/null || true
	rfs_wait_gone "$pid" 10 || { fail "faultfs (pid $pid) survived SIGKILL"; return 1; }
	wait "$pid" 2>/dev/null || true
	_rfs_unregister pid "$pid"
	fusermount3 -uz -- "$mnt" 2>/dev/null || umount -l -- "$mnt" 2>/dev/null || true
	! rfs_is_mounted "$mnt" || { fail "$mnt still mounted after the power cut"; return 1; }
	rm -f -- "$(_faultfs_pidfile "$mnt")"
}

# _faultfs_probe MNT: 0 if faultfs at MNT fails a mkdir with EIO (fail
# mode), 1 if the mkdir works (removed again), 2 otherwise.
_faultfs_probe() {
	local p=$1/.faultfs-probe err
	if err=$(mkdir -- "$p" 2>&1); then
		rmdir -- "$p"
		return 1
	fi
	[[ $err == *"Input/output error"* ]] && return 0
	return 2
}

# faultfs_fail MNT: writes, fsyncs and creations fail with EIO from now on.
# Returns once the daemon has taken the signal (a probe mkdir at the top of
# MNT fails).
faultfs_fail() {
	local pid n=0 rc
	pid=$(faultfs_pid "$1")
	[ -n "$pid" ] || { fail "no faultfs daemon known for $1"; return 1; }
	kill -USR1 "$pid"
	while :; do
		rc=0
		_faultfs_probe "$1" || rc=$?
		[ "$rc" = 0 ] && return 0
		n=$((n + 1))
		[ "$n" -lt 200 ] || { fail "faultfs at $1 does not fail writes 10 s after SIGUSR1"; return 1; }
		sleep 0.05
	done
}

# _faultfs_switch MNT SIG WHAT PROBE...: send SIG to MNT's daemon, then run
# PROBE until it fails (the daemon has taken the signal), for up to 10 s;
# WHAT says what still works then, for the failure message
_faultfs_switch() {
	local mnt=$1 sig=$2 what=$3 pid n=0
	shift 3
	pid=$(faultfs_pid "$mnt")
	[ -n "$pid" ] || { fail "no faultfs daemon known for $mnt"; return 1; }
	kill -"$sig" "$pid"
	while "$@" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 200 ] || { fail "faultfs at $mnt still $what 10 s after SIG$sig"; return 1; }
		sleep 0.05
	done
}

# faultfs_fail_dirsync MNT: only directory flushes fail with EIO from now
# on. Returns once the daemon has taken the signal (an fsync of MNT fails).
faultfs_fail_dirsync() {
	_faultfs_switch "$1" RTMIN "flushes directories" sync -- "$1"
}

# faultfs_fail_lossy MNT: a failed fsync loses the file's pending writes
# from now on. Returns once the daemon has taken the signal (a probe file's
# fsync fails).
faultfs_fail_lossy() {
	local p=$1/.faultfs-lossy-probe rc=0
	_faultfs_switch "$1" RTMIN+1 "flushes files" \
		dd if=/dev/zero of="$p" bs=512 count=1 conv=fsync status=none || rc=$?
	rm -f -- "$p"
	return "$rc"
}

# faultfs_fail_close MNT: close(2) of a file fails with EIO from now on.
# Returns once the daemon has taken the signal (a probe file's close fails).
faultfs_fail_close() {
	local p=$1/.faultfs-close-probe rc=0
	_faultfs_switch "$1" RTMIN+2 "closes files" "$RFS_PY" -c \
		'import os, sys; os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600))' "$p" || rc=$?
	rm -f -- "$p"
	return "$rc"
}

# faultfs_heal MNT: back to normal; returns once a probe mkdir and an fsync
# of MNT work.
faultfs_heal() {
	local pid n=0 rc
	pid=$(faultfs_pid "$1")
	[ -n "$pid" ] || { fail "no faultfs daemon known for $1"; return 1; }
	kill -USR2 "$pid"
	while :; do
		rc=0
		_faultfs_probe "$1" || rc=$?
		[ "$rc" = 1 ] && sync -- "$1" 2>/dev/null && return 0
		n=$((n + 1))
		[ "$n" -lt 200 ] || { fail "faultfs at $1 still fails writes 10 s after SIGUSR2"; return 1; }
		sleep 0.05
	done
}
