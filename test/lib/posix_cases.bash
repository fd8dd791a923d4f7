# posix_cases.bash: the POSIX operation cases, shared by posix_ops.bats
# (tmpfs backing) and posix_ext4.bats (loop-mounted ext4 backing).
#
# Layout of one test (made by posix_setup):
#   $FSROOT            the backing file system of the whole .bats file
#   $BASE = $FSROOT/tN  this test's directory on it
#   $SRC = $BASE/src    the SOURCE of the relocfs mount
#   $REF = $BASE/ref    a plain native directory on the same file system
#   $MNT                the relocfs mount of $SRC (-o allow_other)
#   $OUT = $BASE/out    scratch space outside the mount on the same fs
#   $DATA               random input files (r10k r64k r1m r5m)
#
# A case runs an operation through the mount and natively (rfs_both) and
# compares outputs, then compares the resulting trees (rfs_assert_same_tree).

load lib/common

# ---------------------------------------------------------------- setup

_posix_make_data() {
	DATA="$BATS_FILE_TMPDIR/data"
	mkdir -p -- "$DATA"
	head -c 10000 /dev/urandom >"$DATA/r10k"
	head -c 65536 /dev/urandom >"$DATA/r64k"
	head -c 1048576 /dev/urandom >"$DATA/r1m"
	head -c 5242880 /dev/urandom >"$DATA/r5m"
	chmod -R a+rX -- "$DATA"
	export DATA
}

posix_setup_file_tmpfs() {
	[ "$(id -u)" = 0 ] || return 0
	FSROOT="$BATS_FILE_TMPDIR/fs"
	rfs_tmpfs "$FSROOT" 2g
	export FSROOT FSKIND=tmpfs
	_posix_make_data
}

posix_setup_file_ext4() {
	[ "$(id -u)" = 0 ] || return 0
	FSROOT="$BATS_FILE_TMPDIR/fs"
	rfs_ext4 "$BATS_FILE_TMPDIR/ext4.img" "$FSROOT" 256M
	chmod 0755 -- "$FSROOT"
	export FSROOT FSKIND=ext4
	_posix_make_data
}

posix_teardown_file() {
	rfs_cleanup
}

posix_setup() {
	rfs_require_root
	rfs_require_binary
	export LC_ALL=C TZ=UTC
	BASE="$FSROOT/t$BATS_TEST_NUMBER"
	SRC="$BASE/src"
	REF="$BASE/ref"
	OUT="$BASE/out"
	MNT="$BATS_TEST_TMPDIR/mnt"
	rm -rf -- "$BASE"
	mkdir -p -- "$SRC" "$REF" "$OUT"
	chmod 0755 -- "$BASE" "$SRC" "$REF" "$OUT"
	export BASE SRC REF OUT MNT
	rfs_setup_fsops
	rfs_mount "$SRC" "$MNT" -o allow_other
	rfs_allow_traverse "$MNT"
	rfs_allow_traverse "$REF"
}

posix_teardown() {
	rfs_dump_log_on_failure
	rfs_cleanup
	[ -n "${BASE:-}" ] && rm -rf -- "$BASE"
	return 0
}

# st_blocks of NAME through the mount equals st_blocks of the backing file
# and of the native reference file.
rfs_assert_blocks_match() {
	local n=$1 m s r
	m=$(stat -c %b -- "$MNT/$n")
	s=$(stat -c %b -- "$SRC/$n")
	r=$(stat -c %b -- "$REF/$n")
	[ "$m" = "$s" ] || fail "st_blocks of $n: $m through the mount, $s in the backing file"
	[ "$m" = "$r" ] || fail "st_blocks of $n: $m through the mount, $r natively"
}

# ---------------------------------------------------------------- lookup, getattr, inodes

case_stat_of_native_files_matches_backing() {
	rfs_native 'printf abc > f; chmod 640 f; chown 4242:4343 f; touch -d "2003-04-05 06:07:08.5" f
		mkdir -m 750 d; ln -s f l; mkfifo p; ln f h'
	local fmt='%n|%F|%s|%a|%u|%g|%h|%i|%b|%x|%y|%z'
	assert_equal "$(cd "$MNT" && stat -c "$fmt" f d l p h)" "$(cd "$SRC" && stat -c "$fmt" f d l p h)"
}

case_stat_missing_gives_same_errors() {
	rfs_native 'mkdir d; : > f'
	rfs_both 'stat -c %n nope; stat -c %n d/nope; stat -c %n f/x; ls nope; cat f/x; cd nope; cd f'
}

case_ino_matches_backing() {
	rfs_native 'mkdir -p n/a; echo x > n/a/f'
	rfs_both 'mkdir -p m/b; echo y > m/b/g; ln m/b/g m/h; ln -s g m/b/s; mkfifo m/p; ls -R n m'
	rfs_assert_same_tree
}

case_ino_stable_after_cache_drop() {
	rfs_native 'mkdir -p a/b; echo x > a/b/f; ln a/b/f a/g'
	local before after
	before=$(cd "$MNT" && stat -c '%n %i' a a/b a/b/f a/g)
	sync
	echo 2 >/proc/sys/vm/drop_caches
	after=$(cd "$MNT" && stat -c '%n %i' a a/b a/b/f a/g)
	assert_equal "$after" "$before"
	assert_equal "$after" "$(cd "$SRC" && stat -c '%n %i' a a/b a/b/f a/g)"
}

case_ino_stable_across_rename() {
	rfs_both 'mkdir w; cd w; echo x > f; mkdir d; i=$(stat -c %i f); mv f d/g; j=$(stat -c %i d/g); mv d e; k=$(stat -c %i e/g); [ "$i" = "$j" ] && [ "$j" = "$k" ] && echo stable'
	assert_output stable
	rfs_assert_same_tree
}

case_mount_root_matches_source_root() {
	local src2="$BASE/src2" mnt2="$BATS_TEST_TMPDIR/mnt2"
	mkdir -p -- "$src2"
	chown 4242:4343 -- "$src2"
	chmod 0751 -- "$src2"
	touch -d "2005-06-07 08:09:10" -- "$src2"
	rfs_mount "$src2" "$mnt2"
	assert_equal "$(stat -c '%a %u %g %Y %i %F' -- "$mnt2")" "$(stat -c '%a %u %g %Y %i %F' -- "$src2")"
}

# ---------------------------------------------------------------- chmod, chown

case_chmod_file_modes() {
	rfs_both ': > f; for m in 644 600 000 4755 2755 2745 1777 6777 7000 755; do chmod $m f && stat -c "%a %A" f; done'
	rfs_assert_same_tree
}

