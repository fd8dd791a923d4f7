# common.bash: helpers shared by the relocfs bats suites.
#
# Load from a .bats file with:   load lib/common
#
# Everything a test mounts or starts goes through the helpers below, which
# record it in a cleanup list; rfs_cleanup (call it from teardown, and from
# teardown_file for what setup_file created) undoes the list in reverse order,
# also when the test failed half-way.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load '/usr/lib/bats/bats-file/load'

# A hung FUSE daemon hangs every process that touches the mount: give each
# test a time limit (bats then still runs teardown, which only unmounts
# lazily and never touches the mount). Override from the environment.
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

RELOCFS=${RELOCFS:-$BATS_TEST_DIRNAME/../build/relocfs}
if [[ $RELOCFS == */* && -e $RELOCFS ]]; then
	RELOCFS=$(readlink -f -- "$RELOCFS")
fi
export RELOCFS

# The unprivileged identity used for permission tests. It needs no passwd
# entry: setpriv takes numbers.
RFS_UID=${RFS_TEST_UID:-40123}
RFS_GID=${RFS_TEST_GID:-40123}
RFS_PY=/usr/bin/python3
export RFS_UID RFS_GID RFS_PY

# ---------------------------------------------------------------- guards

rfs_require_root() {
	[ "$(id -u)" = 0 ] || skip "needs root: mounts FUSE"
}

rfs_require_binary() {
	[ -x "$RELOCFS" ] || fail "relocfs binary not found at '$RELOCFS' (run make at the repo root)"
}

rfs_require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs '$c'"
	done
}

# ---------------------------------------------------------------- cleanup list

# The list lives in the test's temp dir inside a test, in the file's temp dir
# inside setup_file/teardown_file (BATS_TEST_TMPDIR is unset there).
_rfs_scope() {
	printf '%s\n' "${BATS_TEST_TMPDIR:-$BATS_FILE_TMPDIR}"
}

_rfs_register() {
	printf '%s %s\n' "$1" "$2" >>"$(_rfs_scope)/.rfs-cleanup"
}

# Drop an entry (e.g. a pid the test already reaped).
_rfs_unregister() {
	local list
	list="$(_rfs_scope)/.rfs-cleanup"
	[ -f "$list" ] || return 0
	grep -vxF -- "$1 $2" "$list" >"$list.new" || true
	mv -f -- "$list.new" "$list"
}

# rfs_is_mounted PATH: is PATH a mount point? Reads the mount table only,
# so it never hangs on a dead FUSE daemon (mountpoint(1) stats the path).
rfs_is_mounted() {
	local p
	p=$(readlink -m -- "$1")
	awk -v p="$p" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# fstype of the mount at PATH, e.g. fuse.relocfs
rfs_fstype() {
	local p
	p=$(readlink -m -- "$1")
	awk -v p="$p" '$2 == p { t = $3 } END { if (t == "") exit 1; print t }' /proc/self/mounts
}

# mount options (the VFS and the super block's, comma separated) of PATH
rfs_mount_opts() {
	local p
	p=$(readlink -m -- "$1")
	awk -v p="$p" '$2 == p { o = $4 } END { if (o == "") exit 1; print o }' /proc/self/mounts
}

# rfs_count_relocfs_mounts [PREFIX]: number of fuse.relocfs mounts whose
# mount point is under PREFIX (default: this bats run's temp dir, so that
# other suites running at the same time do not disturb the count).
rfs_count_relocfs_mounts() {
	local prefix
	prefix=$(readlink -m -- "${1:-$BATS_RUN_TMPDIR}")
	awk -v p="$prefix/" '$3 == "fuse.relocfs" && index($2 "/", p) == 1 { n++ } END { print n + 0 }' /proc/self/mounts
}

# pids of relocfs processes whose argv has PATH as an argument (exact match,
# or the same path spelled with a trailing slash / canonicalized)
rfs_pids_for() {
	local p pid a
	p=$(readlink -m -- "$1")
	for pid in $(pgrep -x relocfs 2>/dev/null); do
		local -a argv=()
		mapfile -d '' -t argv <"/proc/$pid/cmdline" 2>/dev/null || continue
		for a in "${argv[@]:1}"; do
			if [ "$a" = "$1" ] || [ "$a" = "$p" ] || [ "${a%/}" = "$p" ]; then
				printf '%s\n' "$pid"
				break
			fi
		done
	done
}

# rfs_pid_alive PID: running (not gone, not a zombie)
rfs_pid_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$st" != Z ]
}

# rfs_wait_gone PID [seconds]: wait until PID is no longer running
rfs_wait_gone() {
	local n=$(( ${2:-10} * 20 ))
	while rfs_pid_alive "$1" && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	! rfs_pid_alive "$1"
}

_rfs_kill_pid() {
	local pid=$1 i
	rfs_pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 40); do
		rfs_pid_alive "$pid" || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
}

_rfs_umount_fuse() {
	local mnt=$1 i
	for i in 1 2 3; do
		rfs_is_mounted "$mnt" || return 0
		fusermount3 -uz -- "$mnt" 2>/dev/null || umount -l -- "$mnt" 2>/dev/null || true
	done
}

_rfs_umount() {
	local mnt=$1
	rfs_is_mounted "$mnt" || return 0
	umount -- "$mnt" 2>/dev/null || umount -l -- "$mnt" 2>/dev/null || true
}

# Undo everything registered in this scope, newest first. Never fails.
rfs_cleanup() {
	local list kind arg
	list="$(_rfs_scope)/.rfs-cleanup"
	[ -f "$list" ] || return 0
	while read -r kind arg; do
		case $kind in
		pid) _rfs_kill_pid "$arg" ;;
		pidgroup) kill -TERM -- "-$arg" 2>/dev/null || true ;;
		fuse) _rfs_umount_fuse "$arg" ;;
		mount) _rfs_umount "$arg" ;;
		loop) losetup -d "$arg" 2>/dev/null || true ;;
		daemon)
			# relocfs started without -f: find it by its mount point argument
			local p
			for p in $(rfs_pids_for "$arg"); do _rfs_kill_pid "$p"; done
			;;
		rmfile) rm -f -- "$arg" ;;
		rmtree) rm -rf -- "$arg" ;;
		esac
	done < <(tac -- "$list")
	rm -f -- "$list"
	return 0
}

# rfs_bg CMD...: start CMD in the background (fd 3 closed so bats does not
# wait for it), record its pid for cleanup, leave it in RFS_BG_PID.
rfs_bg() {
	"$@" </dev/null >/dev/null 2>&1 3>&- &
	RFS_BG_PID=$!
	_rfs_register pid "$RFS_BG_PID"
}

# rfs_wait_file FILE [TIMEOUT_S]: wait until FILE exists.
rfs_wait_file() {
	local f=$1 n=$(( ${2:-10} * 20 ))
	while [ ! -e "$f" ] && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	[ -e "$f" ] || fail "timed out waiting for $f"
}

# ---------------------------------------------------------------- mounts

# rfs_tmpfs DIR [size]: mount a fresh tmpfs on DIR (created if needed).
rfs_tmpfs() {
	mkdir -p -- "$1"
	mount -t tmpfs -o "size=${2:-1g},mode=0755" tmpfs "$1"
	_rfs_register mount "$1"
}

# rfs_ext4 IMG DIR [size]: make an ext4 image, loop-mount it on DIR.
rfs_ext4() {
	local img=$1 dir=$2 size=${3:-256M} dev
	truncate -s "$size" -- "$img"
	_rfs_register rmfile "$img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 -- "$img"
	dev=$(losetup -f --show -- "$img")
	_rfs_register loop "$dev"
	mkdir -p -- "$dir"
	mount -t ext4 "$dev" "$dir"
	_rfs_register mount "$dir"
}

# rfs_wait_mounted MNT PID LOG: wait until MNT is a mount point that answers.
rfs_wait_mounted() {
	local mnt=$1 pid=$2 log=$3 n=200
	while [ "$n" -gt 0 ]; do
		if rfs_is_mounted "$mnt"; then
			if timeout 10 stat -- "$mnt" >/dev/null; then
				return 0
			fi
			fail "relocfs mounted $mnt but it does not answer; log: $(cat -- "$log" 2>/dev/null)"
			return 1
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			fail "relocfs exited before mounting $mnt; log: $(cat -- "$log" 2>/dev/null)"
			return 1
		fi
		sleep 0.05
		n=$((n - 1))
	done
	fail "timed out waiting for relocfs to mount $mnt; log: $(cat -- "$log" 2>/dev/null)"
}

# Does the argument list already carry a state_dir option?
_rfs_has_state_dir() {
	local a
	for a in "$@"; do
		[[ $a == *state_dir=* ]] && return 0
	done
	return 1
}

# rfs_mount SRC MNT [relocfs options...]
# Runs relocfs in the foreground (-f) in the background, with
# -o state_dir=<scope>/state.<mnt name> unless the options give one, waits
# until MNT is mounted and answers. Sets RFS_PID and RFS_LOG.
rfs_mount() {
	local src=$1 mnt=$2 name state
	shift 2
	local -a opts=()
	name=$(basename -- "$mnt")
	if ! _rfs_has_state_dir "$@"; then
		state="$(_rfs_scope)/state.$name"
		mkdir -p -- "$state"
		opts=(-o "state_dir=$state")
	fi
	mkdir -p -- "$mnt"
	RFS_LOG="$(_rfs_scope)/relocfs.$name.log"
	# RFS_LAUNCHER: optional command prefix (an array), e.g. (env --default-signal=INT)
	"${RFS_LAUNCHER[@]}" "$RELOCFS" -f "${opts[@]}" "$@" "$src" "$mnt" </dev/null >>"$RFS_LOG" 2>&1 3>&- &
	RFS_PID=$!
	_rfs_register pid "$RFS_PID"
	_rfs_register fuse "$mnt"
	rfs_wait_mounted "$mnt" "$RFS_PID" "$RFS_LOG"
}

# rfs_mount_daemon SRC MNT [relocfs options...]
# Runs relocfs the ordinary way (it daemonizes once mounted); asserts that it
# returns 0 with MNT mounted. Output of the command in RFS_LOG.
rfs_mount_daemon() {
	local src=$1 mnt=$2 name state rc=0
	shift 2
	local -a opts=()
	name=$(basename -- "$mnt")
	if ! _rfs_has_state_dir "$@"; then
		state="$(_rfs_scope)/state.$name"
		mkdir -p -- "$state"
		opts=(-o "state_dir=$state")
	fi
	mkdir -p -- "$mnt"
	RFS_LOG="$(_rfs_scope)/relocfs.$name.log"
	_rfs_register daemon "$mnt"
	_rfs_register fuse "$mnt"
	timeout 30 "$RELOCFS" "${opts[@]}" "$@" "$src" "$mnt" </dev/null >>"$RFS_LOG" 2>&1 3>&- || rc=$?
	[ "$rc" = 0 ] || fail "relocfs exited $rc; output: $(cat -- "$RFS_LOG")"
}

# rfs_umount MNT: unmount a relocfs mount the way a user would, and wait
# until it is gone.
rfs_umount() {
	fusermount3 -u -- "$1"
	! rfs_is_mounted "$1"
}

# ---------------------------------------------------------------- users

# rfs_allow_traverse PATH: give "others" search permission on PATH and on
# each of its ancestors inside the bats run directory, so that the
# unprivileged test user can reach PATH. Skips if an ancestor outside the
# run directory is closed.
rfs_allow_traverse() {
	local p run perm name
	local -a inside=() outside=()
	p=$(readlink -m -- "$1")
	run=$(readlink -m -- "$BATS_RUN_TMPDIR")
	[ -d "$p" ] || p=${p%/*}
	while [ -n "$p" ] && [ "$p" != / ]; do
		if [[ $p == "$run" || $p == "$run"/* ]]; then
			inside+=("$p")
		else
			outside+=("$p")
		fi
		p=${p%/*}
	done
	[ "${#inside[@]}" = 0 ] || chmod o+x -- "${inside[@]}"
	[ "${#outside[@]}" = 0 ] && return 0
	while read -r perm name; do
		[[ ${perm:9:1} == [xt] ]] || skip "the test user cannot traverse $name"
	done < <(stat -c '%A %n' -- "${outside[@]}")
}

# rfs_as_user CMD...: run CMD as the unprivileged test user
rfs_as_user() {
	setpriv --reuid="$RFS_UID" --regid="$RFS_GID" --clear-groups -- "$@"
}

# ---------------------------------------------------------------- fsops.py

# A copy of fsops.py any user can run; `fsops OP ARGS` is usable inside the
# scripts given to rfs_both (the function is exported).
rfs_setup_fsops() {
	RFS_FSOPS="$BATS_RUN_TMPDIR/fsops.py"
	if [ ! -f "$RFS_FSOPS" ]; then
		cp -- "$BATS_TEST_DIRNAME/lib/fsops.py" "$RFS_FSOPS.tmp"
		chmod 0755 -- "$RFS_FSOPS.tmp"
		mv -f -- "$RFS_FSOPS.tmp" "$RFS_FSOPS"
		chmod o+x -- "$BATS_RUN_TMPDIR"
	fi
	export RFS_FSOPS
}

fsops() {
	"$RFS_PY" -S "$RFS_FSOPS" "$@"
}
export -f fsops

# ---------------------------------------------------------------- comparing

# _rfs_run_in DIR SCRIPT: bats `run` of SCRIPT with bash, cwd DIR, as root or
# (RFS_AS_USER=1) as the test user, in the supplementary groups
# RFS_USER_GROUPS (comma-separated gids) if set, else in none. Output is
# stdout+stderr.
_rfs_run_in() {
	local -a pre=()
	if [ "${RFS_AS_USER:-0}" = 1 ]; then
		pre=(setpriv --reuid="$RFS_UID" --regid="$RFS_GID")
		if [ -n "${RFS_USER_GROUPS:-}" ]; then
			pre+=(--groups="$RFS_USER_GROUPS")
		else
			pre+=(--clear-groups)
		fi
		pre+=(--)
	fi
	run "${pre[@]}" timeout 60 bash -c 'cd -- "$1" || exit 99; shift; eval "$1"' _ "$1" "$2"
}

# rfs_both SCRIPT: run SCRIPT (bash) once in the native reference directory
# $REF and once in the mount $MNT, each as its working directory, and assert
# that both give the same exit status and the same output (stdout+stderr:
# so error messages, errno texts, listings and checksums must agree).
# Leaves status/output of the run through the mount.
rfs_both() {
	local script=$1 ref_status ref_output
	_rfs_run_in "$REF" "$script"
	ref_status=$status
	ref_output=$output
	_rfs_run_in "$MNT" "$script"
	if [ "$status" != "$ref_status" ] || [ "$output" != "$ref_output" ]; then
		{
			printf 'script:\n%s\n' "$script"
			printf -- '-- native: exit %s, output:\n%s\n' "$ref_status" "$ref_output"
			printf -- '-- through relocfs: exit %s, output:\n%s\n' "$status" "$output"
			printf -- '-- diff native relocfs:\n'
			diff <(printf '%s\n' "$ref_output") <(printf '%s\n' "$output") || true
		} | fail
		return 1
	fi
}

# rfs_both_user SCRIPT: rfs_both as the unprivileged test user
rfs_both_user() {
	RFS_AS_USER=1 rfs_both "$@"
}

# rfs_native SCRIPT: run SCRIPT directly (not through the mount) in $SRC and
# in $REF, to build the same fixture in both.
rfs_native() {
	local d
	for d in "$SRC" "$REF"; do
		( cd -- "$d" && eval "$1" ) || fail "fixture script failed in $d: $1"
	done
}

# rfs_tree DIR [times|full]: a canonical description of everything below
# DIR: path, type, mode, owner, link count, size, symlink target, then the
# sha256 of every regular file, then every user.* xattr. With "times", the
# mtime (ns) too; with "full", the mtime and the inode number. Inode numbers
# and ctimes are left out by default (they differ between two native copies).
rfs_tree() {
	local dir=$1 fmt='%p %y %m %U:%G n=%n s=%s l=%l\n'
	[ "${2:-}" = times ] && fmt='%p %y %m %U:%G n=%n s=%s l=%l t=%T@\n'
	[ "${2:-}" = full ] && fmt='%p %y %m %U:%G n=%n s=%s l=%l t=%T@ i=%i\n'
	(
		cd -- "$dir" || exit 1
		find . -mindepth 1 -printf "$fmt" | LC_ALL=C sort
		find . -mindepth 1 -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum --
		find . -mindepth 1 -print0 | LC_ALL=C sort -z |
			xargs -0r getfattr -h -d -m '^user\.' -e hex -- 2>/dev/null
	)
}

# rfs_inodes DIR: path and inode number of everything below DIR
rfs_inodes() {
	( cd -- "$1" && find . -printf '%p %i\n' | LC_ALL=C sort )
}

# rfs_assert_same_tree: the mount shows exactly what the native reference
# holds, and the backing directory holds exactly what the mount shows (with
# equal mtimes and inode numbers).
rfs_assert_same_tree() {
	local d mnt src ref
	mnt=$(rfs_tree "$MNT" full)
	src=$(rfs_tree "$SRC" full)
	ref=$(rfs_tree "$REF")
	d=$(diff -u <(printf '%s\n' "$ref") <(printf '%s\n' "$mnt" | sed 's/ t=[^ ]* i=[0-9]*$//')) ||
		fail "$(printf 'mount differs from native reference (--- native +++ relocfs):\n%s' "$d")"
	d=$(diff -u <(printf '%s\n' "$src") <(printf '%s\n' "$mnt")) ||
		fail "$(printf 'mount differs from its backing dir in data, metadata, mtime or inode (--- backing +++ relocfs):\n%s' "$d")"
	d=$(diff -u <(stat -c '%i %a %U:%G' -- "$SRC") <(stat -c '%i %a %U:%G' -- "$MNT")) ||
		fail "$(printf 'mount root differs from SOURCE root:\n%s' "$d")"
}

# rfs_dump_log_on_failure: print the relocfs logs of a failed test
rfs_dump_log_on_failure() {
	[ "${BATS_TEST_COMPLETED:-}" = 1 ] && return 0
	local f
	for f in "$(_rfs_scope)"/relocfs.*.log; do
		[ -s "$f" ] || continue
		echo "---- $f (last 40 lines)"
		tail -n 40 -- "$f"
	done
	return 0
}
