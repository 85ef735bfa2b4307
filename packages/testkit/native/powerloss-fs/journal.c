/* powerloss-fs: the journal of name operations, and syncs: what reaches BACKING, and when. */
#include "powerloss-fs.h"

static void touch_op(struct node *n, uint64_t seq) {
	if (n) n->last_op = seq;
}

void journal(enum op_kind kind, struct node *obj, struct node *p1, const char *n1, struct node *p2, const char *n2, struct node *replaced) {
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

/* A node no longer in the tree and no longer open holds nothing anyone can read or sync. */
void maybe_release(struct node *n) {
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
int commit(uint64_t upto) {
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
int sync_file(struct node *n) {
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
void sync_tree(struct node *n) {
	for (struct node *c = n->children; c; c = c->next) {
		if (S_ISDIR(c->mode)) sync_tree(c);
		else sync_file(c);
	}
}
