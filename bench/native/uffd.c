/*
 * Native anchor for the userfaultfd figures: times the machine's own kernel
 * doing what the model's figures do, and prints one JSON object.
 *
 *   copy       UFFDIO_COPY filling a registered REGION_MIB region, at each of
 *              PAGES_PER_CALL pages per ioctl, one full pass per sample.
 *   zeropage   UFFDIO_ZEROPAGE over the same region, same sizes.
 *   fork       fork() of this process with N present anonymous pages, for
 *              each N in FORK_PAGES; one fork per sample, per present PTE.
 *   fault      the round trip of a missing-page fault: a thread reads a
 *              registered page, the monitor (this thread) polls, reads the
 *              PAGEFAULT message and resolves it with UFFDIO_COPY, which
 *              wakes the thread; FAULT_BATCH faults per sample. Both threads
 *              run pinned to one CPU: on a VM, waking a thread on an idle
 *              vCPU measured 40-50 us per fault against 8-10 us pinned, and
 *              which of the two a run got depended on what else was idle.
 *
 * Every sample is in nanoseconds per page (per PTE for fork, per fault for
 * fault). The source of every copy is one hot page of a memfd, mapped at
 * MAX_PAGES_PER_CALL consecutive addresses, so a copy of many pages per
 * ioctl still reads one physical page, as the memcpy anchor does.
 *
 * Usage: uffd REGION_MIB SAMPLES FAULT_SAMPLES FORK_PAGES...
 *
 * A part that cannot run (userfaultfd refused with EPERM even in user mode
 * only, ENOSYS on a kernel without it) gets a one-line reason under
 * "errors"; the other parts run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1 /* Linux 5.11 and later */
#endif

#define PAGE_SIZE 4096ul
#define MAX_PAGES_PER_CALL 512ul
#define FAULT_BATCH 64ul
#define MAX_FORK_SIZES 8

static const unsigned long PAGES_PER_CALL[] = {1, 16, 64, 512};
#define SIZE_COUNT (sizeof(PAGES_PER_CALL) / sizeof(PAGES_PER_CALL[0]))

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long parse_count(const char *text, const char *argument_name) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value <= 0) {
    fprintf(stderr, "uffd: invalid %s '%s': expected a whole number > 0\n", argument_name, text);
    exit(2);
  }
  return value;
}

/* The reason a part could not run, or an empty string; printed under "errors". */
struct failure {
  char text[256];
};

static void fail(struct failure *f, const char *operation) {
  snprintf(f->text, sizeof f->text, "%s failed: %s (errno %d)", operation, strerror(errno), errno);
}

static void print_json_string(const char *text) {
  putchar('"');
  for (const char *p = text; *p; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    putchar(*p >= 0x20 ? *p : ' ');
  }
  putchar('"');
}

static void print_samples(const double *samples, long count) {
  putchar('[');
  for (long i = 0; i < count; i++) printf("%s%.3f", i == 0 ? "" : ",", samples[i]);
  putchar(']');
}

/* Set when userfaultfd() refused a full context (EPERM) and a user-mode-only one was used. */
static int user_mode_only = 0;

/*
 * Opens a userfaultfd with the API handshake done; -1 with errno set on
 * failure. Without privilege (and vm.unprivileged_userfaultfd = 0) it falls
 * back to UFFD_USER_MODE_ONLY, which serves every fault timed here, since
 * they all come from user mode.
 */
