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
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define CONTROL "/.powerloss"

struct page {
	uint64_t index;
	unsigned char *data;
};

struct node {
	/* The volatile tree: what processes on the mount see. */
	struct node *parent;
	char *name;
	struct node *children, *next;
	int linked;
	int opens;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime, ctime;
	uint64_t ino;
	/* The durable tree: where this node is in BACKING, if anywhere. */
	int durable;
	struct node *dparent;
	char *dname;
	int bfd;
	/* The newest journal operation this node took part in (as object or as parent). */
	uint64_t last_op;
	/* Data: current size; BACKING's size; bytes of BACKING's content still valid (the lowest size
	 * since the last sync: anything above it that no dirty page covers reads as zeros). */
	off_t size, dsize, keep;
	struct page *pages;
	size_t npages, cap;
	int dirty;
};

enum op_kind { OP_CREATE, OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_RENAME, OP_CHMOD };

struct op {
	uint64_t seq;
	enum op_kind kind;
	struct node *obj, *p1, *p2, *replaced;
	char *n1, *n2;
	mode_t mode;
	struct op *next;
};

static struct {
	char backing[PATH_MAX];
	struct node *root;
	struct op *head, *tail;
	uint64_t seq, next_ino;
	uint64_t writes, bytes_written, fsyncs, fsyncdirs, synced_bytes, commits;
	int failed;
} S;

struct handle {
	struct node *node;
	int control;
};

static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "powerloss-fs: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void *xcalloc(size_t n, size_t size) {
	void *p = calloc(n, size);
	if (!p) die("out of memory");
	return p;
}

static char *xstrdup(const char *s) {
	char *p = strdup(s);
	if (!p) die("out of memory");
	return p;
}

static struct timespec now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

static struct node *new_node(mode_t mode) {
	struct node *n = xcalloc(1, sizeof *n);
	n->mode = mode;
	n->uid = getuid();
	n->gid = getgid();
	n->atime = n->mtime = n->ctime = now();
	n->ino = ++S.next_ino;
	n->bfd = -1;
	n->linked = 1;
	return n;
}

/* ---- the volatile tree ---- */

static void attach(struct node *parent, struct node *n, const char *name) {
	free(n->name);
	n->name = xstrdup(name);
	n->parent = parent;
	n->next = parent->children;
	parent->children = n;
	n->linked = 1;
	parent->mtime = parent->ctime = now();
}

static void detach(struct node *n) {
	struct node **p = &n->parent->children;
	while (*p != n) p = &(*p)->next;
	*p = n->next;
	n->parent->mtime = n->parent->ctime = now();
	n->parent = NULL;
	n->next = NULL;
	n->linked = 0;
}

static struct node *child(struct node *dir, const char *name, size_t len) {
	for (struct node *c = dir->children; c; c = c->next)
		if (strlen(c->name) == len && memcmp(c->name, name, len) == 0) return c;
	return NULL;
}

static struct node *lookup(const char *path) {
	struct node *n = S.root;
	const char *p = path;
	while (n && *p) {
		while (*p == '/') p++;
		if (!*p) break;
		const char *end = strchrnul(p, '/');
		if (!S_ISDIR(n->mode)) return NULL;
		n = child(n, p, (size_t)(end - p));
		p = end;
	}
	return n;
}

/* The parent directory of `path` and a pointer to its last component. */
static struct node *lookup_parent(const char *path, const char **leaf) {
	char buf[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash) return NULL;
	size_t len = (size_t)(slash - path);
	if (len >= sizeof buf) return NULL;
	memcpy(buf, path, len);
	buf[len] = '\0';
	*leaf = slash + 1;
	struct node *dir = lookup(buf);
	return dir && S_ISDIR(dir->mode) ? dir : NULL;
}

/* ---- file data: dirty pages over BACKING ---- */

static struct page *find_page(struct node *n, uint64_t index, size_t *at) {
	size_t lo = 0, hi = n->npages;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (n->pages[mid].index < index) lo = mid + 1;
		else hi = mid;
	}
	if (at) *at = lo;
	return lo < n->npages && n->pages[lo].index == index ? &n->pages[lo] : NULL;
}

/* Reads [off, off+len) of what the file held at the last sync, as far as it is still valid. */
static int read_base(struct node *n, unsigned char *buf, size_t len, off_t off) {
	size_t valid = off < n->keep ? (size_t)(n->keep - off) : 0;
	if (valid > len) valid = len;
	size_t done = 0;
	while (done < valid) {
		ssize_t r = pread(n->bfd, buf + done, valid - done, off + (off_t)done);
		if (r < 0) return -errno;
		if (r == 0) break;
		done += (size_t)r;
	}
	memset(buf + done, 0, len - done);
	return 0;
}

