/* Heap adapter: glibc malloc (the C library of this machine). */
#include <malloc.h>

static const char *alloc_name = "glibc";
static const int alloc_held_known = 0; /* fragmentation from RSS */

static void alloc_setup(void) {}
static inline void *alloc_malloc(size_t n) { return malloc(n); }
static inline void alloc_free(void *p) { free(p); }
static inline void *alloc_realloc(void *p, size_t n) { return realloc(p, n); }
static uint64_t alloc_held(void) { return 0; }
