/*
 * powerloss-fs: a FUSE file system that models what a power cut takes.
 *
 *   powerloss-fs BACKING MOUNTPOINT
 *
 * BACKING is the disk: it only ever holds what was made durable. Everything else lives in this
 * process's memory, the way unsynced data lives in the kernel's page cache:
 *   - file data and sizes: written pages are kept here until fsync()/fdatasync() of that file, which
 *     writes them to BACKING (the kernel sends an fsync after each write to an O_SYNC/O_DSYNC file,
 *     and for msync(MS_SYNC));
 *   - names (create, mkdir, unlink, rmdir, rename, chmod): a journal of operations, applied to BACKING
 *     in order, up to the last operation that concerns what is being synced: fsync() of a directory
 *     commits through the last operation on that directory, fsync() of a file through the last one on
 *     the file (its creation or rename), like a journaling file system (ext4, xfs) commits its journal.
 * Reads see the volatile state, so a process on the mount (LMDB reading through mmap) sees its own
 * unsynced writes, as it would on a real disk.
 *
 * The power cut is SIGKILL of this process: the volatile state is gone, BACKING holds what survived.
 * The mount must then be detached (umount -l) and mounted again, so the kernel's page cache of the old
 * mount goes too. SIGTERM/SIGINT is a clean shutdown: everything is synced to BACKING, then unmounted.
 *
 * Prints "ready" on stdout once mounted. Reading /.powerloss (hidden from readdir) returns counters as
 * JSON. Hard links, symlinks, device nodes, xattrs and fallocate are not supported. sync(2) and
 * syncfs(2) are not forwarded by FUSE, so they make nothing durable here.
 */
#include "powerloss-fs.h"

struct state S;

/* An open file or directory; the control file has no node. */
struct handle {
	struct node *node;
	int control;
};

static struct node *node_of(const char *path, struct fuse_file_info *fi) {
	if (fi && fi->fh) return ((struct handle *)(uintptr_t)fi->fh)->node;
	return path ? lookup(path) : NULL;
}

static int control_text(char *buf, size_t size) {
	uint64_t pending = 0, unsynced = 0;
	for (struct op *op = S.head; op; op = op->next) pending++;
	/* Walk the volatile tree for unsynced pages. */
	struct node *stack[4096];
	int top = 0;
	stack[top++] = S.root;
	while (top) {
		struct node *n = stack[--top];
		unsynced += n->npages * (uint64_t)PAGE;
		for (struct node *c = n->children; c; c = c->next)
			if (top < (int)(sizeof stack / sizeof *stack)) stack[top++] = c;
	}
	return snprintf(buf, size,
	                "{\"writes\":%" PRIu64 ",\"bytesWritten\":%" PRIu64 ",\"fsyncs\":%" PRIu64 ",\"fsyncdirs\":%" PRIu64
	                ",\"syncedBytes\":%" PRIu64 ",\"committedOps\":%" PRIu64 ",\"pendingOps\":%" PRIu64 ",\"unsyncedBytes\":%" PRIu64
	                ",\"failed\":%s}\n",
	                S.writes, S.bytes_written, S.fsyncs, S.fsyncdirs, S.synced_bytes, S.commits, pending, unsynced, S.failed ? "true" : "false");
}

static void *pl_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
	(void)conn;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	cfg->kernel_cache = 0;
	return NULL;
}

static int pl_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
	memset(st, 0, sizeof *st);
	if (path && !strcmp(path, CONTROL)) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = PAGE;
		return 0;
	}
	struct node *n = node_of(path, fi);
	if (!n) return -ENOENT;
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	st->st_nlink = S_ISDIR(n->mode) ? 2 : (n->linked ? 1 : 0);
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_size = S_ISDIR(n->mode) ? PAGE : n->size;
	st->st_blksize = PAGE;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_atim = n->atime;
	st->st_mtim = n->mtime;
	st->st_ctim = n->ctime;
	return 0;
}

static int pl_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
	(void)off;
	(void)flags;
	struct node *dir = node_of(path, fi);
	if (!dir) return -ENOENT;
	if (!S_ISDIR(dir->mode)) return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (struct node *c = dir->children; c; c = c->next) fill(buf, c->name, NULL, 0, 0);
	return 0;
}