static struct page *dirty_page(struct node *n, uint64_t index) {
	size_t at;
	struct page *p = find_page(n, index, &at);
	if (p) return p;
	if (n->npages == n->cap) {
		n->cap = n->cap ? n->cap * 2 : 16;
		n->pages = realloc(n->pages, n->cap * sizeof *n->pages);
		if (!n->pages) die("out of memory");
	}
	memmove(&n->pages[at + 1], &n->pages[at], (n->npages - at) * sizeof *n->pages);
	n->npages++;
	p = &n->pages[at];
	p->index = index;
	p->data = malloc(PAGE);
	if (!p->data) die("out of memory");
	if (read_base(n, p->data, PAGE, (off_t)(index * PAGE)) < 0) memset(p->data, 0, PAGE);
	return p;
}

static int read_data(struct node *n, char *buf, size_t len, off_t off) {
	if (off >= n->size) return 0;
	if ((off_t)len > n->size - off) len = (size_t)(n->size - off);
	size_t done = 0;
	while (done < len) {
		off_t pos = off + (off_t)done;
		uint64_t index = (uint64_t)pos / PAGE;
		size_t in = (size_t)(pos % PAGE);
		size_t chunk = PAGE - in;
		if (chunk > len - done) chunk = len - done;
		struct page *p = find_page(n, index, NULL);
		if (p) memcpy(buf + done, p->data + in, chunk);
		else {
			int rc = read_base(n, (unsigned char *)buf + done, chunk, pos);
			if (rc < 0) return rc;
		}
		done += chunk;
	}
	return (int)len;
}

static void write_data(struct node *n, const char *buf, size_t len, off_t off) {
	size_t done = 0;
	while (done < len) {
		off_t pos = off + (off_t)done;
		uint64_t index = (uint64_t)pos / PAGE;
		size_t in = (size_t)(pos % PAGE);
		size_t chunk = PAGE - in;
		if (chunk > len - done) chunk = len - done;
		memcpy(dirty_page(n, index)->data + in, buf + done, chunk);
		done += chunk;
	}
	if (off + (off_t)len > n->size) n->size = off + (off_t)len;
	n->dirty = 1;
	n->mtime = n->ctime = now();
	S.writes++;
	S.bytes_written += len;
}

static void free_pages(struct node *n) {
	for (size_t i = 0; i < n->npages; i++) free(n->pages[i].data);
	free(n->pages);
	n->pages = NULL;
	n->npages = n->cap = 0;
}

static void truncate_data(struct node *n, off_t size) {
	if (size < n->size) {
		uint64_t first_gone = ((uint64_t)size + PAGE - 1) / PAGE;
		size_t at;
		find_page(n, first_gone, &at);
		for (size_t i = at; i < n->npages; i++) free(n->pages[i].data);
		n->npages = at;
		struct page *edge = size % PAGE ? find_page(n, (uint64_t)size / PAGE, NULL) : NULL;
		if (edge) memset(edge->data + size % PAGE, 0, PAGE - (size_t)(size % PAGE));
		if (size < n->keep) n->keep = size;
	}
	n->size = size;
	n->dirty = 1;
	n->mtime = n->ctime = now();
}

/* ---- the journal of name operations ---- */

static void touch_op(struct node *n, uint64_t seq) {
	if (n) n->last_op = seq;
}

static void journal(enum op_kind kind, struct node *obj, struct node *p1, const char *n1, struct node *p2, const char *n2, struct node *replaced) {
	struct op *op = xcalloc(1, sizeof *op);
	op->seq = ++S.seq;
	op->kind = kind;
	op->obj = obj;
	op->p1 = p1;
	op->n1 = n1 ? xstrdup(n1) : NULL;
	op->p2 = p2;
	op->n2 = n2 ? xstrdup(n2) : NULL;
	op->replaced = replaced;
	op->mode = obj->mode;
	touch_op(obj, op->seq);
	touch_op(p1, op->seq);
	touch_op(p2, op->seq);
	if (S.tail) S.tail->next = op;
	else S.head = op;
	S.tail = op;
}

/* BACKING's path of a durable node. */
static int dpath(struct node *n, char *buf, size_t size) {
	if (n == S.root) return snprintf(buf, size, "%s", S.backing) < (int)size ? 0 : -ENAMETOOLONG;
	if (!n->durable) return -ENOENT;
	int rc = dpath(n->dparent, buf, size);
	if (rc < 0) return rc;
	size_t len = strlen(buf);
	return snprintf(buf + len, size - len, "/%s", n->dname) < (int)(size - len) ? 0 : -ENAMETOOLONG;
}

static int dchild(struct node *dir, const char *name, char *buf, size_t size) {
	int rc = dpath(dir, buf, size);
	if (rc < 0) return rc;
	size_t len = strlen(buf);
	return snprintf(buf + len, size - len, "/%s", name) < (int)(size - len) ? 0 : -ENAMETOOLONG;
}

static void place(struct node *n, struct node *dparent, const char *dname) {
	free(n->dname);
	n->dname = xstrdup(dname);
	n->dparent = dparent;
	n->durable = 1;
}

/* A node no longer in the tree and no longer open holds nothing anyone can read or sync. */
static void maybe_release(struct node *n) {
	if (n->linked || n->opens) return;
	free_pages(n);
	if (n->bfd >= 0) close(n->bfd);
	n->bfd = -1;
}