static int open_uffd(void) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
  if (fd < 0 && errno == EPERM) {
    fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (fd >= 0) user_mode_only = 1;
  }
  if (fd < 0) return -1;
  struct uffdio_api api = {.api = UFFD_API, .features = 0};
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static int register_missing(int fd, void *start, size_t len) {
  struct uffdio_register reg = {.range = {.start = (uintptr_t)start, .len = len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  return ioctl(fd, UFFDIO_REGISTER, &reg);
}

/* Maps one memfd page at MAX_PAGES_PER_CALL consecutive addresses; NULL on failure. */
static unsigned char *map_hot_source(struct failure *f) {
  int memfd = memfd_create("uffd-bench-source", MFD_CLOEXEC);
  if (memfd < 0 || ftruncate(memfd, PAGE_SIZE) != 0) {
    fail(f, "memfd_create of the source page");
    return NULL;
  }
  unsigned char *base = mmap(NULL, MAX_PAGES_PER_CALL * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    fail(f, "mmap of the source window");
    close(memfd);
    return NULL;
  }
  for (unsigned long i = 0; i < MAX_PAGES_PER_CALL; i++) {
    void *at = mmap(base + i * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
    if (at == MAP_FAILED) {
      fail(f, "mmap of a source alias");
      close(memfd);
      return NULL;
    }
  }
  close(memfd);
  memset(base, 0x5a, PAGE_SIZE);
  /* Touch every alias so the source page tables exist before timing. */
  volatile unsigned char sink = 0;
  for (unsigned long i = 0; i < MAX_PAGES_PER_CALL; i++) sink ^= base[i * PAGE_SIZE];
  (void)sink;
  return base;
}

enum fill_kind { FILL_COPY, FILL_ZEROPAGE };

/* Fills the whole region with `per_call` pages per ioctl; returns 0 or -1 with errno set. */
static int fill_region(int fd, enum fill_kind kind, unsigned char *region, size_t pages, const unsigned char *src, size_t per_call) {
  size_t len = per_call * PAGE_SIZE;
  for (size_t page = 0; page < pages; page += per_call) {
    int rc;
    if (kind == FILL_COPY) {
      struct uffdio_copy copy = {.dst = (uintptr_t)(region + page * PAGE_SIZE), .src = (uintptr_t)src, .len = len, .mode = 0};
      rc = ioctl(fd, UFFDIO_COPY, &copy);
    } else {
      struct uffdio_zeropage zero = {.range = {.start = (uintptr_t)(region + page * PAGE_SIZE), .len = len}, .mode = 0};
      rc = ioctl(fd, UFFDIO_ZEROPAGE, &zero);
    }
    if (rc != 0) return -1;
  }
  return 0;
}

/* Times `samples` passes of each fill kind and size into out[kind][size][sample], in ns per page. */
static void time_fills(size_t region_pages, long samples, double *out[2][SIZE_COUNT], struct failure *f) {
  unsigned char *src = map_hot_source(f);
  if (src == NULL) return;
  size_t len = region_pages * PAGE_SIZE;
  unsigned char *region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) {
    fail(f, "mmap of the region");
    return;
  }
  int fd = open_uffd();
  if (fd < 0) {
    fail(f, "userfaultfd");
    munmap(region, len);
    return;
  }
  if (register_missing(fd, region, len) != 0) {
    fail(f, "UFFDIO_REGISTER");
    close(fd);
    munmap(region, len);
    return;
  }
  for (int kind = 0; kind < 2; kind++) {
    for (size_t s = 0; s < SIZE_COUNT; s++) {
      size_t per_call = PAGES_PER_CALL[s];
      /* One untimed pass per size warms the allocator and the code. */
      for (long sample = -1; sample < samples; sample++) {
        double start = now_ns();
        if (fill_region(fd, (enum fill_kind)kind, region, region_pages, src, per_call) != 0) {
          fail(f, kind == FILL_COPY ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE");
          close(fd);
          munmap(region, len);
          return;
        }
        double elapsed = now_ns() - start;
        if (sample >= 0) out[kind][s][sample] = elapsed / (double)region_pages;
        madvise(region, len, MADV_DONTNEED);
      }
    }
  }
  close(fd);
  munmap(region, len);
}

/* Times fork() with `pages` present pages into out[sample], in ns per present PTE. */
static void time_fork(size_t pages, long samples, double *out, struct failure *f) {
  size_t len = pages * PAGE_SIZE;
  unsigned char *area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    fail(f, "mmap of the fork area");
    return;
  }
  for (long sample = -1; sample < samples; sample++) {
    /* Writing every page makes each PTE present and writable again after the last fork. */
    for (size_t i = 0; i < pages; i++) area[i * PAGE_SIZE] = (unsigned char)(i + (size_t)sample);
    double start = now_ns();
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    double elapsed = now_ns() - start;
    if (pid < 0) {
      fail(f, "fork");
      break;
    }
    waitpid(pid, NULL, 0);
    if (sample >= 0) out[sample] = elapsed / (double)pages;
  }
  munmap(area, len);
}

struct faulter {
  unsigned char *region;
  size_t pages;
  volatile unsigned checksum;
  /* Time from the first fault to the last one's completion, measured by the faulting thread. */
  double elapsed_ns;
};

static void *fault_pages(void *arg) {
  struct faulter *faulter = arg;
  unsigned sum = 0;
  double start = now_ns();
  for (size_t i = 0; i < faulter->pages; i++) sum += ((volatile unsigned char *)faulter->region)[i * PAGE_SIZE];
  faulter->elapsed_ns = now_ns() - start;
  faulter->checksum = sum;
  return NULL;
}

/*
 * Serves `pages` faults of one faulting thread and returns the thread's own
 * time for them in ns (thread start-up excluded), or -1 with the reason in `f`.
 */
static double serve_faults(int fd, unsigned char *region, size_t pages, const unsigned char *src, struct failure *f) {
  struct faulter faulter = {.region = region, .pages = pages, .checksum = 0, .elapsed_ns = 0};
  pthread_t thread;
  if (pthread_create(&thread, NULL, fault_pages, &faulter) != 0) {
    fail(f, "pthread_create");
    return -1;
  }
  int rc = 0;
  for (size_t served = 0; served < pages && rc == 0;) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1) {
      fail(f, "poll for a PAGEFAULT message");
      rc = -1;
      break;
    }
    struct uffd_msg msg;
    ssize_t got = read(fd, &msg, sizeof msg);
    if (got != (ssize_t)sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT) {
      fail(f, "read of a PAGEFAULT message");
      rc = -1;
      break;
    }
    uintptr_t page = msg.arg.pagefault.address & ~(uintptr_t)(PAGE_SIZE - 1);
    struct uffdio_copy copy = {.dst = page, .src = (uintptr_t)src, .len = PAGE_SIZE, .mode = 0};
    if (ioctl(fd, UFFDIO_COPY, &copy) != 0) {
      fail(f, "UFFDIO_COPY of a faulting page");
      rc = -1;
    }
    served++;
  }
  if (rc != 0) {
    /* Unblock the thread before joining it: closing the uffd wakes its faults. */
    close(fd);
  }
  pthread_join(thread, NULL);
  return rc == 0 ? faulter.elapsed_ns : -1;
}

