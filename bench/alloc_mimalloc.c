/* Heap adapter: mimalloc, called by its own names (mi_malloc, ...), so it
 * does not replace the C library's malloc. */
#include <mimalloc.h>

static const char *alloc_name = "mimalloc";
static const int alloc_held_known = 0; /* fragmentation from RSS */

static void alloc_setup(void) {}
static inline void *alloc_malloc(size_t n) { return mi_malloc(n); }
static inline void alloc_free(void *p) { mi_free(p); }
static inline void *alloc_realloc(void *p, size_t n) { return mi_realloc(p, n); }
static uint64_t alloc_held(void) { return 0; }