case_chmod_dir_modes() {
	rfs_both 'mkdir d; for m in 700 1777 3775 0 755; do chmod $m d && stat -c "%a %A" d; done'
	rfs_assert_same_tree
}

case_chmod_through_symlink_changes_target() {
	rfs_both ': > t; ln -s t l; chmod 600 l; stat -c "%n %a %F" t l'
	rfs_assert_same_tree
}

case_chown_owner_and_group() {
	rfs_both ': > f; chown 4242:4343 f; stat -c "%u %g" f; chown :5000 f; stat -c "%u %g" f; chown 0 f; stat -c "%u %g" f; mkdir -p d/e; chown -R 7:8 d; stat -c "%n %u %g" d d/e'
	rfs_assert_same_tree
}

case_chown_h_changes_link_not_target() {
	rfs_both ': > t; ln -s t l; chown -h 4242:4343 l; stat -c "%n %u %g" t l'
	rfs_assert_same_tree
}

case_chown_clears_setuid_setgid() {
	rfs_both ': > f; chmod 6755 f; chown 4242:4343 f; stat -c "%n %a" f; : > g; chmod 2745 g; chown 4242 g; stat -c "%n %a" g; mkdir d; chmod 2755 d; chown 4242 d; stat -c "%n %a" d'
	rfs_assert_same_tree
}

case_user_in_more_than_64_groups() {
	# 70 groups; the kernel lists them sorted, so 50070 is past the 64th
	rfs_native "mkdir d; chown 0:50070 d; chmod 2770 d; : > g; chown $RFS_UID:50070 g; chmod 644 g
		: > h; chown $RFS_UID:50070 h; chmod 2644 h"
	RFS_USER_GROUPS=$(seq -s, 50001 50070) rfs_both_user ': > d/f; echo f >> d/f; stat -c "%n %a %g" d/f
		chmod 2755 g; stat -c "%n %a" g; echo x >> h; stat -c "%n %a" h'
	rfs_assert_same_tree
}