static int apply(struct op *op) {
	char a[PATH_MAX], b[PATH_MAX];
	int rc;
	switch (op->kind) {
	case OP_CREATE:
		if ((rc = dchild(op->p1, op->n1, a, sizeof a)) < 0) return rc;
		op->obj->bfd = open(a, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, op->mode & 07777);
		if (op->obj->bfd < 0) return -errno;
		place(op->obj, op->p1, op->n1);
		op->obj->dsize = 0;
		maybe_release(op->obj);
		return 0;
	case OP_MKDIR:
		if ((rc = dchild(op->p1, op->n1, a, sizeof a)) < 0) return rc;
		if (mkdir(a, op->mode & 07777) < 0) return -errno;
		place(op->obj, op->p1, op->n1);
		return 0;
	case OP_UNLINK:
	case OP_RMDIR:
		if ((rc = dchild(op->p1, op->n1, a, sizeof a)) < 0) return rc;
		if ((op->kind == OP_UNLINK ? unlink(a) : rmdir(a)) < 0) return -errno;
		op->obj->durable = 0;
		maybe_release(op->obj);
		return 0;
	case OP_RENAME:
		if ((rc = dchild(op->p1, op->n1, a, sizeof a)) < 0) return rc;
		if ((rc = dchild(op->p2, op->n2, b, sizeof b)) < 0) return rc;
		if (rename(a, b) < 0) return -errno;
		place(op->obj, op->p2, op->n2);
		if (op->replaced) {
			op->replaced->durable = 0;
			maybe_release(op->replaced);
		}
		return 0;
	case OP_CHMOD:
		if (!op->obj->durable) return 0;
		if ((rc = dpath(op->obj, a, sizeof a)) < 0) return rc;
		return chmod(a, op->mode & 07777) < 0 ? -errno : 0;
	}
	return -EINVAL;
}

/* Applies the journal to BACKING, oldest first, through operation `upto`. */
static int commit(uint64_t upto) {
	while (S.head && S.head->seq <= upto) {
		struct op *op = S.head;
		int rc = apply(op);
		if (rc < 0) {
			fprintf(stderr, "powerloss-fs: applying journal operation %d on %s failed: %s\n", op->kind, op->n1 ? op->n1 : "?", strerror(-rc));
			S.failed = 1;
			return rc;
		}
		S.head = op->next;
		if (!S.head) S.tail = NULL;
		free(op->n1);
		free(op->n2);
		free(op);
		S.commits++;
	}
	return 0;
}

/* fsync of a file: its name (creation, renames) through the journal, then its pages and size. */
static int sync_file(struct node *n) {
	int rc = commit(n->last_op);
	if (rc < 0) return rc;
	if (!n->durable || !n->dirty) return 0;
	if (n->keep < n->dsize && ftruncate(n->bfd, n->keep) < 0) return -errno;
	for (size_t i = 0; i < n->npages; i++) {
		off_t pos = (off_t)(n->pages[i].index * PAGE);
		size_t len = n->size - pos < PAGE ? (size_t)(n->size - pos) : PAGE;
		size_t done = 0;
		while (done < len) {
			ssize_t w = pwrite(n->bfd, n->pages[i].data + done, len - done, pos + (off_t)done);
			if (w < 0) return -errno;
			done += (size_t)w;
		}
		S.synced_bytes += len;
	}
	if (ftruncate(n->bfd, n->size) < 0) return -errno;
	free_pages(n);
	n->dsize = n->keep = n->size;
	n->dirty = 0;
	return 0;
}

/* A clean shutdown: everything reaches BACKING. */
static void sync_tree(struct node *n) {
	for (struct node *c = n->children; c; c = c->next) {
		if (S_ISDIR(c->mode)) sync_tree(c);
		else sync_file(c);
	}
}

/* ---- loading BACKING at mount ---- */

static void load(struct node *dir, const char *path) {
	DIR *d = opendir(path);
	if (!d) die("cannot read %s: %s", path, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		char p[PATH_MAX];
		if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) die("path too long: %s", path);
		struct stat st;
		if (lstat(p, &st) < 0) die("cannot stat %s: %s", p, strerror(errno));
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
			fprintf(stderr, "powerloss-fs: skipping %s (only files and directories are modelled)\n", p);
			continue;
		}
		struct node *n = new_node(st.st_mode);
		n->uid = st.st_uid;
		n->gid = st.st_gid;
		n->atime = st.st_atim;
		n->mtime = st.st_mtim;
		n->ctime = st.st_ctim;
		attach(dir, n, e->d_name);
		place(n, dir, e->d_name);
		if (S_ISDIR(st.st_mode)) load(n, p);
		else {
			n->bfd = open(p, O_RDWR | O_CLOEXEC);
			if (n->bfd < 0) die("cannot open %s: %s", p, strerror(errno));
			n->size = n->dsize = n->keep = st.st_size;
		}
	}
	closedir(d);
	dir->mtime = dir->ctime = now();
}

/* ---- FUSE operations ---- */

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
