/* Basic types shared by every part of the kernel (and by the host builds). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A physical address. Never dereference it: go through PHYS2VIRT. */
typedef uint64_t paddr_t;
/* A virtual address held as a number (for page-table arithmetic). */
typedef uint64_t vaddr_t;

#define PAGE_SIZE  4096ULL
#define PAGE_SHIFT 12
#define KiB(x) ((uint64_t)(x) << 10)
#define MiB(x) ((uint64_t)(x) << 20)
#define GiB(x) ((uint64_t)(x) << 30)

#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define ALIGN_UP(x, a)   ALIGN_DOWN((x) + (uint64_t)(a) - 1, (a))
#define IS_ALIGNED(x, a) (((x) & ((uint64_t)(a) - 1)) == 0)
#define ARRAY_SIZE(a)    (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define NORETURN __attribute__((noreturn))
#define PACKED   __attribute__((packed))
#define UNUSED   __attribute__((unused))