static int pl_opendir(const char *path, struct fuse_file_info *fi) {
	struct node *n = lookup(path);
	if (!n) return -ENOENT;
	if (!S_ISDIR(n->mode)) return -ENOTDIR;
	struct handle *h = xcalloc(1, sizeof *h);
	h->node = n;
	n->opens++;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int pl_release(const char *path, struct fuse_file_info *fi) {
	(void)path;
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (!h) return 0;
	if (h->node) {
		h->node->opens--;
		maybe_release(h->node);
	}
	free(h);
	return 0;
}

static int make(const char *path, mode_t mode, struct node **out) {
	const char *leaf;
	struct node *dir = lookup_parent(path, &leaf);
	if (!dir) return -ENOENT;
	if (child(dir, leaf, strlen(leaf))) return -EEXIST;
	if (strlen(leaf) > NAME_MAX) return -ENAMETOOLONG;
	struct node *n = new_node(mode);
	struct fuse_context *ctx = fuse_get_context();
	n->uid = ctx->uid;
	n->gid = ctx->gid;
	attach(dir, n, leaf);
	journal(S_ISDIR(mode) ? OP_MKDIR : OP_CREATE, n, dir, leaf, NULL, NULL, NULL);
	*out = n;
	return 0;
}

static int pl_mkdir(const char *path, mode_t mode) {
	struct node *n;
	return make(path, S_IFDIR | (mode & 07777), &n);
}

static int open_handle(struct node *n, struct fuse_file_info *fi) {
	struct handle *h = xcalloc(1, sizeof *h);
	h->node = n;
	n->opens++;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int pl_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
	struct node *n;
	int rc = make(path, S_IFREG | (mode & 07777), &n);
	return rc < 0 ? rc : open_handle(n, fi);
}

static int pl_open(const char *path, struct fuse_file_info *fi) {
	if (!strcmp(path, CONTROL)) {
		struct handle *h = xcalloc(1, sizeof *h);
		h->control = 1;
		fi->fh = (uintptr_t)h;
		fi->direct_io = 1;
		return 0;
	}
	struct node *n = lookup(path);
	if (!n) return -ENOENT;
	if (S_ISDIR(n->mode)) return -EISDIR;
	return open_handle(n, fi);
}

static int pl_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (h->control) {
		char text[1024];
		int len = control_text(text, sizeof text);
		if (off >= len) return 0;
		if ((off_t)size > len - off) size = (size_t)(len - off);
		memcpy(buf, text + off, size);
		return (int)size;
	}
	(void)path;
	return read_data(h->node, buf, size, off);
}

static int pl_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
	(void)path;
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (h->control) return -EACCES;
	write_data(h->node, buf, size, off);
	return (int)size;
}

static int pl_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
	(void)datasync;
	struct node *n = node_of(path, fi);
	if (!n) return -ENOENT;
	S.fsyncs++;
	return sync_file(n) < 0 ? -EIO : 0;
}

static int pl_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi) {
	(void)datasync;
	struct node *n = node_of(path, fi);
	if (!n) return -ENOENT;
	S.fsyncdirs++;
	return commit(n->last_op) < 0 ? -EIO : 0;
}

static int pl_unlink(const char *path) {
	struct node *n = lookup(path);
	if (!n) return -ENOENT;
	if (S_ISDIR(n->mode)) return -EISDIR;
	struct node *dir = n->parent;
	char *name = xstrdup(n->name);
	detach(n);
	journal(OP_UNLINK, n, dir, name, NULL, NULL, NULL);
	free(name);
	maybe_release(n);
	return 0;
}

static int pl_rmdir(const char *path) {
	struct node *n = lookup(path);
	if (!n) return -ENOENT;
	if (!S_ISDIR(n->mode)) return -ENOTDIR;
	if (n == S.root) return -EBUSY;
	if (n->children) return -ENOTEMPTY;
	struct node *dir = n->parent;
	char *name = xstrdup(n->name);
	detach(n);
	journal(OP_RMDIR, n, dir, name, NULL, NULL, NULL);
	free(name);
	return 0;
}

static int pl_rename(const char *from, const char *to, unsigned int flags) {
	if (flags & ~RENAME_NOREPLACE) return -EINVAL;
	struct node *n = lookup(from);
	if (!n || n == S.root) return -ENOENT;
	const char *leaf;
	struct node *dir = lookup_parent(to, &leaf);
	if (!dir) return -ENOENT;
	for (struct node *a = dir; a; a = a->parent)
		if (a == n) return -EINVAL;
	struct node *old = child(dir, leaf, strlen(leaf));
	if (old == n) return 0;
	if (old) {
		if (flags & RENAME_NOREPLACE) return -EEXIST;
		if (S_ISDIR(old->mode) && !S_ISDIR(n->mode)) return -EISDIR;
		if (!S_ISDIR(old->mode) && S_ISDIR(n->mode)) return -ENOTDIR;
		if (old->children) return -ENOTEMPTY;
		detach(old);
	}
	struct node *from_dir = n->parent;
	char *from_name = xstrdup(n->name);
	detach(n);
	attach(dir, n, leaf);
	n->ctime = now();
	journal(OP_RENAME, n, from_dir, from_name, dir, leaf, old);
	free(from_name);
	if (old) maybe_release(old);
	return 0;
}

