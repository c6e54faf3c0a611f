/*
 * Native anchor for the page-copy benchmark: times libc memcpy of 4 KiB
 * pages in the two shapes the wasm kernels are timed in, and prints one JSON
 * object with the time per page of every sample, in nanoseconds.
 *
 *   warm       WARM_DST_PAGES destination pages reused round-robin, fed from
 *              one source page, so everything stays in cache.
 *   streaming  a REGION_MIB destination filled 4 KiB at a time from one hot
 *              source page, one full pass per sample.
 *
 * Usage: memcpy REGION_MIB WARM_PAGES_PER_SAMPLE WARM_SAMPLES STREAMING_SAMPLES
 *
 * Both buffers are written once before timing, so first-touch page faults
 * stay out of the samples. The copy length is read through a volatile, so
 * the compiler calls the library memcpy instead of inlining a fixed-size
 * copy of its own.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_SIZE 4096u
#define WARM_DST_PAGES 4u

static volatile size_t copy_length = PAGE_SIZE;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Keeps the compiler from dropping copies whose result is never read. */
static void clobber(void *p) {
  __asm__ volatile("" : : "r"(p) : "memory");
}

static long parse_count(const char *text, const char *argument_name) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value <= 0) {
    fprintf(stderr, "memcpy: invalid %s '%s': expected a whole number > 0\n", argument_name, text);
    exit(2);
  }
  return value;
}

static void copy_pages(unsigned char *dst, size_t dst_pages, const unsigned char *src, size_t count) {
  size_t d = 0;
  for (size_t i = 0; i < count; i++) {
    memcpy(dst + d * PAGE_SIZE, src, copy_length);
    if (++d == dst_pages) d = 0;
  }
  clobber(dst);
}

static void print_samples(const char *name, const double *ns_per_page, long count, int last) {
  printf("\"%s\":[", name);
  for (long i = 0; i < count; i++) printf("%s%.3f", i == 0 ? "" : ",", ns_per_page[i]);
  printf("]%s", last ? "" : ",");
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: memcpy REGION_MIB WARM_PAGES_PER_SAMPLE WARM_SAMPLES STREAMING_SAMPLES\n");
    return 2;
  }
  long region_mib = parse_count(argv[1], "REGION_MIB");
  long warm_pages = parse_count(argv[2], "WARM_PAGES_PER_SAMPLE");
  long warm_samples = parse_count(argv[3], "WARM_SAMPLES");
  long stream_samples = parse_count(argv[4], "STREAMING_SAMPLES");
  size_t region_pages = (size_t)region_mib * (1u << 20) / PAGE_SIZE;

  unsigned char *src = aligned_alloc(PAGE_SIZE, PAGE_SIZE);
  unsigned char *warm = aligned_alloc(PAGE_SIZE, WARM_DST_PAGES * PAGE_SIZE);
  unsigned char *region = aligned_alloc(PAGE_SIZE, region_pages * PAGE_SIZE);
  double *warm_ns = calloc((size_t)warm_samples, sizeof(double));
  double *stream_ns = calloc((size_t)stream_samples, sizeof(double));
  if (!src || !warm || !region || !warm_ns || !stream_ns) {
    fprintf(stderr, "memcpy: out of memory for a %ld MiB region\n", region_mib);
    return 1;
  }
  memset(src, 0x5a, PAGE_SIZE);
  memset(warm, 1, WARM_DST_PAGES * PAGE_SIZE);
  memset(region, 1, region_pages * PAGE_SIZE);

  /* Untimed warm-up: one streaming pass and a few warm rounds. */
  copy_pages(region, region_pages, src, region_pages);
  copy_pages(warm, WARM_DST_PAGES, src, (size_t)warm_pages * 4);

  for (long s = 0; s < warm_samples; s++) {
    double start = now_ns();
    copy_pages(warm, WARM_DST_PAGES, src, (size_t)warm_pages);
    warm_ns[s] = (now_ns() - start) / (double)warm_pages;
  }
  for (long s = 0; s < stream_samples; s++) {
    double start = now_ns();
    copy_pages(region, region_pages, src, region_pages);
    stream_ns[s] = (now_ns() - start) / (double)region_pages;
  }

  unsigned checksum = (unsigned)warm[PAGE_SIZE - 1] + region[region_pages * PAGE_SIZE - 1];
  printf("{\"pageSize\":%u,\"warmDstPages\":%u,\"warmPagesPerSample\":%ld,\"regionPages\":%zu,\"checksum\":%u,",
         PAGE_SIZE, WARM_DST_PAGES, warm_pages, region_pages, checksum);
  print_samples("warmNsPerPage", warm_ns, warm_samples, 0);
  print_samples("streamingNsPerPage", stream_ns, stream_samples, 1);
  printf("}\n");
  free(stream_ns);
  free(warm_ns);
  free(region);
  free(warm);
  free(src);
  return 0;
}
