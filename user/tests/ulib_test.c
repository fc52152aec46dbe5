/* The host test of the user libc's portable part (make ulib-test): the
 * library compiled for the host with every symbol renamed ulib_* (mk/user.mk),
 * checked against the host's libc. It supplies what the library calls of the
 * system under the prefixed names: mmap and munmap over the host's (counting
 * the live mappings, so a leak or a double unmap shows), and write into a
 * capture buffer. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- the library under test (prefixed names) ---- */
void *ulib_memcpy(void *, const void *, size_t);
void *ulib_memmove(void *, const void *, size_t);
void *ulib_memset(void *, int, size_t);
int ulib_memcmp(const void *, const void *, size_t);
void *ulib_memchr(const void *, int, size_t);
size_t ulib_strlen(const char *);
size_t ulib_strnlen(const char *, size_t);
int ulib_strcmp(const char *, const char *);
int ulib_strncmp(const char *, const char *, size_t);
char *ulib_strchr(const char *, int);
char *ulib_strrchr(const char *, int);
char *ulib_strcpy(char *, const char *);
char *ulib_strncpy(char *, const char *, size_t);
char *ulib_strcat(char *, const char *);
char *ulib_strstr(const char *, const char *);
int ulib_vsnprintf(char *, size_t, const char *, va_list);
int ulib_printf(const char *, ...);
int ulib_puts(const char *);
int ulib_putchar(int);
void *ulib_malloc(size_t);
void ulib_free(void *);
void *ulib_calloc(size_t, size_t);
void *ulib_realloc(void *, size_t);
int ulib_atoi(const char *);
long ulib_strtol(const char *, char **, int);
unsigned long ulib_strtoul(const char *, char **, int);
int ulib_rand(void);
void ulib_srand(unsigned);
extern int ulib_errno;

/* ---- what the library calls ---- */
static long live_maps;      /* mappings made and not yet unmapped */
static long mmap_calls;
static int mmap_fail_after = -1; /* >= 0: that many more mmaps succeed, then ENOMEM */
static char captured[8192];
static size_t captured_len;
static long write_calls;

void *ulib_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
    /* The library's constants are the kernel's (abi.h), Linux's values too. */
    if (addr || fd != -1 || off || prot != (PROT_READ | PROT_WRITE) ||
        flags != (MAP_PRIVATE | MAP_ANONYMOUS) || len == 0 || len % 4096) {
        fprintf(stderr, "ulib_mmap: unexpected call (%p, %zu, %d, %#x, %d, %ld)\n", addr, len,
                prot, flags, fd, off);
        abort();
    }
    if (mmap_fail_after == 0) {
        ulib_errno = 12;
        return MAP_FAILED;
    }
    if (mmap_fail_after > 0)
        mmap_fail_after--;
    void *m = mmap(NULL, len, prot, flags, -1, 0);
    if (m == MAP_FAILED)
        abort();
    live_maps++;
    mmap_calls++;
    return m;
}

int ulib_munmap(void *addr, size_t len)
{
    if ((uintptr_t)addr % 4096 || len % 4096 || munmap(addr, len) != 0) {
        fprintf(stderr, "ulib_munmap: bad unmap %p %zu\n", addr, len);
        abort();
    }
    live_maps--;
    return 0;
}

long ulib_write(int fd, const void *buf, size_t len)
{
    if (fd != 1 || captured_len + len > sizeof(captured))
        abort();
    memcpy(captured + captured_len, buf, len);
    captured_len += len;
    write_calls++;
    return (long)len;
}

/* ---- checking ---- */
static int failures;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

