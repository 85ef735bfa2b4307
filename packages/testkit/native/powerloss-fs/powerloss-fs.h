/* powerloss-fs: the model's types and the functions its parts share (see main.c for the model). */
#ifndef POWERLOSS_FS_H
#define POWERLOSS_FS_H
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

struct state {
	char backing[PATH_MAX];
	struct node *root;
	struct op *head, *tail;
	uint64_t seq, next_ino;
	uint64_t writes, bytes_written, fsyncs, fsyncdirs, synced_bytes, commits;
	int failed;
};

extern struct state S;

/* tree.c */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);
struct timespec now(void);
struct node *new_node(mode_t mode);
void attach(struct node *parent, struct node *n, const char *name);
void detach(struct node *n);
struct node *child(struct node *dir, const char *name, size_t len);
struct node *lookup(const char *path);
struct node *lookup_parent(const char *path, const char **leaf);
void place(struct node *n, struct node *dparent, const char *dname);
void load(struct node *dir, const char *path);

/* pages.c */
int read_data(struct node *n, char *buf, size_t len, off_t off);
void write_data(struct node *n, const char *buf, size_t len, off_t off);
void free_pages(struct node *n);
void truncate_data(struct node *n, off_t size);

/* journal.c */
void journal(enum op_kind kind, struct node *obj, struct node *p1, const char *n1, struct node *p2, const char *n2, struct node *replaced);
void maybe_release(struct node *n);
int commit(uint64_t upto);
int sync_file(struct node *n);
void sync_tree(struct node *n);

#endif