/* Times the fault round trip into out[sample], in ns per fault, with FAULT_BATCH faults per sample. */
static void time_faults(long samples, double *out, struct failure *f) {
  unsigned char *src = map_hot_source(f);
  if (src == NULL) return;
  size_t pages = FAULT_BATCH;
  size_t len = pages * PAGE_SIZE;
  unsigned char *region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) {
    fail(f, "mmap of the fault region");
    return;
  }
  int fd = open_uffd();
  if (fd < 0 || register_missing(fd, region, len) != 0) {
    fail(f, fd < 0 ? "userfaultfd" : "UFFDIO_REGISTER");
    if (fd >= 0) close(fd);
    munmap(region, len);
    return;
  }
  /* Pin this thread, and so the faulting thread it creates, to the current CPU; restored at the end. */
  cpu_set_t original, pinned;
  int have_mask = sched_getaffinity(0, sizeof original, &original) == 0;
  int cpu = sched_getcpu();
  if (have_mask && cpu >= 0) {
    CPU_ZERO(&pinned);
    CPU_SET(cpu, &pinned);
    sched_setaffinity(0, sizeof pinned, &pinned);
  }
  /* Untimed warm-up batches, then the samples. */
  for (long sample = -3; sample < samples; sample++) {
    double elapsed = serve_faults(fd, region, pages, src, f);
    if (elapsed < 0) {
      munmap(region, len);
      if (have_mask) sched_setaffinity(0, sizeof original, &original);
      return;
    }
    if (sample >= 0) out[sample] = elapsed / (double)pages;
    madvise(region, len, MADV_DONTNEED);
  }
  close(fd);
  munmap(region, len);
  if (have_mask) sched_setaffinity(0, sizeof original, &original);
}

