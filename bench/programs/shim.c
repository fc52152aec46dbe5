/* libslayer-malloc.so: the kernel heap (kernel/mm/heap*.c over kernel/mm/frame.c)
 * as the C library's malloc family, for LD_PRELOAD (make bench-programs).
 *
 * Built with -DHEAP_POISON=0 (no fill of freed memory: a debug aid) and
 * nothing else switched off: every misuse check of the heap (double free,
 * invalid or foreign pointer, overwritten header) stays on and, as in the
 * host tests' support.c, prints "PANIC at ...: heap: ..." on stderr and
 * aborts. Only the malloc family is exported (-fvisibility=hidden).
 *
 * Memory: one MAP_NORESERVE arena stands for physical memory (host_arena_init),
 * SLAYER_MALLOC_ARENA bytes (suffix K, M, G; default 8 GiB), set up lazily by
 * the first call. Pages are backed when the heap first touches them. The
 * frame allocator's set-up grows with the arena (every process pays it, and
 * gcc starts several), so the default is what the programs need with room
 * to spare rather than the most the address space allows.
 *
 * Threads stand for CPUs, as the heap's per-CPU design expects: each thread
 * takes a free index (slot) 0 .. CPU_MAX - 2 on its first call and keeps it
 * until it exits (a pthread key destructor gives it back), so no two running
 * threads ever share an index. Index CPU_MAX - 1 is shared: threads that find
 * no free slot (more than CPU_MAX - 1 alive at once) and threads past their
 * key destructor use it under shared_lock, one at a time. That is correct for
 * any number of threads and costs a mutex only past 15 live threads.
 *
 * fork(): the child must not inherit a heap lock held by a thread that does
 * not exist in it. Every call through a slot sets its thread's in_heap flag
 * (a plain store, then a plain load of gate: no atomic instruction on the
 * fast path); the fork prepare handler takes shared_lock, sets GATE_FORK in
 * gate, makes every thread of the process execute a full barrier
 * (membarrier, the asymmetric half of a Dekker handshake), then waits until
 * no slot is in the heap; new calls wait at the door. So no heap lock is held
 * across fork. The child keeps only the forking thread's slot. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/x86_64/cpu_local.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "support.h"

#define EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define SHARED_SLOT (CPU_MAX - 1)
#define DEFAULT_ARENA (8ull << 30)

/* This thread's state: one thread-local block (%fs-relative accesses). */
struct thread_state {
    /* 1 while this thread is inside the heap through its own slot. */
    volatile int in_heap;
    /* 1 while the thread owns a slot: the fast path is open to it. */
    int ready;
    /* The slot + 1; 0: none yet; -1: exited (key destructor ran), uses the
     * shared slot from then on. */
    int slot;
    /* fork_prepare ran on this thread and has not finished. */
    bool forking;
};
static __thread struct thread_state me;

/* Each taken slot's owner's in_heap flag, for fork_prepare to wait on. */
static volatile int *slot_flag[CPU_MAX];
/* Bit i set: slot i belongs to a live thread. */
static unsigned slots_used;
/* 0: not set up, 1: being set up, 2: ready. */
static int init_state;
/* Nonzero sends every call through enter_slow: GATE_FORK while a fork is
 * being prepared; GATE_FENCE for good when membarrier is missing (the slow
 * path then fences every call itself). */
#define GATE_FORK 1
#define GATE_FENCE 2
static int gate;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;

enum mode { MODE_SLOT, MODE_SHARED, MODE_FORKER };

static uint64_t arena_size_from_env(void)
{
    const char *s = getenv("SLAYER_MALLOC_ARENA");
    if (!s || !*s)
        return DEFAULT_ARENA;
    char *end;
    uint64_t v = strtoull(s, &end, 0);
    switch (*end) {
    case 'k': case 'K': v <<= 10; break;
    case 'm': case 'M': v <<= 20; break;
    case 'g': case 'G': v <<= 30; break;
    default: break;
    }
    return v < (64ull << 20) ? (64ull << 20) : v;
}

static void thread_gone(void *unused);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

/* Makes slot i this thread's. */
static void own_slot(unsigned i)
{
    __atomic_store_n(&slot_flag[i], &me.in_heap, __ATOMIC_RELEASE);
    me.slot = (int)i + 1;
    me.ready = 1;
    host_cpu_index = i;
}

/* Maps the arena and starts the frame allocator and the heap, once; the
 * caller becomes slot 0. Other threads arriving meanwhile wait. */
