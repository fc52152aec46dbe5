/* ThreadSanitizer test of mm/paging's per-address-space lock (make
 * tsan-test): threads standing for CPUs map, query, protect and unmap
 * disjoint ranges of one live address space at once. The ranges share page
 * tables (eight threads' 4 KiB ranges lie in one PT, their 2 MiB pages in one
 * PD), so every operation changes tables another thread walks; only as->lock
 * orders that, and TSan reports any access it does not. Afterwards each
 * thread's final mappings are checked, then everything is unmapped and the
 * table count, the frame count and frame_check must be back at baseline. */
#include <pthread.h>
#include <stdio.h>

#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "support.h"

#define CPUS   4
#define ROUNDS 150
#define PAGES  32                          /* 4 KiB pages per thread per round */
#define VA     0x0000400000000000ULL       /* 4 KiB ranges: PAGES * 4 KiB apart */
#define VA_2M  (VA + GiB(1))               /* 2 MiB pages: 4 MiB apart */
#define PA     0x0000000123400000ULL

static struct addrspace as;
static unsigned errors[CPUS]; /* written by its thread only */

#define CHECK(k, cond, ...)                                               \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "tsan_paging: CPU %u: ", k);                  \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
            errors[k]++;                                                  \
            return NULL;                                                  \
        }                                                                 \
    } while (0)

static vaddr_t base_4k(unsigned k) { return VA + (uint64_t)k * PAGES * PAGE_SIZE; }
static vaddr_t base_2m(unsigned k) { return VA_2M + (uint64_t)k * MiB(4); }

static void *cpu_main(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg;
    host_cpu_index = k;
    vaddr_t va = base_4k(k), big = base_2m(k);
    paddr_t pa = PA + (uint64_t)k * MiB(2);
    for (unsigned r = 0; r < ROUNDS; r++) {
        CHECK(k, paging_map_range(&as, pa, va, PAGES * PAGE_SIZE, PAGE_WRITABLE | PAGE_NX,
                                  CACHE_WB, 0) == 0, "map_range");
        CHECK(k, paging_map_in(&as, pa, big, PAGE_SIZE_2M, PAGE_WRITABLE, CACHE_WB, 0) == 0,
              "map 2M");
        for (unsigned i = 0; i < PAGES; i++)
            CHECK(k, paging_translate_in(&as, va + i * PAGE_SIZE) == pa + i * PAGE_SIZE,
                  "translate page %u", i);
        /* the upper half read-only, then the 2 MiB page split by a protect of one 4 KiB page */
        CHECK(k, paging_protect(&as, va + PAGES / 2 * PAGE_SIZE, PAGES / 2 * PAGE_SIZE, PAGE_NX,
                                CACHE_WB) == 0, "protect");
        CHECK(k, paging_protect(&as, big + PAGE_SIZE, PAGE_SIZE, PAGE_NX, CACHE_WB) == 0,
              "protect inside 2M");
        struct paging_mapping m;
        CHECK(k, paging_query(&as, va + (PAGES - 1) * PAGE_SIZE, &m) && !(m.flags & PAGE_WRITABLE),
              "read-only after protect");
        CHECK(k, paging_query(&as, big + PAGE_SIZE, &m) && m.page_size == PAGE_SIZE_4K &&
                     m.phys == pa + PAGE_SIZE, "split 2M page");
        if (r == ROUNDS - 1)
            break; /* the last round's mappings stay for the final check */
        for (unsigned i = 0; i < PAGES / 2; i++) /* the 4 KiB fast path */
            CHECK(k, paging_unmap_in(&as, va + i * PAGE_SIZE, PAGE_SIZE_4K) == 0, "unmap %u", i);
        CHECK(k, paging_unmap_range(&as, va, PAGES * PAGE_SIZE) == 0, "unmap_range");
        CHECK(k, paging_unmap_range(&as, big, PAGE_SIZE_2M) == 0, "unmap 2M");
        CHECK(k, paging_translate_in(&as, va) == PAGING_NO_MAPPING, "unmapped");
    }
    return NULL;
}

static uint64_t free_frames(void)
{
    struct frame_stats fs;
    frame_get_stats(&fs);
    return fs.free_frames;
}

int main(void)
{
    host_arena_init(MiB(64));
    struct mem_region map[] = {
        {0, MiB(1), MEM_RESERVED},
        {MiB(1), MiB(63), MEM_USABLE},
    };
    frame_init(map, 2);
    uint64_t base_free = free_frames(), base_tables = paging_table_pages();
    if (paging_as_create(&as)) {
        fprintf(stderr, "tsan_paging: no address space\n");
        return 1;
    }
    paging_activate(&as); /* live: invalidations and shootdowns on every change */
    host_shootdown_count = 0;

    pthread_t th[CPUS];
    for (unsigned k = 0; k < CPUS; k++)
        if (pthread_create(&th[k], NULL, cpu_main, (void *)(uintptr_t)k)) {
            fprintf(stderr, "tsan_paging: pthread_create failed\n");
            return 1;
        }
    for (unsigned k = 0; k < CPUS; k++)
        pthread_join(th[k], NULL);
    unsigned bad = 0;
    for (unsigned k = 0; k < CPUS; k++)
        bad += errors[k];
    if (bad)
        return 1;

    /* every thread's last round is still mapped, exactly */
    for (unsigned k = 0; k < CPUS; k++) {
        paddr_t pa = PA + (uint64_t)k * MiB(2);
        for (unsigned i = 0; i < PAGES; i++) {
            struct paging_mapping m;
            if (!paging_query(&as, base_4k(k) + i * PAGE_SIZE, &m) ||
                m.phys != pa + i * PAGE_SIZE || ((m.flags & PAGE_WRITABLE) != 0) != (i < PAGES / 2)) {
                fprintf(stderr, "tsan_paging: CPU %u page %u: wrong final mapping\n", k, i);
                return 1;
            }
        }
        if (paging_translate_in(&as, base_2m(k) + MiB(2) - 1) != pa + MiB(2) - 1) {
            fprintf(stderr, "tsan_paging: CPU %u: 2 MiB range lost\n", k);
            return 1;
        }
    }
    if (host_shootdown_count == 0) {
        fprintf(stderr, "tsan_paging: unmaps of a live address space made no shootdown\n");
        return 1;
    }
    for (unsigned k = 0; k < CPUS; k++)
        if (paging_unmap_range(&as, base_4k(k), PAGES * PAGE_SIZE) ||
            paging_unmap_range(&as, base_2m(k), PAGE_SIZE_2M)) {
            fprintf(stderr, "tsan_paging: final unmap failed\n");
            return 1;
        }
    if (as.table_pages != 1) {
        fprintf(stderr, "tsan_paging: %llu table pages left, want the PML4 only\n",
                (unsigned long long)as.table_pages);
        return 1;
    }
    paging_activate(&(struct addrspace){0});
    paging_as_destroy(&as);
    if (paging_table_pages() != base_tables || free_frames() != base_free || !frame_check()) {
        fprintf(stderr, "tsan_paging: tables %llu (was %llu), free frames %llu (was %llu), "
                        "frame_check %d\n",
                (unsigned long long)paging_table_pages(), (unsigned long long)base_tables,
                (unsigned long long)free_frames(), (unsigned long long)base_free, frame_check());
        return 1;
    }
    printf("tsan_paging: %u CPUs x %u rounds on one address space, %lu shootdowns: ok\n", CPUS,
           ROUNDS, host_shootdown_count);
    return 0;
}