int main(int argc, char **argv) {
  if (argc < 4 || argc - 4 > MAX_FORK_SIZES) {
    fprintf(stderr, "usage: uffd REGION_MIB SAMPLES FAULT_SAMPLES [FORK_PAGES...] (at most %d fork sizes)\n", MAX_FORK_SIZES);
    return 2;
  }
  long region_mib = parse_count(argv[1], "REGION_MIB");
  long samples = parse_count(argv[2], "SAMPLES");
  long fault_samples = parse_count(argv[3], "FAULT_SAMPLES");
  int fork_sizes = argc - 4;
  long fork_pages[MAX_FORK_SIZES];
  for (int i = 0; i < fork_sizes; i++) fork_pages[i] = parse_count(argv[4 + i], "FORK_PAGES");
  size_t region_pages = (size_t)region_mib * (1u << 20) / PAGE_SIZE;
  if (region_pages % MAX_PAGES_PER_CALL != 0) {
    fprintf(stderr, "uffd: REGION_MIB must be a multiple of 2 (the region holds whole %lu-page calls)\n", MAX_PAGES_PER_CALL);
    return 2;
  }

  double *fills[2][SIZE_COUNT];
  for (int kind = 0; kind < 2; kind++)
    for (size_t s = 0; s < SIZE_COUNT; s++) fills[kind][s] = calloc((size_t)samples, sizeof(double));
  double *forks[MAX_FORK_SIZES];
  for (int i = 0; i < fork_sizes; i++) forks[i] = calloc((size_t)samples, sizeof(double));
  double *faults = calloc((size_t)fault_samples, sizeof(double));

  struct failure fill_failure = {{0}}, fork_failure = {{0}}, fault_failure = {{0}};
  /* The fault round trip runs first: after the large fills and forks it measured several times slower on a VM. */
  time_faults(fault_samples, faults, &fault_failure);
  time_fills(region_pages, samples, fills, &fill_failure);
  for (int i = 0; i < fork_sizes && fork_failure.text[0] == '\0'; i++) time_fork((size_t)fork_pages[i], samples, forks[i], &fork_failure);

  printf("{\"pageSize\":%lu,\"regionPages\":%zu,\"faultBatch\":%lu,\"userModeOnly\":%s,", PAGE_SIZE, region_pages, FAULT_BATCH,
         user_mode_only ? "true" : "false");
  const char *kinds[2] = {"copy", "zeropage"};
  for (int kind = 0; kind < 2; kind++) {
    printf("\"%s\":{", kinds[kind]);
    if (fill_failure.text[0] == '\0') {
      for (size_t s = 0; s < SIZE_COUNT; s++) {
        printf("%s\"%lu\":", s == 0 ? "" : ",", PAGES_PER_CALL[s]);
        print_samples(fills[kind][s], samples);
      }
    }
    printf("},");
  }
  printf("\"fork\":{");
  if (fork_failure.text[0] == '\0') {
    for (int i = 0; i < fork_sizes; i++) {
      printf("%s\"%ld\":", i == 0 ? "" : ",", fork_pages[i]);
      print_samples(forks[i], samples);
    }
  }
  printf("},\"fault\":");
  if (fault_failure.text[0] == '\0') print_samples(faults, fault_samples);
  else printf("[]");
  printf(",\"errors\":{");
  int first = 1;
  const char *names[3] = {"fill", "fork", "fault"};
  struct failure *failures[3] = {&fill_failure, &fork_failure, &fault_failure};
  for (int i = 0; i < 3; i++) {
    if (failures[i]->text[0] == '\0') continue;
    printf("%s\"%s\":", first ? "" : ",", names[i]);
    print_json_string(failures[i]->text);
    first = 0;
  }
  printf("}}\n");
  return 0;
}
