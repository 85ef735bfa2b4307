/*
 * slow-fsync: an LD_PRELOAD shim that makes durable writes as slow as an SD card's, and counts them.
 *
 * Every call that waits for the storage to persist data is delayed by HOLDFAST_SLOW_FSYNC_MS (a
 * decimal number of milliseconds, 0 counts without delaying) after the real call returns:
 * fsync, fdatasync, msync(MS_SYNC), sync_file_range, syncfs and sync, and every write to a file
 * descriptor opened with O_DSYNC or O_SYNC (LMDB writes its meta page that way instead of calling
 * fdatasync a second time), or written with pwritev2(RWF_DSYNC|RWF_SYNC).
 *
 * Counts go to HOLDFAST_SLOW_FSYNC_COUNTS, a file of little-endian uint64 (the enum below) mapped MAP_SHARED and
 * updated atomically: any thread (LMDB commits from lmdb-js's worker threads) and any child process
 * that inherits the environment add to the same counters, and a SIGKILL loses none of them, because
 * they live in the page cache, not in the process.
 *
 * Not seen: writes to a duplicate (dup) of an O_DSYNC descriptor, and I/O submitted through io_uring
 * (the testkit sets UV_USE_IO_URING=0 so libuv uses plain system calls).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The counters file's layout; packages/testkit/src/slow-fsync.ts reads the same order. */
enum { C_FSYNC, C_FDATASYNC, C_MSYNC, C_SYNC_FILE_RANGE, C_SYNCFS, C_DSYNC_WRITES, C_DELAYED_NS, C_REAL_NS, C_SLOTS };

#define MAX_TRACKED_FDS 65536

static uint64_t *counters;
static long long delay_ns;
static unsigned char dsync_fd[MAX_TRACKED_FDS];

/* The next definition of `name` (libc's), looked up once; a race only looks it up twice. */
#define REAL(name) \
  static __typeof__(name) *real_##name; \
  if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

__attribute__((constructor)) static void slow_fsync_init(void) {
  const char *ms = getenv("HOLDFAST_SLOW_FSYNC_MS");
  if (ms != NULL) delay_ns = (long long)(strtod(ms, NULL) * 1e6);
  const char *path = getenv("HOLDFAST_SLOW_FSYNC_COUNTS");
  if (path == NULL || *path == '\0') return;
  int (*real_open)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
  int fd = real_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat st;
  void *map = MAP_FAILED;
  if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_size >= (off_t)(C_SLOTS * 8) || ftruncate(fd, C_SLOTS * 8) == 0))
    map = mmap(NULL, C_SLOTS * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) fprintf(stderr, "slow-fsync: cannot map the counters file %s: %s\n", path, strerror(errno));
  else counters = (uint64_t *)map;
  if (fd >= 0) {
    int (*real_close)(int) = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real_close(fd);
  }
}

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/*
 * Counts one durable operation whose real call began at `began` (now_ns()), adds the storage's own time
 * for it, and waits the injected latency; errno stays the real call's.
 */
static void slow(int slot, long long began) {
  int saved = errno;
  if (counters) {
    __atomic_add_fetch(&counters[slot], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&counters[C_REAL_NS], (uint64_t)(now_ns() - began), __ATOMIC_RELAXED);
  }
  if (delay_ns > 0) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long long ns = until.tv_nsec + delay_ns;
    until.tv_sec += ns / 1000000000LL;
    until.tv_nsec = ns % 1000000000LL;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
    }
    if (counters) __atomic_add_fetch(&counters[C_DELAYED_NS], (uint64_t)delay_ns, __ATOMIC_RELAXED);
  }
  errno = saved;
}

static int is_dsync(int fd) {
  return fd >= 0 && fd < MAX_TRACKED_FDS && __atomic_load_n(&dsync_fd[fd], __ATOMIC_RELAXED);
}