static void shim_init(void)
{
    int expect = 0;
    if (!__atomic_compare_exchange_n(&init_state, &expect, 1, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2)
            sched_yield();
        return;
    }
    uint64_t size = arena_size_from_env() & ~((uint64_t)(1 << 20) - 1);
    host_arena_init(size);
    struct mem_region map[] = {
        {0, 1 << 20, MEM_RESERVED},
        {1 << 20, size - (1 << 20), MEM_USABLE},
    };
    frame_init(map, 2);
    heap_init();
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
        gate = GATE_FENCE;
    if (me.slot == 0) {
        __atomic_fetch_or(&slots_used, 1u, __ATOMIC_RELAXED);
        own_slot(0);
    }
    /* Before any other thread may take a slot (and set the key); glibc's
     * pthread_key_create does not allocate. */
    pthread_key_create(&exit_key, thread_gone);
    __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
    /* May call malloc: the heap is ready and this thread has its slot. */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Key destructor (thread exit): the slot goes back to the pool; any later
 * call of this thread (other destructors) goes through the shared slot. */
static void thread_gone(void *unused)
{
    (void)unused;
    int s = me.slot;
    if (s > 0) {
        me.slot = -1;
        me.ready = 0;
        __atomic_store_n(&slot_flag[s - 1], NULL, __ATOMIC_RELAXED);
        __atomic_fetch_and(&slots_used, ~(1u << (s - 1)), __ATOMIC_RELEASE);
    }
}

/* Gives this thread a free slot if there is one (true), else false. */
static bool take_slot(void)
{
    unsigned used = __atomic_load_n(&slots_used, __ATOMIC_RELAXED);
    for (;;) {
        unsigned freebits = ~used & ((1u << SHARED_SLOT) - 1);
        if (!freebits)
            return false;
        unsigned i = (unsigned)__builtin_ctz(freebits);
        if (__atomic_compare_exchange_n(&slots_used, &used, used | (1u << i), true,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            own_slot(i);
            return true;
        }
    }
}

static __attribute__((noinline)) enum mode enter_slow(void)
{
    if (unlikely(__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2))
        shim_init();
    if (me.forking) /* fork_prepare holds everything: this thread is alone */
        return MODE_FORKER;
    if (me.slot == 0 && take_slot()) {
        /* Outside the heap: pthread_setspecific may itself call calloc. */
        pthread_setspecific(exit_key, (void *)1);
    }
    if (me.ready) {
        for (;;) {
            while (__atomic_load_n(&gate, __ATOMIC_ACQUIRE) & GATE_FORK)
                sched_yield();
            me.in_heap = 1;
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            if (!(__atomic_load_n(&gate, __ATOMIC_RELAXED) & GATE_FORK))
                return MODE_SLOT;
            me.in_heap = 0;
        }
    }
    pthread_mutex_lock(&shared_lock);
    host_cpu_index = SHARED_SLOT;
    return MODE_SHARED;
}

/* Makes this thread the only one inside the heap on its index until
 * leave(); see the top for how. Fast path: a thread-local load, a
 * thread-local store and a load of gate. */
/* enter()'s fast path: true when this thread is now inside the heap on its
 * own slot (leave with leave_slot()), false when it must take enter_slow(). */
static inline __attribute__((always_inline)) bool enter_slot(void)
{
    if (likely(me.ready)) {
        me.in_heap = 1;
        /* the store before the load, for the compiler; membarrier in
         * fork_prepare does the CPU's part */
        __asm__ volatile("" ::: "memory");
        if (likely(!__atomic_load_n(&gate, __ATOMIC_RELAXED)))
            return true;
        me.in_heap = 0;
    }
    return false;
}

static inline __attribute__((always_inline)) void leave_slot(void)
{
    __atomic_store_n(&me.in_heap, 0, __ATOMIC_RELEASE);
}

static inline __attribute__((always_inline)) enum mode enter(void)
{
    return enter_slot() ? MODE_SLOT : enter_slow();
}

static inline __attribute__((always_inline)) void leave(enum mode m)
{
    if (likely(m == MODE_SLOT))
        leave_slot();
    else if (m == MODE_SHARED)
        pthread_mutex_unlock(&shared_lock);
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&shared_lock);
    me.forking = true;
    __atomic_fetch_or(&gate, GATE_FORK, __ATOMIC_SEQ_CST);
    if (!(gate & GATE_FENCE))
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    for (unsigned i = 0; i < CPU_MAX; i++) {
        volatile int *f = __atomic_load_n(&slot_flag[i], __ATOMIC_ACQUIRE);
        while (f && __atomic_load_n(f, __ATOMIC_ACQUIRE))
            sched_yield();
    }
}

static void fork_parent(void)
{
    __atomic_fetch_and(&gate, ~GATE_FORK, __ATOMIC_RELEASE);
    me.forking = false;
    pthread_mutex_unlock(&shared_lock);
}

static void fork_child(void)
{
    /* Only this thread exists: only its slot stays taken. */
    slots_used = me.slot > 0 ? 1u << (me.slot - 1) : 0;
    for (unsigned i = 0; i < CPU_MAX; i++)
        slot_flag[i] = me.slot == (int)i + 1 ? &me.in_heap : NULL;
    gate &= ~GATE_FORK;
    me.forking = false;
    pthread_mutex_unlock(&shared_lock);
}

/* ---- the exported family ---------------------------------------------------------- */

/* malloc's general path: any mode, errno on failure. */
static __attribute__((noinline)) void *alloc_slow(size_t n)
{
    enum mode m = enter();
    void *p = kmalloc(n ? n : 1);
    leave(m);
    if (unlikely(!p))
        errno = ENOMEM;
    return p;
}

/* NULL with errno ENOMEM (kept out of the fast paths). */
static __attribute__((noinline, cold)) void *enomem(void)
{
    errno = ENOMEM;
    return NULL;
}

/* malloc: on the fast path (enter_slot) nothing but the returned pointer
 * lives across the call into the heap (no saved registers, no mode to keep). */
static inline __attribute__((always_inline)) void *alloc(size_t n)
{
    if (likely(enter_slot())) {
        void *p = kmalloc(n ? n : 1);
        leave_slot();
        return likely(p) ? p : enomem();
    }
    return alloc_slow(n);
}

/* A fresh block of at least n bytes (a unique one for n == 0), 16-byte aligned;
 * NULL with errno ENOMEM when there is no memory. */
EXPORT void *malloc(size_t n)
{
    return alloc(n);
}

/* Gives p back (NULL: nothing); a pointer malloc never gave aborts with the
 * heap's message on stderr. */
EXPORT void free(void *p)
{
    if (!p)
        return;
    if (likely(enter_slot())) { /* as in alloc() */
        kfree(p);
        leave_slot();
        return;
    }
    enum mode m = enter_slow();
    kfree(p);
    leave(m);
}

/* free under its old name. */
EXPORT void cfree(void *p)
{
    free(p);
}

/* n * size zeroed bytes; NULL with errno ENOMEM when the product overflows. */
EXPORT void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = alloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

/* glibc's realloc: (NULL, n) is malloc(n); (p, 0) frees p and returns NULL;
 * on failure p stays valid and errno is ENOMEM. */
EXPORT void *realloc(void *p, size_t n)
{
    if (!p)
        return alloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    enum mode m = enter();
    void *q = krealloc(p, n);
    leave(m);
    if (unlikely(!q))
        errno = ENOMEM;
    return q;
}

/* realloc(p, n * size), NULL with errno ENOMEM when the product overflows. */
EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
}

