#!/usr/bin/env bats
# The core POSIX operations again, on a loop-mounted ext4 image instead of
# tmpfs: real block allocation, real O_DIRECT alignment, extents and holes at
# block granularity (see lib/posix_cases.bash).

load lib/posix_cases

setup_file() { posix_setup_file_ext4; }
teardown_file() { posix_teardown_file; }
setup() { posix_setup; }
teardown() { posix_teardown; }

@test "ext4: stat through the mount equals stat of the backing files (type, size, mode, owner, nlink, ino, blocks, times)" {
	case_stat_of_native_files_matches_backing
}

@test "ext4: lookup of missing names gives the native ENOENT/ENOTDIR messages" {
	case_stat_missing_gives_same_errors
}

@test "ext4: st_ino through the mount equals st_ino of every backing file" {
	case_ino_matches_backing
}

@test "ext4: st_ino stays the same after the kernel forgets the inodes (drop_caches)" {
	case_ino_stable_after_cache_drop
}

@test "ext4: st_ino is unchanged by rename within and across directories" {
	case_ino_stable_across_rename
}

@test "ext4: chmod of a file to each mode incl. setuid/setgid/sticky gives the native mode" {
	case_chmod_file_modes
}

@test "ext4: chmod of a directory to each mode incl. setgid/sticky gives the native mode" {
	case_chmod_dir_modes
}

@test "ext4: chown/chgrp of files and chown -R of a tree set the native owners" {
	case_chown_owner_and_group
}

@test "ext4: chown clears setuid/setgid of files like native, keeps setgid of directories" {
	case_chown_clears_setuid_setgid
}

@test "ext4: chown/chgrp by the owner clears setuid/setgid of files like native, keeps setgid of directories" {
	case_chown_by_owner_clears_setuid_setgid
}

@test "ext4: a user in more than 64 groups keeps all of them: creates in a group-only setgid dir, chmod g+s and writes keep setgid" {
	case_user_in_more_than_64_groups
}

@test "ext4: truncate grow/shrink gives native sizes and contents" {
	case_truncate_grow_and_shrink
}

@test "ext4: touch -d / -a -d / -m -d set exact ns times, also pre-1970 and post-2038" {
	case_touch_sets_explicit_times
}

@test "ext4: touch -a (UTIME_NOW atime, UTIME_OMIT mtime) keeps the mtime" {
	case_touch_a_now_omits_mtime
}

@test "ext4: a write through the mount updates mtime and ctime" {
	case_write_updates_mtime_and_ctime
}

@test "ext4: readdir of 1500 entries lists the same names, types and attributes as native" {
	case_readdir_many_entries
}

@test "ext4: readdir order and d_ino through the mount equal the backing directory's" {
	case_readdir_order_and_d_ino_match_backing
}

@test "ext4: create/mkdir modes follow the umask like native (incl. setuid create mode)" {
	case_create_mode_respects_umask
}

@test "ext4: create/mkdir/mkfifo beneath a default ACL ignore the umask like native, elsewhere apply it (root and user)" {
	case_create_mode_default_acl_ignores_umask
}

@test "ext4: open errors (O_NOFOLLOW ELOOP, O_DIRECTORY ENOTDIR, EISDIR, ENOENT) match native" {
	case_open_flag_errors
}

@test "ext4: O_DIRECT writes and reads give the native contents" {
	case_o_direct_write_and_read
}

@test "ext4: O_DIRECT and buffered I/O on one file see each other's data" {
	case_o_direct_and_buffered_io_are_coherent
}

@test "ext4: O_DIRECT beside cached pages, a shared mapping and 16 parallel O_DIRECT writers gives the native results" {
	case_o_direct_beside_cache_mappings_and_parallel_writers
}

@test "ext4: O_APPEND writes (incl. pwrite at 0) append like native" {
	case_o_append
}

@test "ext4: a 5 MiB file written and read back is byte-identical" {
	case_write_read_5m
}

@test "ext4: pwrite beyond 4 GiB gives the native size and data" {
	case_write_beyond_4gib
}

@test "ext4: fsync, fdatasync, directory fsync and syncfs succeed" {
	case_fsync_fdatasync_syncfs
}

@test "ext4: rename of a file keeps its inode and data" {
	case_rename_file_keeps_inode_and_data
}

@test "ext4: rename between a top-level entry and a top-level directory works like native (same inode, no EXDEV)" {
	case_rename_between_top_level_and_subdir
}

@test "ext4: rename over an existing file replaces it and drops its link count" {
	case_rename_replaces_existing_file
}

@test "ext4: rename of directories, over an empty one, ENOTEMPTY, EINVAL into itself, ENOENT" {
	case_rename_directories
}

@test "ext4: rename file over dir (EISDIR) and dir over file (ENOTDIR) match native" {
	case_rename_type_mismatch_errors
}

@test "ext4: renameat2 RENAME_NOREPLACE fails with EEXIST on an existing target" {
	case_rename_noreplace
}

@test "ext4: renameat2 RENAME_EXCHANGE swaps a file and a directory atomically" {
	case_rename_exchange
}

