/* What user/hello.c leaves in its .data for the kernel's tests to read
 * (kernel/test/test_exec.c includes this too: plain C, no headers). */
#pragma once

#define HELLO_MAGIC_START 0x1111111111111111ul /* as linked */
#define HELLO_MAGIC_DONE  0x48454c4c4f21ul     /* "HELLO!" once main is done */
#define HELLO_RODATA_SUM  381ul                /* the first 16 primes */
#define HELLO_BSS_BYTES   (3 * 4096 + 100)
#define HELLO_PATTERN(i)  ((unsigned char)((i) * 7 + 1))

/* The first object of hello's .data (section .data.first). */
struct hello_report {
    unsigned long magic;      /* HELLO_MAGIC_DONE when main got to its end */
    unsigned long rodata_sum; /* sum of the .rodata array */
    unsigned long data_ok;    /* 1: .data arrived with its initial values */
    unsigned long bss_zero;   /* bytes of the .bss array found zero */
    unsigned long bss_addr;   /* where that array is (it then holds HELLO_PATTERN) */
    unsigned long argc;
    unsigned long argv_null;  /* 1: argv[argc] was NULL */
    char arg0[32];            /* argv[0], truncated */
};
