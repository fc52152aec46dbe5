/* bench/naive_heap.h: first-fit over one list of segments. */
#include "naive_heap.h"

#include <string.h>

#include "mm/frame.h"
#include "mm/mm.h"

#define GROW_PAGES 16 /* pages taken at a time (more when one request needs it) */

struct nseg {
    size_t size;              /* payload bytes after this header */
    int free;
    struct nseg *next, *prev; /* address order within the list */
};
#define HDR sizeof(struct nseg)

static struct nseg *head, *tail;
static uint64_t held;

static struct nseg *seg_end(struct nseg *s)
{
    return (struct nseg *)((char *)(s + 1) + s->size);
}

/* Merges s with its successor when both are free and touch in memory. */
static void merge_next(struct nseg *s)
{
    struct nseg *n = s->next;
    if (n && n->free && s->free && seg_end(s) == n) {
        s->size += HDR + n->size;
        s->next = n->next;
        if (n->next)
            n->next->prev = s;
        else
            tail = s;
    }
}

static struct nseg *grow(size_t n)
{
    size_t pages = (n + HDR + PAGE_SIZE - 1) / PAGE_SIZE;
    if (pages < GROW_PAGES)
        pages = GROW_PAGES;
    paddr_t p = frame_alloc_contig(pages, PAGE_SIZE);
    if (!p)
        return NULL;
    held += pages * PAGE_SIZE;
    struct nseg *s = PHYS2VIRT(p);
    s->size = pages * PAGE_SIZE - HDR;
    s->free = 1;
    s->next = NULL;
    s->prev = tail;
    if (tail)
        tail->next = s;
    else
        head = s;
    tail = s;
    if (s->prev && s->prev->free && seg_end(s->prev) == s) {
        s = s->prev;
        merge_next(s);
    }
    return s;
}

void *naive_malloc(size_t n)
{
    if (n == 0)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    struct nseg *s = head;
    while (s && !(s->free && s->size >= n))
        s = s->next;
    if (!s && !(s = grow(n)))
        return NULL;
    if (s->size >= n + HDR + 16) { /* split off the rest */
        struct nseg *r = (struct nseg *)((char *)(s + 1) + n);
        r->size = s->size - n - HDR;
        r->free = 1;
        r->next = s->next;
        r->prev = s;
        if (s->next)
            s->next->prev = r;
        else
            tail = r;
        s->next = r;
        s->size = n;
    }
    s->free = 0;
    return s + 1;
}

void naive_free(void *p)
{
    if (!p)
        return;
    struct nseg *s = (struct nseg *)p - 1;
    s->free = 1;
    merge_next(s);
    if (s->prev && s->prev->free)
        merge_next(s->prev);
}

void *naive_realloc(void *p, size_t n)
{
    if (!p)
        return naive_malloc(n);
    struct nseg *s = (struct nseg *)p - 1;
    if (n <= s->size)
        return p;
    void *q = naive_malloc(n);
    if (q) {
        memcpy(q, p, s->size);
        naive_free(p);
    }
    return q;
}

uint64_t naive_held_bytes(void)
{
    return held;
}