@test "ext4: renameat2 RENAME_WHITEOUT by a user: the whiteout is the caller's (the setgid dir's group), like native" {
	case_rename_whiteout_owner
}

@test "ext4: an open fd keeps working after its file is renamed" {
	case_rename_open_file_keeps_fd
}

@test "ext4: unlink and its errors (ENOENT, EISDIR, ENOTDIR) match native" {
	case_unlink_errors
}

@test "ext4: rm -rf of a tree with files, links and fifos leaves nothing" {
	case_rm_rf_tree
}

@test "ext4: mkdir modes, link counts and errors (EEXIST, ENOTDIR, ENOENT) match native" {
	case_mkdir_modes_and_errors
}

@test "ext4: rmdir errors (ENOTEMPTY, ENOENT, ENOTDIR, EINVAL) and parent link counts match native" {
	case_rmdir_errors_and_link_counts
}

@test "ext4: symlink and readlink of relative, absolute, dangling and long targets match native" {
	case_symlink_and_readlink
}

@test "ext4: hard links share st_ino and data, nlink counts up and down" {
	case_hardlink_shares_inode_and_counts
}

@test "ext4: link errors (dir EPERM, EEXIST, ENOENT) match native" {
	case_hardlink_errors
}

@test "ext4: mkfifo creates a fifo that carries data" {
	case_mkfifo_and_data_through_it
}

@test "ext4: statfs (stat -f) totals equal those of the backing file system" {
	case_statfs_matches_backing_fs
}

@test "ext4: statfs free counts equal the backing's before and after a 16 MiB write" {
	case_statfs_free_space_follows_writes
}

@test "ext4: user.* xattrs set, get, list and remove like native" {
	case_xattr_set_get_list_remove
}

@test "ext4: setxattr XATTR_CREATE/XATTR_REPLACE give EEXIST/ENODATA like native" {
	case_xattr_create_and_replace_flags
}

@test "ext4: 40 xattrs list completely and a 3000-byte value round-trips" {
	case_xattr_many_and_large_values
}

@test "ext4: user.* xattrs on a symlink fail with EPERM, through it they land on the target" {
	case_xattr_user_on_symlink_not_permitted
}

@test "ext4: setfacl by the owner outside the file's group drops setgid like native; in it, keeps it" {
	case_acl_set_by_owner_outside_group_drops_setgid
}

@test "ext4: listxattr hides trusted.* from a user like native (list and size probe), shows it to root" {
	case_xattr_trusted_hidden_from_users_in_list
}

@test "ext4: trusted.* and security.* xattrs of a symlink itself by root work like native, the target untouched" {
	case_xattr_trusted_security_on_symlink_as_root
}

@test "ext4: fallocate -l allocates like native, st_blocks equal the backing file's" {
	case_fallocate_allocates
}

@test "ext4: fallocate -n (KEEP_SIZE) allocates past EOF without growing the file" {
	case_fallocate_keep_size
}

@test "ext4: fallocate -p punches a hole: zeros, fewer blocks, same size" {
	case_fallocate_punch_hole
}

@test "ext4: fallocate -z (ZERO_RANGE) behaves like native" {
	case_fallocate_zero_range
}

@test "ext4: SEEK_DATA/SEEK_HOLE report the native data/hole map and ENXIO" {
	case_seek_data_and_hole
}

@test "ext4: cp --sparse=always from the mount gives a copy as sparse as from native" {
	case_cp_sparse_from_mount_stays_sparse
}

@test "ext4: cp --sparse=always into the mount keeps the holes (st_blocks == backing)" {
	case_cp_sparse_into_mount_stays_sparse
}

@test "ext4: copy_file_range copies a whole file exactly" {
	case_copy_file_range_whole_file
}

@test "ext4: copy_file_range with offsets, past EOF, overlapping (EINVAL) and on a dir matches native" {
	case_copy_file_range_offsets_and_errors
}

@test "ext4: flock -x held by one process blocks -x and -s of another until released" {
	case_flock_exclusive_conflict
}

@test "ext4: POSIX fcntl locks conflict across processes by range, F_GETLK names the holder" {
	case_fcntl_lock_conflict
}

@test "ext4: an unlinked open file keeps reading, writing, ftruncate and fchmod" {
	case_unlinked_open_file_keeps_working
}

@test "ext4: a non-root user gets EACCES where the modes say so" {
	case_user_gets_eacces
}

@test "ext4: files a non-root user creates are owned by the user's uid/gid in the backing dir" {
	case_user_creates_files_owned_by_user
}

@test "ext4: fallocate and copy_file_range by a non-root user clear setuid/setgid like native" {
	case_user_fallocate_copy_range_clear_setuid_setgid
}

@test "ext4: a non-root user's files in a setgid directory get its group, umask applies" {
	case_user_setgid_dir_and_umask
}

@test "ext4: new files in a setgid directory get the directory's group, subdirs keep setgid" {
	case_root_setgid_dir_inherits_group
}

@test "ext4: close(2) on a filesystem whose close reports nothing sends no FLUSH request (FOPEN_NOFLUSH)" {
	case_close_sends_no_flush
}