static int pl_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
	struct node *n = node_of(path, fi);
	if (!n) return -ENOENT;
	if (S_ISDIR(n->mode)) return -EISDIR;
	truncate_data(n, size);
	return 0;
}

static int pl_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
	struct node *n = node_of(path, fi);
	if (!n) return -ENOENT;
	n->mode = (n->mode & S_IFMT) | (mode & 07777);
	n->ctime = now();
	if (n != S.root) journal(OP_CHMOD, n, NULL, NULL, NULL, NULL, NULL);
	return 0;
}

static int pl_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
	struct node *n = node_of(path, fi);
	if (!n) return -ENOENT;
	if (uid != (uid_t)-1) n->uid = uid;
	if (gid != (gid_t)-1) n->gid = gid;
	n->ctime = now();
	return 0;
}

static int pl_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
	struct node *n = node_of(path, fi);
	if (!n) return -ENOENT;
	struct timespec t = now();
	if (tv[0].tv_nsec != UTIME_OMIT) n->atime = tv[0].tv_nsec == UTIME_NOW ? t : tv[0];
	if (tv[1].tv_nsec != UTIME_OMIT) n->mtime = tv[1].tv_nsec == UTIME_NOW ? t : tv[1];
	n->ctime = t;
	return 0;
}

static int pl_access(const char *path, int mask) {
	(void)mask;
	return !strcmp(path, CONTROL) || lookup(path) ? 0 : -ENOENT;
}

static int pl_statfs(const char *path, struct statvfs *st) {
	(void)path;
	return statvfs(S.backing, st) < 0 ? -errno : 0;
}

static const struct fuse_operations ops = {
	.init = pl_init,
	.getattr = pl_getattr,
	.readdir = pl_readdir,
	.opendir = pl_opendir,
	.releasedir = pl_release,
	.mkdir = pl_mkdir,
	.create = pl_create,
	.open = pl_open,
	.read = pl_read,
	.write = pl_write,
	.release = pl_release,
	.fsync = pl_fsync,
	.fsyncdir = pl_fsyncdir,
	.unlink = pl_unlink,
	.rmdir = pl_rmdir,
	.rename = pl_rename,
	.truncate = pl_truncate,
	.chmod = pl_chmod,
	.chown = pl_chown,
	.utimens = pl_utimens,
	.access = pl_access,
	.statfs = pl_statfs,
};

int main(int argc, char *argv[]) {
	if (argc != 3) {
		fprintf(stderr, "usage: %s BACKING MOUNTPOINT\n", argv[0]);
		return 2;
	}
	if (!realpath(argv[1], S.backing)) die("backing directory %s: %s", argv[1], strerror(errno));
	struct stat st;
	if (stat(S.backing, &st) < 0 || !S_ISDIR(st.st_mode)) die("%s is not a directory", S.backing);
	S.root = new_node(st.st_mode);
	S.root->name = xstrdup("");
	S.root->durable = 1;
	load(S.root, S.backing);

	char *fargv[] = { argv[0], "-o", "fsname=powerloss,subtype=powerloss", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse *fuse = fuse_new(&args, &ops, sizeof ops, NULL);
	if (!fuse) die("fuse_new failed");
	if (fuse_mount(fuse, argv[2]) != 0) die("cannot mount on %s (is /dev/fuse there, and are you root?)", argv[2]);
	struct fuse_session *se = fuse_get_session(fuse);
	if (fuse_set_signal_handlers(se) != 0) die("cannot install signal handlers");
	printf("ready\n");
	fflush(stdout);
	int rc = fuse_loop(fuse);
	/* Only a clean shutdown gets here (SIGKILL is the power cut): sync what is left, like an OS would. */
	commit(S.seq);
	sync_tree(S.root);
	fuse_remove_signal_handlers(se);
	fuse_unmount(fuse);
	fuse_destroy(fuse);
	/* fuse_loop returns the number of the signal that ended it. */
	return (rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP) && !S.failed ? 0 : 1;
}
