/* malloc over mmap (stdlib.h).
 *
 * Every block starts with a 16-byte header holding its size: for a small
 * block the size of its class (header included), for a big one the length
 * of its own mapping with BIG set. The pointer handed out is just past the
 * header, so 16-byte aligned since both arenas and mappings are page
 * aligned and every class is a multiple of 16.
 *
 * Small blocks (up to MALLOC_SMALL_MAX bytes asked) come from one free list
 * per class; an empty list is refilled by carving the block from the
 * current arena (ARENA_BYTES mapped at a time, bump allocated). Freed small
 * blocks go back on their class's list and are never unmapped: the memory
 * of a process's small blocks is bounded by its peak use. A big block is a
 * mapping of its own, unmapped by free.
 *
 * One spinlock guards the lists and the arena, so threads may share the
 * heap. The lock is not taken around mmap/munmap of big blocks (they share
 * nothing). */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#define HDR         16
#define BIG         1ul
#define ARENA_BYTES (64ul * 1024)
#define PAGE        4096ul

/* The class sizes, header included; the last is MALLOC_SMALL_MAX + HDR. */
static const unsigned long class_size[] = {32,  48,  64,   96,   128,  192,  256, 384,
                                           512, 768, 1024, 1536, 2048, 3072, 4096};
#define NCLASS (sizeof(class_size) / sizeof(class_size[0]))
_Static_assert(MALLOC_SMALL_MAX + HDR == 4096, "the last class holds MALLOC_SMALL_MAX");

struct free_block {
    unsigned long size; /* the header's word */
    unsigned long pad;
    struct free_block *next;
};

static struct free_block *free_list[NCLASS];
static char *arena_next, *arena_end;
static int heap_lock;

static void lock(void)
{
    while (__atomic_exchange_n(&heap_lock, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&heap_lock, __ATOMIC_RELAXED))
            __builtin_ia32_pause();
}

static void unlock(void)
{
    __atomic_store_n(&heap_lock, 0, __ATOMIC_RELEASE);
}

static unsigned class_of(size_t total)
{
    unsigned c = 0;
    while (class_size[c] < total)
        c++;
    return c;
}

/* A block of class c from the arena, or NULL when mmap failed. Called locked.
 * What is left of an arena too small for the block is given to the lists of
 * the smaller classes, so nothing is lost. */
static struct free_block *carve(unsigned c)
{
    unsigned long need = class_size[c];
    if ((unsigned long)(arena_end - arena_next) < need) {
        for (unsigned k = NCLASS; k-- > 0;) {
            while ((unsigned long)(arena_end - arena_next) >= class_size[k]) {
                struct free_block *b = (struct free_block *)(void *)arena_next;
                b->size = class_size[k];
                b->next = free_list[k];
                free_list[k] = b;
                arena_next += class_size[k];
            }
        }
        void *m = mmap(NULL, ARENA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        arena_next = m;
        arena_end = arena_next + ARENA_BYTES;
    }
    struct free_block *b = (struct free_block *)(void *)arena_next;
    arena_next += need;
    b->size = need;
    return b;
}

void *malloc(size_t size)
{
    if (size > MALLOC_SMALL_MAX) {
        if (size > (size_t)1 << 46) { /* more than any address space */
            errno = ENOMEM;
            return NULL;
        }
        unsigned long len = (size + HDR + PAGE - 1) & ~(PAGE - 1);
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            errno = ENOMEM;
            return NULL;
        }
        *(unsigned long *)m = len | BIG;
        return (char *)m + HDR;
    }
    unsigned c = class_of(size + HDR);
    lock();
    struct free_block *b = free_list[c];
    if (b)
        free_list[c] = b->next;
    else
        b = carve(c);
    unlock();
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    return (char *)b + HDR;
}

/* The bytes a block can hold. */
static size_t usable(void *p)
{
    unsigned long h = *(unsigned long *)(void *)((char *)p - HDR);
    return (h & ~BIG) - HDR;
}

void free(void *p)
{
    if (!p)
        return;
    struct free_block *b = (struct free_block *)(void *)((char *)p - HDR);
    if (b->size & BIG) {
        munmap(b, b->size & ~BIG);
        return;
    }
    unsigned c = class_of(b->size);
    lock();
    b->next = free_list[c];
    free_list[c] = b;
    unlock();
}

void *calloc(size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = malloc(n * size);
    if (p && n * size <= MALLOC_SMALL_MAX) /* big blocks come fresh from mmap: zero */
        memset(p, 0, n * size);
    return p;
}

void *realloc(void *p, size_t size)
{
    if (!p)
        return malloc(size);
    if (size == 0) {
        free(p);
        return NULL;
    }
    size_t have = usable(p);
    if (size <= have && (size > MALLOC_SMALL_MAX || have <= MALLOC_SMALL_MAX))
        return p; /* fits where it is (a big block shrinking stays mapped whole) */
    void *q = malloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, size < have ? size : have);
    free(p);
    return q;
}