static void *alloc_aligned(size_t align, size_t n)
{
    if (align <= 16)
        return alloc(n);
    enum mode m = enter();
    void *p = kmalloc_aligned(n ? n : 1, align);
    leave(m);
    if (unlikely(!p))
        errno = ENOMEM;
    return p;
}

/* n bytes at a multiple of align; like glibc, an align that is not a power
 * of two is rounded up to one; EINVAL for one above half the address space. */
EXPORT void *memalign(size_t align, size_t n)
{
    if (align > (SIZE_MAX >> 1) + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1))
        align = (size_t)1 << (64 - __builtin_clzl(align));
    return alloc_aligned(align, n);
}

/* C11's name for memalign; glibc 2.36 accepts any align the same way. */
EXPORT void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

/* POSIX: 0 and *out set, EINVAL for an align that is not a power of two
 * multiple of sizeof(void *), ENOMEM without memory; errno is left alone. */
EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (align % sizeof(void *) != 0 || (align & (align - 1)) || align == 0)
        return EINVAL;
    int saved = errno;
    void *p = alloc_aligned(align, n);
    errno = saved;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

/* n bytes at a page boundary. */
EXPORT void *valloc(size_t n)
{
    return alloc_aligned((size_t)sysconf(_SC_PAGESIZE), n);
}

/* n rounded up to whole pages, at a page boundary. */
EXPORT void *pvalloc(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t r;
    if (__builtin_add_overflow(n, pg - 1, &r)) {
        errno = ENOMEM;
        return NULL;
    }
    return alloc_aligned(pg, r & ~(pg - 1));
}

/* Bytes usable at p (>= what was asked for), 0 for NULL. */
EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    enum mode m = enter();
    size_t n = kmalloc_usable_size(p);
    leave(m);
    return n;
}