static void test_string(void)
{
    char a[300], b[300], c[300];
    for (int i = 0; i < 300; i++)
        a[i] = (char)(i * 31 + 7);
    /* every alignment and length, copies compared with the host's */
    for (int so = 0; so < 9; so++)
        for (int dof = 0; dof < 9; dof++)
            for (int n = 0; n < 80; n++) {
                memset(b, 0x55, sizeof(b));
                memset(c, 0x55, sizeof(c));
                CHECK(ulib_memcpy(b + dof, a + so, (size_t)n) == b + dof, "memcpy result");
                memcpy(c + dof, a + so, (size_t)n);
                CHECK(memcmp(b, c, sizeof(b)) == 0, "memcpy so %d do %d n %d", so, dof, n);
                memset(b, 0x11, sizeof(b));
                memset(c, 0x11, sizeof(c));
                CHECK(ulib_memset(b + dof, so * 20, (size_t)n) == b + dof, "memset result");
                memset(c + dof, so * 20, (size_t)n);
                CHECK(memcmp(b, c, sizeof(b)) == 0, "memset do %d n %d", dof, n);
            }
    /* memmove both ways, overlapping */
    for (int shift = -20; shift <= 20; shift++)
        for (int n = 0; n < 100; n += 7) {
            memcpy(b, a, sizeof(b));
            memcpy(c, a, sizeof(c));
            ulib_memmove(b + 100 + shift, b + 100, (size_t)n);
            memmove(c + 100 + shift, c + 100, (size_t)n);
            CHECK(memcmp(b, c, sizeof(b)) == 0, "memmove shift %d n %d", shift, n);
        }
    const char *words[] = {"", "a", "ab", "abc", "abd", "b", "\xff", "abcdefgh", "abcdefgi"};
    size_t nw = sizeof(words) / sizeof(words[0]);
    for (size_t i = 0; i < nw; i++) {
        CHECK(ulib_strlen(words[i]) == strlen(words[i]), "strlen %zu", i);
        CHECK(ulib_strnlen(words[i], 2) == strnlen(words[i], 2), "strnlen %zu", i);
        for (size_t j = 0; j < nw; j++) {
            CHECK(sign(ulib_strcmp(words[i], words[j])) == sign(strcmp(words[i], words[j])),
                  "strcmp '%s' '%s'", words[i], words[j]);
            for (size_t n = 0; n < 5; n++)
                CHECK(sign(ulib_strncmp(words[i], words[j], n)) ==
                          sign(strncmp(words[i], words[j], n)),
                      "strncmp '%s' '%s' %zu", words[i], words[j], n);
            size_t n = strlen(words[i]) < strlen(words[j]) ? strlen(words[i]) : strlen(words[j]);
            CHECK(sign(ulib_memcmp(words[i], words[j], n + 1)) ==
                      sign(memcmp(words[i], words[j], n + 1)),
                  "memcmp '%s' '%s'", words[i], words[j]);
        }
    }
    const char *s = "hello, world";
    CHECK(ulib_strchr(s, 'o') == strchr(s, 'o'), "strchr");
    CHECK(ulib_strchr(s, 0) == s + 12, "strchr NUL");
    CHECK(ulib_strchr(s, 'z') == NULL, "strchr missing");
    CHECK(ulib_strrchr(s, 'o') == strrchr(s, 'o'), "strrchr");
    CHECK(ulib_memchr(s, 'w', 12) == s + 7 && ulib_memchr(s, 'w', 7) == NULL, "memchr");
    CHECK(ulib_strstr(s, "wor") == s + 7 && ulib_strstr(s, "") == s &&
              ulib_strstr(s, "xyz") == NULL, "strstr");
    char d[16];
    CHECK(ulib_strcpy(d, "abc") == d && strcmp(d, "abc") == 0, "strcpy");
    CHECK(ulib_strcat(d, "def") == d && strcmp(d, "abcdef") == 0, "strcat");
    memset(d, 'x', sizeof(d));
    ulib_strncpy(d, "ab", 6);
    CHECK(memcmp(d, "ab\0\0\0\0xx", 8) == 0, "strncpy pads with NULs");
    ulib_strncpy(d, "abcdefgh", 3);
    CHECK(memcmp(d, "abc\0", 4) == 0, "strncpy truncates without NUL");
}