static int track(int fd, int flags) {
  if (fd >= 0 && fd < MAX_TRACKED_FDS) __atomic_store_n(&dsync_fd[fd], (flags & O_DSYNC) ? 1 : 0, __ATOMIC_RELAXED);
  return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int fsync(int fd) {
  REAL(fsync);
  long long began = now_ns();
  int r = real_fsync(fd);
  slow(C_FSYNC, began);
  return r;
}

int fdatasync(int fd) {
  REAL(fdatasync);
  long long began = now_ns();
  int r = real_fdatasync(fd);
  slow(C_FDATASYNC, began);
  return r;
}

int msync(void *addr, size_t length, int flags) {
  REAL(msync);
  long long began = now_ns();
  int r = real_msync(addr, length, flags);
  if (flags & MS_SYNC) slow(C_MSYNC, began);
  return r;
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
  REAL(sync_file_range);
  long long began = now_ns();
  int r = real_sync_file_range(fd, offset, nbytes, flags);
  slow(C_SYNC_FILE_RANGE, began);
  return r;
}

int syncfs(int fd) {
  REAL(syncfs);
  long long began = now_ns();
  int r = real_syncfs(fd);
  slow(C_SYNCFS, began);
  return r;
}

void sync(void) {
  REAL(sync);
  long long began = now_ns();
  real_sync();
  slow(C_SYNCFS, began);
}

/* glibc exports open and open64 (and openat/openat64) as separate symbols; callers bind to either. */
#define OPEN_WRAPPER(name) \
  int name(const char *path, int flags, ...) { \
    REAL(name); \
    va_list ap; \
    va_start(ap, flags); \
    mode_t mode = mode_arg(flags, ap); \
    va_end(ap); \
    return track(real_##name(path, flags, mode), flags); \
  }
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

#define OPENAT_WRAPPER(name) \
  int name(int dirfd, const char *path, int flags, ...) { \
    REAL(name); \
    va_list ap; \
    va_start(ap, flags); \
    mode_t mode = mode_arg(flags, ap); \
    va_end(ap); \
    return track(real_##name(dirfd, path, flags, mode), flags); \
  }
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

int close(int fd) {
  REAL(close);
  /* Cleared before the real close: the number cannot be handed out again until close releases it. */
  track(fd, 0);
  return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t count) {
  REAL(write);
  long long began = now_ns();
  ssize_t r = real_write(fd, buf, count);
  if (is_dsync(fd)) slow(C_DSYNC_WRITES, began);
  return r;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
  REAL(writev);
  long long began = now_ns();
  ssize_t r = real_writev(fd, iov, iovcnt);
  if (is_dsync(fd)) slow(C_DSYNC_WRITES, began);
  return r;
}

#define PWRITE_WRAPPER(name, off_type) \
  ssize_t name(int fd, const void *buf, size_t count, off_type offset) { \
    REAL(name); \
    long long began = now_ns(); \
    ssize_t r = real_##name(fd, buf, count, offset); \
    if (is_dsync(fd)) slow(C_DSYNC_WRITES, began); \
    return r; \
  }
PWRITE_WRAPPER(pwrite, off_t)
PWRITE_WRAPPER(pwrite64, off64_t)

#define PWRITEV_WRAPPER(name, off_type) \
  ssize_t name(int fd, const struct iovec *iov, int iovcnt, off_type offset) { \
    REAL(name); \
    long long began = now_ns(); \
    ssize_t r = real_##name(fd, iov, iovcnt, offset); \
    if (is_dsync(fd)) slow(C_DSYNC_WRITES, began); \
    return r; \
  }
PWRITEV_WRAPPER(pwritev, off_t)
PWRITEV_WRAPPER(pwritev64, off64_t)

ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
  REAL(pwritev2);
  long long began = now_ns();
  ssize_t r = real_pwritev2(fd, iov, iovcnt, offset, flags);
  if (is_dsync(fd) || (flags & (RWF_DSYNC | RWF_SYNC))) slow(C_DSYNC_WRITES, began);
  return r;
}
