/* bench/frame_peers.h: next-fit byte map and free-frame stack. */
#include "frame_peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static uint8_t *bytemap;
static uint64_t nframes, cursor;
static uint64_t *stack;
static uint64_t sp;

/* Zero-filled memory straight from the kernel (lazily backed). */
static void *big_alloc(uint64_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        perror("frame_peers: mmap");
        abort();
    }
    return p;
}

void peers_init(uint64_t frames)
{
    nframes = frames;
    bytemap = big_alloc(frames);
    memset(bytemap, 1, frames);
    stack = big_alloc(frames * sizeof(uint64_t));
    sp = 0;
    cursor = 0;
}

void peers_fini(void)
{
    munmap(bytemap, nframes);
    munmap(stack, nframes * sizeof(uint64_t));
}

void peers_seed_free(uint64_t f)
{
    bytemap[f] = 0;
    stack[sp++] = f;
}

uint64_t nextfit_alloc(void)
{
    for (uint64_t n = 0; n < nframes; n++) {
        uint64_t f = cursor;
        cursor = cursor + 1 == nframes ? 0 : cursor + 1;
        if (!bytemap[f]) {
            bytemap[f] = 1;
            return f;
        }
    }
    return 0;
}

void nextfit_free(uint64_t f)
{
    if (!bytemap[f]) {
        fprintf(stderr, "nextfit_free: double free of frame %llu\n", (unsigned long long)f);
        abort();
    }
    bytemap[f] = 0;
}

uint64_t nextfit_alloc_contig(uint64_t count, uint64_t align)
{
    for (uint64_t s = align; s + count <= nframes; s += align) {
        uint64_t k = 0;
        while (k < count && !bytemap[s + k])
            k++;
        if (k == count) {
            memset(bytemap + s, 1, count);
            return s;
        }
    }
    return 0;
}

void nextfit_free_contig(uint64_t f, uint64_t count)
{
    for (uint64_t k = 0; k < count; k++)
        nextfit_free(f + k);
}

uint64_t stack_alloc(void)
{
    return sp ? stack[--sp] : 0;
}

void stack_free(uint64_t f)
{
    stack[sp++] = f;
}