static int fmt_one(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = ulib_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* The same format and value through both; compares the text and the count,
 * whole and into a buffer too small. */
#define SAME(fmt, ...)                                                                 \
    do {                                                                               \
        char mine[256], host[256];                                                     \
        int m = fmt_one(mine, sizeof(mine), fmt, __VA_ARGS__);                         \
        int h = snprintf(host, sizeof(host), fmt, __VA_ARGS__);                        \
        CHECK(m == h && strcmp(mine, host) == 0, "format \"%s\": \"%s\" (%d), host \"%s\" (%d)", \
              fmt, mine, m, host, h);                                                  \
        char small[5];                                                                 \
        memset(small, 'Z', sizeof(small));                                             \
        m = fmt_one(small, 4, fmt, __VA_ARGS__);                                       \
        CHECK(m == h && strncmp(small, host, 3) == 0 && small[h < 3 ? h : 3] == 0 &&   \
                  small[4] == 'Z',                                                     \
              "format \"%s\" into 4 bytes", fmt);                                      \
    } while (0)

static void test_printf(void)
{
    static const long long vals[] = {0, 1, -1, 7, -42, 123456789, -2147483648LL, 2147483647,
                                     4294967295LL, 0x7fffffffffffffffLL, -0x7fffffffffffffffLL - 1};
    static const char *ifmts[] = {"%d", "%i", "%5d", "%-5d|", "%05d", "%-05d|", "%.3d", "%8.3d",
                                  "%u", "%x", "%X", "%08x", "%-8x|", "%1d", "%.0d", "[%3u]",
                                  "%+d", "% d", "%+05d", "% -6d|", "%+ d"};
    static const char *lfmts[] = {"%ld", "%lu", "%lx", "%lX", "%20ld", "%-20lu|", "%020lx",
                                  "%lld", "%llu", "%llx", "%zu", "%zx", "%li", "%.10ld", "%+ld"};
    for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
        for (size_t f = 0; f < sizeof(ifmts) / sizeof(ifmts[0]); f++)
            SAME(ifmts[f], (int)vals[v]);
        for (size_t f = 0; f < sizeof(lfmts) / sizeof(lfmts[0]); f++)
            SAME(lfmts[f], (long)vals[v]);
        SAME("%hd %hhu", (int)vals[v], (int)vals[v]);
    }
    SAME("%s", "hello");
    SAME("%10s|", "hi");
    SAME("%-10s|", "hi");
    SAME("%.2s|", "hello");
    SAME("%*d|%-*d|", 6, 42, 6, 42);
    SAME("%.*s|", 3, "abcdef");
    SAME("%c%c%c", 'a', 'b', 'c');
    SAME("%3c|%-3c|", 'x', 'y');
    SAME("100%% %s", "sure");
    SAME("%p", (void *)0x1234abcdUL);
    SAME("%p %p", (void *)0xffffffff80000000UL, (void *)0x400000UL);
    SAME("%s=%d %s=%lx", "a", 1, "b", 0xdeadbeefUL);
    SAME("plain text, no conversion%s", "");
    /* a long output is counted whole */
    char big[8];
    CHECK(fmt_one(big, sizeof(big), "%s%s", "0123456789", "abcdef") == 16 &&
              strcmp(big, "0123456") == 0, "long output: \"%s\"", big);
    CHECK(fmt_one(NULL, 0, "%d", 12345) == 5, "size 0 only counts");

    /* printf: one write per call */
    captured_len = 0;
    long before = write_calls;
    CHECK(ulib_printf("x=%d y=%s\n", 5, "ok") == 9, "printf count");
    CHECK(write_calls == before + 1, "printf is one write");
    CHECK(ulib_puts("line") == 5 && ulib_putchar('!') == '!', "puts, putchar");
    CHECK(write_calls == before + 3, "puts and putchar are one write each");
    CHECK(captured_len == 15 && memcmp(captured, "x=5 y=ok\nline\n!", 15) == 0,
          "output \"%.*s\"", (int)captured_len, captured);
}

static void test_stdlib(void)
{
    const char *nums[] = {"0", "42", "-17", "  +99", "0x1f", "0755", "12abc", "", "-", "0x",
                          "2147483647", "-2147483648"};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        for (int base = 0; base <= 16; base += (base == 0 ? 8 : base == 8 ? 2 : 6)) {
            char *e1, *e2;
            long a = ulib_strtol(nums[i], &e1, base), b = strtol(nums[i], &e2, base);
            CHECK(a == b && e1 == e2, "strtol(\"%s\", %d): %ld end +%td, host %ld +%td", nums[i],
                  base, a, e1 - nums[i], b, e2 - nums[i]);
            unsigned long ua = ulib_strtoul(nums[i], &e1, base), ub = strtoul(nums[i], &e2, base);
            CHECK(ua == ub && e1 == e2, "strtoul(\"%s\", %d)", nums[i], base);
        }
        CHECK(ulib_atoi(nums[i]) == atoi(nums[i]), "atoi(\"%s\")", nums[i]);
    }
    CHECK(ulib_strtoul("ff", NULL, 16) == 255 && ulib_strtoul("z", NULL, 36) == 35 &&
              ulib_strtoul("101", NULL, 2) == 5, "bases");
    /* rand: in range, not constant, reproducible from a seed */
    ulib_srand(7);
    int first[8], differ = 0;
    for (int i = 0; i < 8; i++) {
        first[i] = ulib_rand();
        CHECK(first[i] >= 0, "rand %d", first[i]);
        differ += i && first[i] != first[i - 1];
    }
    CHECK(differ >= 6, "rand varies");
    ulib_srand(7);
    for (int i = 0; i < 8; i++)
        CHECK(ulib_rand() == first[i], "srand reproduces");
}

