/* powerloss-fs: the volatile tree of nodes, and loading it from BACKING at mount. */
#include "powerloss-fs.h"

void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "powerloss-fs: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

void *xcalloc(size_t n, size_t size) {
	void *p = calloc(n, size);
	if (!p) die("out of memory");
	return p;
}

char *xstrdup(const char *s) {
	char *p = strdup(s);
	if (!p) die("out of memory");
	return p;
}

struct timespec now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

struct node *new_node(mode_t mode) {
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

void attach(struct node *parent, struct node *n, const char *name) {
	free(n->name);
	n->name = xstrdup(name);
	n->parent = parent;
	n->next = parent->children;
	parent->children = n;
	n->linked = 1;
	parent->mtime = parent->ctime = now();
}

void detach(struct node *n) {
	struct node **p = &n->parent->children;
	while (*p != n) p = &(*p)->next;
	*p = n->next;
	n->parent->mtime = n->parent->ctime = now();
	n->parent = NULL;
	n->next = NULL;
	n->linked = 0;
}

struct node *child(struct node *dir, const char *name, size_t len) {
	for (struct node *c = dir->children; c; c = c->next)
		if (strlen(c->name) == len && memcmp(c->name, name, len) == 0) return c;
	return NULL;
}

struct node *lookup(const char *path) {
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
struct node *lookup_parent(const char *path, const char **leaf) {
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

void place(struct node *n, struct node *dparent, const char *dname) {
	free(n->dname);
	n->dname = xstrdup(dname);
	n->dparent = dparent;
	n->durable = 1;
}

void load(struct node *dir, const char *path) {
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
