/* powerloss-fs: file data: dirty pages over what BACKING holds, until a sync. */
#include "powerloss-fs.h"

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

/* The part of [pos, pos+left) inside one page: its length, the page and the offset in it. */
static size_t page_chunk(off_t pos, size_t left, uint64_t *index, size_t *in) {
	*index = (uint64_t)pos / PAGE;
	*in = (size_t)(pos % PAGE);
	return PAGE - *in < left ? PAGE - *in : left;
}

int read_data(struct node *n, char *buf, size_t len, off_t off) {
	if (off >= n->size) return 0;
	if ((off_t)len > n->size - off) len = (size_t)(n->size - off);
	uint64_t index;
	size_t in, chunk;
	for (size_t done = 0; done < len; done += chunk) {
		chunk = page_chunk(off + (off_t)done, len - done, &index, &in);
		struct page *p = find_page(n, index, NULL);
		if (p) memcpy(buf + done, p->data + in, chunk);
		else {
			int rc = read_base(n, (unsigned char *)buf + done, chunk, off + (off_t)done);
			if (rc < 0) return rc;
		}
	}
	return (int)len;
}

void write_data(struct node *n, const char *buf, size_t len, off_t off) {
	uint64_t index;
	size_t in, chunk;
	for (size_t done = 0; done < len; done += chunk) {
		chunk = page_chunk(off + (off_t)done, len - done, &index, &in);
		memcpy(dirty_page(n, index)->data + in, buf + done, chunk);
	}
	if (off + (off_t)len > n->size) n->size = off + (off_t)len;
	n->dirty = 1;
	n->mtime = n->ctime = now();
	S.writes++;
	S.bytes_written += len;
}

void free_pages(struct node *n) {
	for (size_t i = 0; i < n->npages; i++) free(n->pages[i].data);
	free(n->pages);
	n->pages = NULL;
	n->npages = n->cap = 0;
}

void truncate_data(struct node *n, off_t size) {
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