/* Random malloc/free/realloc, each block filled with a pattern of its own and
 * checked before it changes; then everything freed. */
static void test_malloc(void)
{
    enum { SLOTS = 512, ROUNDS = 60000 };
    static unsigned char *p[SLOTS];
    static size_t len[SLOTS];
    static unsigned char tag[SLOTS];
    unsigned long seed = 12345;
    long big_live = 0;
    for (int r = 0; r < ROUNDS; r++) {
        seed = seed * 6364136223846793005ul + 1442695040888963407ul;
        unsigned i = (unsigned)(seed >> 33) % SLOTS;
        unsigned kind = (unsigned)(seed >> 20) % 16;
        size_t n = kind < 10   ? (seed >> 40) % 64
                   : kind < 14 ? (seed >> 40) % 4200
                               : (seed >> 40) % 70000;
        if (p[i]) {
            for (size_t k = 0; k < len[i]; k++)
                if (p[i][k] != (unsigned char)(tag[i] + k)) {
                    CHECK(0, "block %u (%zu bytes) corrupted at %zu", i, len[i], k);
                    return;
                }
        }
        if (p[i] && (seed >> 60) < 8) { /* realloc keeps the common prefix */
            unsigned char *q = ulib_realloc(p[i], n ? n : 1);
            CHECK(q && ((uintptr_t)q & 15) == 0, "realloc %zu", n);
            size_t keep = len[i] < (n ? n : 1) ? len[i] : (n ? n : 1);
            for (size_t k = 0; k < keep; k++)
                if (q[k] != (unsigned char)(tag[i] + k)) {
                    CHECK(0, "realloc lost byte %zu of %zu", k, keep);
                    return;
                }
            p[i] = q;
            len[i] = n ? n : 1;
        } else {
            ulib_free(p[i]);
            p[i] = (seed >> 61) == 0 ? ulib_calloc(1, n) : ulib_malloc(n);
            CHECK(p[i] && ((uintptr_t)p[i] & 15) == 0, "malloc %zu", n);
            if ((seed >> 61) == 0)
                for (size_t k = 0; k < n; k++)
                    if (p[i][k]) {
                        CHECK(0, "calloc(%zu) byte %zu not zero", n, k);
                        return;
                    }
            len[i] = n;
        }
        tag[i] = (unsigned char)(seed >> 8);
        for (size_t k = 0; k < len[i]; k++)
            p[i][k] = (unsigned char)(tag[i] + k);
    }
    for (int i = 0; i < SLOTS; i++) {
        big_live += len[i] > 4080;
        ulib_free(p[i]);
        p[i] = NULL;
    }
    CHECK(big_live > 0, "some big blocks were live at the end");
    /* every big block unmapped: what is left are the small-block arenas */
    long arenas = live_maps;
    void *x = ulib_malloc(100000);
    CHECK(live_maps == arenas + 1, "a big block is a mapping of its own");
    ulib_free(x);
    CHECK(live_maps == arenas, "free unmaps a big block");
    CHECK(arenas > 0 && arenas < 64, "%ld arenas for the small blocks", arenas);
    /* freed small blocks are reused: no new arena for the same sizes again */
    long calls = mmap_calls;
    void *again[200];
    for (int i = 0; i < 200; i++)
        again[i] = ulib_malloc(40);
    for (int i = 0; i < 200; i++)
        ulib_free(again[i]);
    for (int i = 0; i < 200; i++)
        again[i] = ulib_malloc(40);
    for (int i = 0; i < 200; i++)
        ulib_free(again[i]);
    CHECK(mmap_calls - calls <= 1, "small blocks are reused (%ld new mappings)", mmap_calls - calls);
    /* out of memory: NULL and ENOMEM, nothing broken afterwards */
    mmap_fail_after = 0;
    ulib_errno = 0;
    CHECK(ulib_malloc(1 << 20) == NULL && ulib_errno == 12, "malloc fails with ENOMEM");
    CHECK(ulib_calloc((size_t)1 << 40, (size_t)1 << 40) == NULL, "calloc overflow");
    mmap_fail_after = -1;
    void *y = ulib_malloc(1 << 20);
    CHECK(y != NULL, "malloc works again");
    ulib_free(y);
    CHECK(ulib_realloc(NULL, 10) != NULL, "realloc(NULL) is malloc");
}

int main(void)
{
    test_string();
    test_printf();
    test_stdlib();
    test_malloc();
    if (failures) {
        fprintf(stderr, "ulib-test: %d failures\n", failures);
        return 1;
    }
    printf("ulib-test: string, printf, stdlib, malloc ok\n");
    return 0;
}