# chown/chgrp by the owner (no CAP_FSETID) clears setuid and setgid of a
# file like native, whatever the group; directories keep setgid.
case_chown_by_owner_clears_setuid_setgid() {
	# c*: in the file's group; x*: outside it (a group root gave the file)
	rfs_native "for m in 6755 2755 2745 2705 4711 0755; do : > c\$m; : > o\$m; : > x\$m; : > y\$m
			chown $RFS_UID:$RFS_GID c\$m o\$m; chown $RFS_UID:4444 x\$m y\$m; chmod \$m c\$m o\$m x\$m y\$m; done
		mkdir d; chown $RFS_UID:$RFS_GID d; chmod 2775 d"
	RFS_USER_GROUPS=4343 rfs_both_user 'for m in 6755 2755 2745 2705 4711 0755; do chgrp 4343 c$m x$m; chown '"$RFS_UID"' o$m y$m; done
		chgrp 4343 d; stat -c "%n %a %g" c* o* x* y* d'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- truncate

case_truncate_grow_and_shrink() {
	rfs_both 'cp "$DATA/r64k" f; for s in 5000 100000 0 4096 +100 -50 1 65537; do truncate -s $s f; stat -c %s f; sha256sum f; done'
	rfs_assert_same_tree
}

case_truncate_errors() {
	rfs_both 'mkdir d; : > f; truncate -c -s 10 nope; ls nope; truncate -s 10 d; truncate -s 10 nope/x; truncate -s 10 f/x'
	rfs_assert_same_tree
}

case_ftruncate_on_open_fd() {
	rfs_both 'cp "$DATA/r10k" f; "$RFS_PY" -c "
import os
fd = os.open(\"f\", os.O_RDWR)
os.ftruncate(fd, 123); print(os.fstat(fd).st_size)
os.ftruncate(fd, 70000); print(os.fstat(fd).st_size)
print(len(os.pread(fd, 100000, 0)))
"; sha256sum f'
	rfs_assert_same_tree
}

case_o_trunc_empties_file() {
	rfs_both 'cp "$DATA/r10k" f; fsops open f "WRONLY|TRUNC"; stat -c %s f; cp "$DATA/r10k" g; : > g; stat -c %s g; echo hi > g; cat g'
	rfs_assert_same_tree
}

# close(2) of a file on tmpfs or ext4 reports nothing natively, so relocfs
# opens their files with FOPEN_NOFLUSH (Linux 6.8 and later): a close is no
# round trip to the daemon. A second mount with -d logs every request.
case_close_sends_no_flush() {
	local mnt2=$BATS_TEST_TMPDIR/mnt-debug log k
	k=$(uname -r)
	k=${k%%-*}
	[ "$(printf '%s\n6.8\n' "$k" | sort -V | head -n 1)" = 6.8 ] ||
		skip "Linux $k: unique mount IDs (6.8) are needed to tell which mount a file is on"
	cp -- "$DATA/r10k" "$SRC/old"
	rfs_mount "$SRC" "$mnt2" -d
	log=$RFS_LOG
	"$RFS_PY" -c '
import os, sys
d = sys.argv[1]
fd = os.open(d + "/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"new file\n")
os.close(fd)
fd = os.open(d + "/old", os.O_RDWR)
os.pwrite(fd, b"changed", 0)
os.close(fd)
with open(d + "/old", "rb") as f:
    f.read()' "$mnt2"
	rfs_umount "$mnt2"
	grep -q "opcode: CREATE" -- "$log" || fail "the -d log shows no CREATE request: $(tail -n 20 -- "$log")"
	grep -q "opcode: RELEASE" -- "$log" || fail "the -d log shows no RELEASE request: $(tail -n 20 -- "$log")"
	run grep -c "opcode: FLUSH" -- "$log"
	assert_output 0
	assert_equal "$(cat -- "$SRC/new")" "new file"
	assert_equal "$(head -c 7 -- "$SRC/old")" changed
	cmp -s <(tail -c +8 -- "$SRC/old") <(tail -c +8 -- "$DATA/r10k") || fail "the rest of old changed"
}

# ---------------------------------------------------------------- utimens

case_touch_sets_explicit_times() {
	rfs_both ': > f; touch -d "2001-02-03 04:05:06.123456789" f; stat -c "%x|%y" f
		touch -a -d "1999-12-31 23:59:59.5" f; stat -c "%x|%y" f
		touch -m -d "2038-01-19 03:14:08" f; stat -c "%x|%y" f
		touch -d "1960-06-01" f; stat -c "%X %Y" f
		touch -d "2200-01-01" f; stat -c "%X %Y" f
		mkdir d; touch -d "2002-02-02" d; stat -c "%X %Y" d'
	rfs_assert_same_tree
}

case_touch_a_now_omits_mtime() {
	rfs_both ': > f; touch -d "2001-01-01" f; t0=$(date +%s); touch -a f; echo mtime $(stat -c %Y f); [ $(stat -c %X f) -ge $t0 ] && echo atime-is-now'
	assert_output --partial atime-is-now
}

case_touch_m_now_omits_atime() {
	rfs_both ': > f; touch -d "2001-01-01" f; t0=$(date +%s); touch -m f; echo atime $(stat -c %X f); [ $(stat -c %Y f) -ge $t0 ] && echo mtime-is-now'
	assert_output --partial mtime-is-now
}

case_utimensat_exact_nanoseconds() {
	rfs_both ': > f; fsops utime_ns f 1 999999999; fsops utime_ns f -1000000001 1234567890123456789; ln -s f l; fsops utime_ns l 5 6; stat -c "%n %X %Y" f'
	rfs_assert_same_tree
}

case_touch_h_sets_symlink_times_only() {
	rfs_both ': > t; touch -d "2001-01-01" t; ln -s t l; touch -h -d "2010-05-05" l; stat -c "%n %Y" t l'
	rfs_assert_same_tree
}

case_write_updates_mtime_and_ctime() {
	rfs_both ': > f; touch -d "2001-01-01" f; echo x >> f; [ $(stat -c %Y f) -gt 978307200 ] && echo mtime-updated; [ $(stat -c %Z f) -gt 978307200 ] && echo ctime-updated'
	assert_output "mtime-updated
ctime-updated"
}

# ---------------------------------------------------------------- readdir

case_readdir_many_entries() {
	rfs_both 'mkdir d; touch d/file_{1..1500}; mkdir d/sub; ln -s x d/lnk; mkfifo d/fifo
		ls -A d | sha256sum; ls -A d | wc -l; ls -la --time-style=+ d | grep -v " file_"; ls -la --time-style=+ d | grep " file_" | sha256sum; find d | wc -l'
	rfs_assert_same_tree
}

case_readdir_long_names() {
	rfs_both 'mkdir d; for i in $(seq 100 399); do : > "d/$(printf "%0250d" $i)"; done; ls d | wc -l; ls d | sha256sum'
	rfs_assert_same_tree
}

case_readdir_types_and_d_ino() {
	rfs_both 'mkdir d d/sub; : > d/f; ln -s f d/l; mkfifo d/p; fsops bindsock d/s; fsops scandir d'
}

case_readdir_order_and_d_ino_match_backing() {
	rfs_native 'mkdir a; for i in $(seq 1 200); do : > a/f$i; done; mkdir a/sub; ln -s f1 a/l'
	assert_equal "$(ls -1U -- "$MNT/a")" "$(ls -1U -- "$SRC/a")"
	assert_equal "$(fsops dino "$MNT/a")" "$(fsops dino "$SRC/a")"
}

case_readdir_empty_dir() {
	rfs_both 'mkdir e; ls -a e; "$RFS_PY" -c "import os; print(os.listdir(\"e\"))"; ls -A e | wc -l'
}

case_readdir_after_changes() {
	rfs_both 'mkdir d; touch d/{a,b,c}; ls d; rm d/b; ls d; touch d/e; mv d/a d/z; ls d'
}

# ---------------------------------------------------------------- open, create, read, write

case_create_mode_respects_umask() {
	rfs_both 'umask 027; : > f; mkdir d; fsops open g "WRONLY|CREAT" 4777; umask 0; fsops open h "WRONLY|CREAT" 666; mkdir e; stat -c "%n %a" f d g h e'
	rfs_assert_same_tree
}

# Beneath a default ACL the umask does not apply (the ACL gives the mode);
# elsewhere it does. As root and as a user, for files, directories, FIFOs.
case_create_mode_default_acl_ignores_umask() {
	rfs_native "for d in a ua; do mkdir \$d; setfacl -d -m u::rwx,g::rwx,o::rwx,u:4242:rwx \$d; done
		mkdir n un; chown $RFS_UID ua un"
	local script='for m in 077 022 0; do umask $m
		for d in $A $N; do : > $d/f$m; mkdir $d/d$m; mkfifo $d/p$m; fsops open $d/g$m "WRONLY|CREAT" 4777 >/dev/null
			stat -c "%n %a" $d/f$m $d/d$m $d/p$m $d/g$m; done; done; getfacl -n $A/f022 $A/d077 $N/f022'
	rfs_both "A=a N=n; $script"
	rfs_both_user "A=ua N=un; $script"
	rfs_assert_same_tree
}

case_open_o_excl() {
	rfs_both ': > f; fsops excl f; fsops excl g; ls; ln -s nowhere dl; fsops excl dl; ls nowhere; set -o noclobber; echo x > f'
	rfs_assert_same_tree
}

case_open_flag_errors() {
	rfs_both 'mkdir d; : > f; ln -s f l
		fsops open l "RDONLY|NOFOLLOW"; fsops open f "RDONLY|DIRECTORY"; fsops open d WRONLY
		fsops open nope RDONLY; fsops open d/nope/x "WRONLY|CREAT"; fsops open f/x "WRONLY|CREAT"
		echo x > d; fsops open l "RDONLY"; fsops open d "RDONLY|DIRECTORY"'
	rfs_assert_same_tree
}

case_o_direct_write_and_read() {
	rfs_both 'dd if="$DATA/r1m" of=f bs=4096 oflag=direct status=none; echo rc=$?
		dd if=f bs=65536 iflag=direct status=none | sha256sum; sha256sum f; stat -c %s f
		dd if="$DATA/r64k" of=f bs=4096 seek=3 count=4 oflag=direct conv=notrunc status=none; sha256sum f
		dd if=f bs=8192 skip=1 count=3 iflag=direct status=none | sha256sum'
	rfs_assert_same_tree
}

case_o_direct_and_buffered_io_are_coherent() {
	rfs_both 'cp "$DATA/r64k" f; dd if=f bs=4096 iflag=direct status=none | sha256sum
		dd if="$DATA/r1m" of=f bs=4096 count=2 seek=1 oflag=direct conv=notrunc status=none; sha256sum f
		head -c 8192 "$DATA/r10k" | dd of=f bs=8192 seek=2 conv=notrunc status=none; dd if=f bs=4096 iflag=direct status=none | sha256sum'
	rfs_assert_same_tree
}

# O_DIRECT opens get FOPEN_DIRECT_IO and parallel writes where the kernel
# allows it and no other handle uses the page cache (relocfs(8)): a cached
# descriptor beside an O_DIRECT one, an O_DIRECT descriptor alone with a
# shared mapping and a buffered descriptor opened beside it, and 16 threads
# writing their own blocks at once, all as natively.
case_o_direct_beside_cache_mappings_and_parallel_writers() {
	rfs_both 'fsops dio_mix f; sha256sum f'
	rfs_assert_same_tree
}

case_o_append() {
	rfs_both 'printf 123 > f; echo abc >> f; fsops append_pwrite f XY; cat f; echo; for i in 1 2 3; do echo line$i >> f; done; sha256sum f'
	rfs_assert_same_tree
}

case_o_sync_and_o_dsync_writes() {
	rfs_both 'dd if="$DATA/r64k" of=f bs=4096 oflag=sync status=none; dd if="$DATA/r10k" of=f bs=1000 seek=7 oflag=dsync conv=notrunc status=none
		sha256sum f; stat -c %s f; fsops open f "WRONLY|SYNC"; fsops open f "WRONLY|DSYNC"; fsops open g "WRONLY|CREAT|SYNC|DSYNC"'
	rfs_assert_same_tree
}

case_write_read_5m() {
	rfs_both 'cp "$DATA/r5m" f; sha256sum f; cat f | sha256sum; stat -c %s f'
	cmp -- "$DATA/r5m" "$MNT/f"
	cmp -- "$DATA/r5m" "$SRC/f"
	rfs_assert_same_tree
}

case_write_read_odd_block_sizes() {
	rfs_both 'cp "$DATA/r64k" f; dd if="$DATA/r10k" of=f bs=4097 seek=3 conv=notrunc status=none
		dd if="$DATA/r10k" of=f bs=1 count=13 seek=70000 conv=notrunc status=none; stat -c %s f; sha256sum f
		dd if=f bs=333 skip=5 count=7 status=none | sha256sum'
	rfs_assert_same_tree
}

case_read_at_and_past_eof() {
	rfs_both 'printf 12345 > f; fsops pread f 3 100; fsops pread f 5 10; fsops pread f 1000 10; : > e; fsops pread e 0 10'
}

case_write_beyond_4gib() {
	rfs_both 'fsops pwrite f 5368709120 tail; stat -c %s f; fsops pread f 5368709118 10; fsops pread f 4096 8; rm f'
}

case_single_1mib_write() {
	rfs_both 'fsops bigwrite f 1048576; stat -c %s f; sha256sum f'
	rfs_assert_same_tree
}

case_boundary_file_sizes() {
	rfs_both 'for n in 0 1 4095 4096 4097 65535 65536 131073; do head -c $n "$DATA/r1m" > f$n; done; sha256sum f*; stat -c "%n %s" f*'
	rfs_assert_same_tree
}

case_write_visible_to_other_fd() {
	rfs_both 'exec 5>f; echo one >&5; cat f; echo two >&5; cat f; exec 5>&-; cat f'
	rfs_assert_same_tree
}

case_fsync_fdatasync_syncfs() {
	rfs_both 'echo data > f; mkdir d; fsops sync f fsync; fsops sync f fdatasync; fsops sync d dir
		sync f; echo rc=$?; sync -d f; echo rc=$?; sync -f f; echo rc=$?
		dd if="$DATA/r64k" of=g conv=fsync status=none; echo rc=$?; dd if="$DATA/r64k" of=h conv=fdatasync status=none; echo rc=$?
		sha256sum g h'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- rename

case_rename_file_keeps_inode_and_data() {
	rfs_both 'mkdir w; cd w; cp "$DATA/r10k" a; mkdir d; i=$(stat -c %i a); mv a b; [ $(stat -c %i b) = $i ] && echo same-ino
		mv b d/c; [ $(stat -c %i d/c) = $i ] && echo same-ino; sha256sum d/c; ls -R'
	rfs_assert_same_tree
}

# Top-level entries are "homes" to relocfs; with nothing relocating they all
# live on SOURCE, so moving entries between the top level and a top-level
# directory must behave as natively (no EXDEV, same inode).
case_rename_between_top_level_and_subdir() {
	rfs_both 'echo x > a; mkdir d e; i=$(stat -c %i a); fsops rename a d/a; fsops rename e d/e; fsops rename d/a a2
		fsops renameat2 d/e e2 noreplace; [ "$(stat -c %i a2)" = "$i" ] && echo same-ino; ls -R'
	rfs_assert_same_tree
}

case_rename_replaces_existing_file() {
	rfs_both 'echo old > t; echo new > s; ln t t2; mv -f s t; cat t; cat t2; stat -c "%n %h" t t2; ls'
	rfs_assert_same_tree
}

case_rename_directories() {
	rfs_both 'mkdir -p a/x e n/y; touch a/x/f; fsops rename a b; ls -R b; fsops rename b e; ls -R e
		fsops rename e n; fsops rename e/x e/x/sub; fsops rename nope z; stat -c "%n %h" e n e/x .'
	rfs_assert_same_tree
}

case_rename_type_mismatch_errors() {
	rfs_both 'mkdir d; : > f; mkdir -p full/x; fsops rename f d; fsops rename d f; fsops rename f f; fsops rename d full; fsops rename d d/sub; ls'
	rfs_assert_same_tree
}

case_rename_between_hardlinks_is_noop() {
	rfs_both ': > a; ln a b; fsops rename a b; ls; stat -c "%n %h" a b'
	rfs_assert_same_tree
}

case_rename_noreplace() {
	rfs_both 'echo 1 > a; echo 2 > b; mkdir d; fsops renameat2 a b noreplace; cat a b; fsops renameat2 a d noreplace; fsops renameat2 a c noreplace; ls; cat c'
	rfs_assert_same_tree
}

# A whiteout (Linux 5.8 and later let any user make one) belongs to the
# caller, and takes the group of a setgid directory, as any new object.
case_rename_whiteout_owner() {
	rfs_native "mkdir w s; chown $RFS_UID:$RFS_GID w; chown $RFS_UID:4343 s; chmod 2777 s
		for d in w s; do echo 1 > \$d/a; echo 2 > \$d/c; chown $RFS_UID:$RFS_GID \$d/a \$d/c; done"
	local show='stat -c "%n %F %u:%g %t:%T %a" w/* s/*'
	rfs_both_user "fsops renameat2 w/a w/b whiteout; fsops renameat2 s/a s/b whiteout; $show"
	rfs_both "fsops renameat2 w/c w/e whiteout; fsops renameat2 s/c s/e whiteout; $show"
	rfs_assert_same_tree
}

case_rename_exchange() {
	rfs_both 'echo file > f; mkdir d; echo in > d/x; i=$(stat -c %i f); j=$(stat -c %i d)
		fsops renameat2 f d exchange; stat -c "%n %F" f d; cat d; cat f/x
		[ "$(stat -c %i d)" = "$i" ] && [ "$(stat -c %i f)" = "$j" ] && echo inodes-swapped
		fsops renameat2 f nope exchange; echo a > a; echo b > b; fsops renameat2 a b exchange; cat a b'
	rfs_assert_same_tree
}

case_rename_open_file_keeps_fd() {
	rfs_both 'cp "$DATA/r10k" a; fsops fstat_after_rename a b; ls'
	rfs_assert_same_tree
}

case_rename_over_open_file() {
	rfs_both 'echo old > t; echo new > s; fsops replaced_open t s; ls'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- unlink, mkdir, rmdir

case_unlink_errors() {
	rfs_both ': > f; mkdir d; fsops unlink f; ls; fsops unlink f; fsops unlink d; rm d; rm -f nope; echo rc=$?; fsops unlink d/nope; : > g; fsops unlink g/x'
	rfs_assert_same_tree
}

case_rm_rf_tree() {
	rfs_both 'mkdir -p t/a/b/c; touch t/a/f{1..100} t/a/b/c/g; ln -s x t/l; mkfifo t/p; rm -rf t; echo rc=$?; ls -A'
	rfs_assert_same_tree
}

case_mkdir_modes_and_errors() {
	rfs_both 'mkdir d; mkdir d; mkdir -m 0750 m; mkdir -p a/b/c; : > f; mkdir f/x; mkdir nope/x; mkdir -m 1777 s; stat -c "%n %a %h" d m a a/b a/b/c s .'
	rfs_assert_same_tree
}

case_rmdir_errors_and_link_counts() {
	rfs_both 'mkdir -p d/sub e; : > f; stat -c "%n %h" d .; rmdir d; rmdir nope; rmdir f; rmdir d/sub; rmdir e; stat -c "%n %h" d .; fsops rmdir d/.; fsops rmdir .; fsops rmdir d/..'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- symlinks

case_symlink_and_readlink() {
	rfs_both 'ln -s target l1; ln -s ../up/x l2; ln -s /etc abs; ln -s "$(printf "%0250d" 0)/$(printf "%0250d" 1)" long
		readlink l1 l2 abs; readlink long | wc -c; stat -c "%n %F %s" l1 l2 abs long; cat l1; ln -s x l1
		fsops readlink .; : > f; fsops readlink f; fsops readlink nope'
	rfs_assert_same_tree
}

case_symlink_loops_and_max_length() {
	rfs_both 'ln -s loop1 loop2; ln -s loop2 loop1; cat loop1; t=$(head -c 4095 /dev/zero | tr "\0" a); ln -s "$t" max; readlink max | wc -c; ln -s "${t}b" over; ls'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- hard links

case_hardlink_shares_inode_and_counts() {
	rfs_both 'echo data > a; ln a b; mkdir d; ln a d/c; stat -c "%n %h" a b d/c
		[ "$(stat -c %i a)" = "$(stat -c %i b)" ] && echo same-ino; echo more >> b; cat a
		rm a; stat -c "%n %h" b d/c; cat d/c'
	rfs_assert_same_tree
}

case_hardlink_errors() {
	rfs_both 'mkdir d; : > a; : > b; fsops link d e; fsops link a b; fsops link nope x; fsops link a nope/x; fsops link a d/; ls'
	rfs_assert_same_tree
}

case_hardlink_to_symlink() {
	rfs_both 'ln -s target s; ln -P s s2; stat -c "%n %h %F" s s2; readlink s2'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- special files

case_mkfifo_and_data_through_it() {
	rfs_both 'mkfifo -m 0640 p; stat -c "%n %F %a" p; mkfifo p; (echo hello-fifo > p &); timeout 10 cat p'
	rfs_assert_same_tree
}

case_mknod_devices() {
	rfs_both 'mknod -m 600 c c 1 3; stat -c "%n %F %a %t %T" c; mknod b b 7 0; stat -c "%n %F %t %T" b; mknod c c 1 3'
	rfs_assert_same_tree
}

case_unix_socket_bind() {
	rfs_both 'fsops bindsock s; stat -c "%n %F" s; fsops bindsock s'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- statfs

case_statfs_matches_backing_fs() {
	local fmt='%b %S %s %c %l'
	assert_equal "$(stat -f -c "$fmt" -- "$MNT")" "$(stat -f -c "$fmt" -- "$SRC")"
	assert_equal "$(stat -f -c "$fmt" -- "$MNT")" "$(stat -f -c "$fmt" -- "$REF")"
}

case_statfs_free_space_follows_writes() {
	local fmt='%f %a %d' before after
	sync
	before=$(stat -f -c "$fmt" -- "$MNT")
	assert_equal "$before" "$(stat -f -c "$fmt" -- "$SRC")"
	dd if=/dev/zero of="$MNT/big" bs=1M count=16 conv=fsync status=none
	sync
	after=$(stat -f -c "$fmt" -- "$MNT")
	assert_equal "$after" "$(stat -f -c "$fmt" -- "$SRC")"
	[ "${after%% *}" -lt "${before%% *}" ] || fail "free blocks did not drop: before '$before' after '$after'"
}

# ---------------------------------------------------------------- xattrs

case_xattr_set_get_list_remove() {
	rfs_both ': > f; setfattr -n user.a -v hello f; setfattr -n user.b -v 0x00ff10 f; setfattr -n user.empty f
		getfattr -d -e hex f; getfattr -n user.a --only-values f; echo
		setfattr -x user.a f; getfattr -d f; getfattr -n user.a f; setfattr -x user.nope f; fsops listxattr f'
	rfs_assert_same_tree
}

case_xattr_create_and_replace_flags() {
	rfs_both ': > f; fsops setxattr f user.x 1 create; fsops setxattr f user.x 2 create; fsops setxattr f user.y 1 replace
		fsops setxattr f user.x 3 replace; fsops getxattr f user.x; fsops getxattr f user.y'
	rfs_assert_same_tree
}

case_xattr_many_and_large_values() {
	rfs_both ': > f; for i in $(seq 1 40); do setfattr -n user.attr_number_$i -v value$i f; done; fsops listxattr f
		fsops setxattr_size f user.big 3000; fsops getxattr f user.big; getfattr -n user.attr_number_7 --only-values f'
	rfs_assert_same_tree
}

case_xattr_on_directory() {
	rfs_both 'mkdir d; setfattr -n user.d -v dv d; getfattr -n user.d d; fsops listxattr d; setfattr -x user.d d; fsops listxattr d'
	rfs_assert_same_tree
}

case_xattr_user_on_symlink_not_permitted() {
	rfs_both ': > t; ln -s t l; setfattr -h -n user.x -v 1 l; getfattr -h -d l; fsops listxattr l nofollow; getfattr -d t; setfattr -n user.viafollow -v 2 l; getfattr -d t'
	rfs_assert_same_tree
}

case_xattr_trusted_namespace_as_root() {
	rfs_both ': > f; setfattr -n trusted.t -v tv f; getfattr -m trusted -d f; setfattr -x trusted.t f; getfattr -m trusted -d f'
}

# Setting an access ACL drops setgid when the owner is outside the file's
# group, as chmod does (posix_acl_update_mode).
case_acl_set_by_owner_outside_group_drops_setgid() {
	rfs_native ": > f; : > g; chown $RFS_UID:4343 f; chown $RFS_UID:$RFS_GID g; chmod 2775 f g"
	rfs_both_user 'setfacl -m u:4242:r f; setfacl -m u:4242:rw g; stat -c "%n %a" f g; getfacl -n f g'
	rfs_assert_same_tree
}

# trusted.* names are listed only to CAP_SYS_ADMIN; the size probe agrees
# with the list, a buffer that fits all but trusted.* suffices for a user.
case_xattr_trusted_hidden_from_users_in_list() {
	rfs_native ": > f; setfattr -n trusted.t -v 1 f; setfattr -n trusted.longer_name -v 2 f
		setfattr -n user.u -v 3 f; setfattr -n security.s -v 4 f; chmod 644 f"
	# user.u and security.s: 18 bytes; with trusted.*: 48
	rfs_both_user 'fsops listxattr f; fsops listxattr_len f; fsops listxattr_len f 18; fsops listxattr_len f 17; getfattr -d -m - f'
	assert_equal "$(printf '%s\n' "${lines[@]:0:4}")" "$(printf '%s\n' security.s user.u count=2 18)"
	rfs_both 'fsops listxattr f; fsops listxattr_len f; fsops listxattr_len f 48; fsops listxattr_len f 47'
	assert_equal "${lines[5]} ${lines[6]} ${lines[7]}" "48 48 ERR ERANGE Numerical result out of range"
}

# root sets, lists, reads and removes trusted.* and security.* on a symlink
# itself; the target is untouched.
case_xattr_trusted_security_on_symlink_as_root() {
	rfs_both ': > t; ln -s t l; setfattr -h -n trusted.t -v tv l; setfattr -h -n security.s -v sv l
		getfattr -h -m - -d l; fsops listxattr l nofollow; getfattr -h -n trusted.t --only-values l; echo
		setfattr -h -x trusted.t l; getfattr -h -m - -d l; getfattr -m - -d t; fsops listxattr t'
	rfs_assert_same_tree
}

case_xattr_errors_on_missing_file() {
	rfs_both ': > f; fsops listxattr f; getfattr -n user.a nope; setfattr -n user.a -v 1 nope; fsops getxattr f user.none'
}

# ---------------------------------------------------------------- fallocate, sparse files

case_fallocate_allocates() {
	rfs_both 'fallocate -l 1M f; stat -c "%s %b" f; sha256sum f; fallocate -o 1M -l 1M f; stat -c "%s %b" f'
	rfs_assert_blocks_match f
	rfs_assert_same_tree
}

case_fallocate_keep_size() {
	rfs_both 'head -c 10000 "$DATA/r64k" > f; fallocate -n -l 2M f; stat -c "%s %b" f; sha256sum f'
	rfs_assert_blocks_match f
	rfs_assert_same_tree
}

case_fallocate_punch_hole() {
	rfs_both 'cp "$DATA/r64k" f; fallocate -p -o 4096 -l 16384 f; stat -c "%s %b" f; sha256sum f; fsops seekmap f'
	rfs_assert_blocks_match f
	rfs_assert_same_tree
}

case_fallocate_zero_range() {
	rfs_both 'cp "$DATA/r64k" f; fallocate -z -o 8192 -l 8192 f; echo rc=$?; stat -c %s f; sha256sum f'
	rfs_assert_same_tree
}

case_seek_data_and_hole() {
	rfs_both 'truncate -s 8M f; fsops pwrite f 1048576 "$(head -c 4096 /dev/zero | tr "\0" x)"; fsops pwrite f 6291456 abc
		fsops seekmap f; fsops seek f 8388608 data; fsops seek f 7000000 data; fsops seek f 0 hole; fsops seek f 0 data'
	rfs_assert_blocks_match f
	rfs_assert_same_tree
}

_make_sparse() { # in the current dir: 16 MiB with 4 KiB of data at 2 MiB and 12 MiB
	truncate -s 16M s
	dd if="$DATA/r64k" of=s bs=4096 count=1 seek=512 conv=notrunc status=none
	dd if="$DATA/r64k" of=s bs=4096 count=1 seek=3072 conv=notrunc status=none
}

case_cp_sparse_from_mount_stays_sparse() {
	export -f _make_sparse
	rfs_native _make_sparse
	sync
	rfs_assert_blocks_match s
	cp --sparse=always -- "$MNT/s" "$OUT/from_mount"
	cp --sparse=always -- "$REF/s" "$OUT/from_native"
	cmp -- "$OUT/from_mount" "$OUT/from_native"
	sync
	assert_equal "$(stat -c %b -- "$OUT/from_mount")" "$(stat -c %b -- "$OUT/from_native")"
	[ "$(stat -c %b -- "$OUT/from_mount")" -lt 1024 ] || fail "copy from the mount is not sparse: $(stat -c %b -- "$OUT/from_mount") blocks"
}

case_cp_sparse_into_mount_stays_sparse() {
	( cd "$OUT" && _make_sparse )
	rfs_both 'cp --sparse=always "$OUT/s" t; stat -c %s t; sha256sum t; fsops seekmap t'
	sync
	rfs_assert_blocks_match t
	[ "$(stat -c %b -- "$MNT/t")" -lt 1024 ] || fail "file copied into the mount is not sparse"
}

case_copy_file_range_whole_file() {
	rfs_both 'cp "$DATA/r1m" a; fsops cfr a b; cmp a b && echo same; sha256sum b'
	rfs_assert_same_tree
}

case_copy_file_range_offsets_and_errors() {
	rfs_both 'cp "$DATA/r64k" a; cp "$DATA/r10k" b; fsops cfr a b 1000 3000 5000; sha256sum b; stat -c %s b
		fsops cfr_once a b 70000 0 100; fsops cfr_once a a 0 100 1000; fsops cfr a c 100 20000 4000; stat -c %s c; sha256sum c; mkdir d; fsops cfr d e'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- locks

# _lock_probe DIR: holder takes an flock(2) on DIR/lk; report what -n probes get.
_flock_probe() {
	local d=$1 kind=$2 ready="$BATS_TEST_TMPDIR/ready.$RANDOM" res=""
	: >"$d/lk"
	rfs_bg bash -c 'exec 8<>"$1"; flock '"$kind"' 8 || exit 1; touch "$2"; exec sleep 300' _ "$d/lk" "$ready"
	local holder=$RFS_BG_PID
	rfs_wait_file "$ready"
	flock -n -x "$d/lk" true && res+="x:ok " || res+="x:busy "
	flock -n -s "$d/lk" true && res+="s:ok " || res+="s:busy "
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	flock -n -x "$d/lk" true && res+="after:ok" || res+="after:busy"
	echo "$res"
}

case_flock_exclusive_conflict() {
	local native mount
	native=$(_flock_probe "$REF" -x)
	mount=$(_flock_probe "$MNT" -x)
	assert_equal "$native" "x:busy s:busy after:ok"
	assert_equal "$mount" "$native"
}

case_flock_shared_locks_coexist() {
	local native mount
	native=$(_flock_probe "$REF" -s)
	mount=$(_flock_probe "$MNT" -s)
	assert_equal "$native" "x:busy s:ok after:ok"
	assert_equal "$mount" "$native"
}

_lockf_probe() {
	local d=$1 ready="$BATS_TEST_TMPDIR/ready.$RANDOM"
	: >"$d/lk"
	rfs_bg "$RFS_PY" "$RFS_FSOPS" lockf_hold "$d/lk" "$ready" 0 100 ex
	local holder=$RFS_BG_PID
	rfs_wait_file "$ready"
	( cd "$d" && fsops lockf_try lk 0 10 ex; fsops lockf_try lk 50 100 ex; fsops lockf_try lk 100 10 ex; fsops lockf_try lk 0 10 sh; fsops getlk lk "$holder" ) 2>&1 || true
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	( cd "$d" && fsops lockf_try lk 0 10 ex ) 2>&1 || true
}

case_fcntl_lock_conflict() {
	local native mount
	native=$(_lockf_probe "$REF")
	mount=$(_lockf_probe "$MNT")
	assert_equal "$native" "ERR EAGAIN Resource temporarily unavailable
ERR EAGAIN Resource temporarily unavailable
OK locked
ERR EAGAIN Resource temporarily unavailable
type F_WRLCK start 0 len 100 pid_is_holder True
OK locked"
	assert_equal "$mount" "$native"
}

# ---------------------------------------------------------------- unlinked but open

case_unlinked_open_file_keeps_working() {
	rfs_both 'fsops unlinked f; ls -A'
	rfs_assert_same_tree
}

case_unlinked_open_file_shell_fds() {
	rfs_both 'exec 3<>f; exec 4<f; rm f; echo hello >&3; cat <&4; ls -A; echo more >&3; cat <&4; exec 3>&- 4<&-; ls -A'
	rfs_assert_same_tree
	assert_equal "$(ls -A -- "$SRC")" ""
}

# ---------------------------------------------------------------- a non-root user (allow_other)

case_user_gets_eacces() {
	rfs_native 'echo secret > s; chmod 600 s; echo ro > r; chmod 644 r; mkdir -m 755 rd; mkdir -m 700 priv; touch priv/x; mkdir -m 711 xo; touch xo/v; mkdir -m 644 nox; touch nox/y'
	rfs_both_user 'cat s; cat r; echo x >> r; : > rd/new; ls priv; cat priv/x; ls xo; cat xo/v; echo rc=$?; stat -c %n nox/y; rm r; mkdir rd/d; ln -s x rd/l; mv r rd/; fsops open s RDONLY; fsops open r RDWR'
	rfs_assert_same_tree
}

case_user_gets_eperm_on_chmod_chown_utimes() {
	rfs_native 'echo x > f; chmod 666 f'
	rfs_both_user 'chmod 600 f; chown $RFS_UID f; chgrp $RFS_GID f; touch -d 2001-01-01 f; touch f; echo rc=$?; stat -c "%a %u %g" f; setfattr -n trusted.x -v 1 f'
	rfs_assert_same_tree
}

case_user_sticky_dir_protects_others_files() {
	rfs_native 'mkdir -m 1777 pub; echo x > pub/rootfile; chmod 666 pub/rootfile'
	rfs_both_user 'rm -f pub/rootfile; mv pub/rootfile pub/other; : > pub/mine; mv pub/mine pub/mine2; rm pub/mine2; echo rc=$?; ls pub'
	rfs_assert_same_tree
}

case_user_creates_files_owned_by_user() {
	rfs_native 'mkdir -m 1777 pub'
	rfs_both_user 'umask 022; echo hi > pub/f; mkdir pub/d; ln -s f pub/l; mkfifo pub/p; ln pub/f pub/h; stat -c "%n %u %g %a" pub/*'
	assert_equal "$(stat -c '%u:%g' -- "$SRC/pub/f" "$SRC/pub/d" "$SRC/pub/p" | sort -u)" "$RFS_UID:$RFS_GID"
	assert_equal "$(stat -c '%u:%g' -- "$SRC/pub/l")" "$RFS_UID:$RFS_GID"
	rfs_assert_same_tree
}

case_user_own_file_chmod_chown_utimes() {
	rfs_native 'mkdir -m 1777 pub'
	rfs_both_user ': > pub/f; chmod 604 pub/f; touch -d 2001-01-01 pub/f; stat -c "%a %Y" pub/f; chown 0 pub/f; chgrp 0 pub/f; setfattr -n user.u -v 1 pub/f; getfattr -d pub/f'
	rfs_assert_same_tree
}

case_user_write_clears_setuid_setgid() {
	rfs_native 'echo x > f; chmod 4777 f; echo y > g; chmod 2777 g; echo z > h; chmod 6666 h; echo k > k; chmod 2666 k'
	rfs_both_user 'echo more >> f; stat -c "%n %a" f; echo more >> g; stat -c "%n %a" g; truncate -s 1 h; stat -c "%n %a" h; echo more >> k; stat -c "%n %a" k'
	rfs_assert_same_tree
}

# Opening with O_TRUNC is a truncate: it drops the bits as a write does.
case_user_truncating_open_clears_setuid_setgid() {
	rfs_native 'echo x > f; chmod 4777 f; echo y > g; chmod 2777 g; echo z > h; chmod 6666 h; echo k > k; chmod 2666 k'
	rfs_both_user ': > f; : > g; : > h; : > k; stat -c "%n %a %s" f g h k'
	rfs_assert_same_tree
}

# fallocate and copy_file_range modify the file as a write does.
case_user_fallocate_copy_range_clear_setuid_setgid() {
	rfs_native 'echo x > a; chmod 6777 a; echo y > p; chmod 4777 p; echo z > c; chmod 6777 c; echo src > s; chmod 644 s'
	rfs_both_user 'fallocate -l 8192 a; fallocate -p -o 0 -l 1 p; python3 -c "import os; i = os.open(\"s\", os.O_RDONLY); o = os.open(\"c\", os.O_WRONLY); print(os.copy_file_range(i, o, 4, 0, 0))"; stat -c "%n %a %s" a p c'
	rfs_assert_same_tree
}

# root has CAP_FSETID: its writes and truncates keep the bits.
case_root_write_keeps_setuid_setgid() {
	rfs_native 'echo x > f; chmod 4777 f; echo y > g; chmod 2777 g; echo z > h; chmod 6666 h; echo k > k; chmod 2666 k'
	rfs_both 'echo more >> f; : > g; truncate -s 1 h; echo more >> k; stat -c "%n %a %s" f g h k'
	rfs_assert_same_tree
}

# A file capability does not survive a write, by root or a user, nor a
# truncate; relocfs's kernel cache of "nothing to drop" must not hide one
# set later.
case_write_drops_file_capability() {
	rfs_native 'for f in r u t; do echo x > $f; chmod 666 $f; done'
	rfs_both 'cap=0sAQAAAgAEAAAAAAAAAAAAAAAAAAA=; for f in r u t; do echo y >> $f; setfattr -n security.capability -v $cap $f; getfattr -n security.capability --only-values $f | od -An -tx1; done; echo z >> r; truncate -s 1 t; for f in r t; do getfattr -n security.capability $f 2>&1 | sed "s/.*: //"; done'
	rfs_both_user 'echo z >> u; getfattr -n security.capability u 2>&1 | sed "s/.*: //"'
	rfs_assert_same_tree
}

case_user_setgid_dir_and_umask() {
	rfs_native 'mkdir -m 2777 sg; chgrp 4343 sg; chmod 2777 sg'
	rfs_both_user 'umask 002; : > sg/f; mkdir sg/d; fsops open sg/g "WRONLY|CREAT" 2755; stat -c "%n %a %u %g" sg/f sg/d sg/g'
	rfs_assert_same_tree
}

case_user_access_checks() {
	rfs_native 'echo x > r; chmod 444 r; echo y > w; chmod 666 w; mkdir -m 0 none; mkdir -m 0711 xo; echo z > ox; chmod 001 ox'
	rfs_both_user 'for f in r w none xo ox; do test -r $f && echo $f:r; test -w $f && echo $f:w; test -x $f && echo $f:x; done; ./ox'
}

case_root_setgid_dir_inherits_group() {
	rfs_both 'mkdir sg; chgrp 4343 sg; chmod 2775 sg; : > sg/f; mkdir sg/d; mkfifo sg/p; ln -s f sg/l; stat -c "%n %a %g" sg/f sg/d sg/p; stat -c "%n %g" sg/l; mkdir sg/d/e; stat -c "%n %a %g" sg/d/e'
	rfs_assert_same_tree
}

# ---------------------------------------------------------------- symlinks never followed by relocfs itself

case_symlink_to_etc_shows_as_symlink() {
	ln -s /etc "$SRC/etc_link"
	assert_equal "$(readlink -- "$MNT/etc_link")" /etc
	assert_equal "$(stat -c %F -- "$MNT/etc_link")" "symbolic link"
	assert_equal "$(stat -c %i -- "$MNT/etc_link")" "$(stat -c %i -- "$SRC/etc_link")"
	assert_equal "$(stat -c %s -- "$MNT/etc_link")" 4
	assert_equal "$(fsops scandir "$MNT" | grep etc_link)" "etc_link lnk ino_ok=True"
}

case_ops_on_symlink_to_outside_change_only_the_link() {
	local out="$BASE/outside"
	mkdir -p -- "$out"
	echo victim >"$out/victim"
	touch -d "2001-01-01" -- "$out/victim"
	ln -s -- "$out/victim" "$SRC/l"
	local before
	before=$(stat -c '%u %g %a %Y %i' -- "$out/victim")
	chown -h 4242:4343 -- "$MNT/l"
	touch -h -d "2010-01-01" -- "$MNT/l"
	run setfattr -h -n user.x -v 1 -- "$MNT/l"
	assert_failure
	assert_output --partial "Operation not permitted"
	assert_equal "$(stat -c '%u %g %a %Y %i' -- "$out/victim")" "$before"
	assert_equal "$(getfattr -d -- "$out/victim")" ""
	assert_equal "$(stat -c '%u %g %Y' -- "$SRC/l")" "4242 4343 1262304000"
	assert_equal "$(stat -c '%u %g %Y' -- "$MNT/l")" "4242 4343 1262304000"
}

case_dir_swapped_for_symlink_in_backing_does_not_escape() {
	local out="$BASE/outside"
	mkdir -p -- "$out" "$SRC/d"
	stat -- "$MNT/d" >/dev/null
	mv -- "$SRC/d" "$SRC/d.old"
	ln -s -- "$out" "$SRC/d"
	touch -- "$MNT/d/x" 2>/dev/null || true
	mkdir -- "$MNT/d/y" 2>/dev/null || true
	ln -s target "$MNT/d/z" 2>/dev/null || true
	mkfifo -- "$MNT/d/p" 2>/dev/null || true
	assert_equal "$(ls -A -- "$out")" ""
}
