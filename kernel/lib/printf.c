/* kprintf and friends: one formatter (fmt_core) writing through a small
 * buffered emitter, used both for the sinks and for ksnprintf. Portable:
 * compiled for the kernel and for the host tests.
 *
 * Locking: print_lock (interrupt-saving: interrupt handlers print) is held
 * across one whole kprintf call, so its output reaches the sinks in one piece
 * whatever other CPUs print; it protects `sinks` and the sinks' own state
 * (the serial port, the console, the log buffer are called under it). A CPU
 * that already holds it prints through it without taking it again: a fault
 * or panic raised while printing still gets its report out. The panic path
 * takes it for good with kprintf_panic_lock. ksnprintf takes no lock. */
#include "lib/printf.h"

#include "lib/spinlock.h"

#define MAX_SINKS 4

struct spinlock print_lock = SPINLOCK_IRQ_INIT("print", LOCK_RANK_PRINT);

static kprintf_sink_fn sinks[MAX_SINKS]; /* print_lock */

/* Takes print_lock unless this CPU holds it already; true when it took it. */
static bool print_lock_take(void)
{
    if (spin_held(&print_lock))
        return false;
    spin_lock(&print_lock);
    return true;
}

bool kprintf_add_sink(kprintf_sink_fn sink)
{
    bool took = print_lock_take(), ok = false;
    for (int i = 0; i < MAX_SINKS && !ok; i++)
        ok = sinks[i] == sink;
    for (int i = 0; i < MAX_SINKS && !ok; i++) {
        if (!sinks[i]) {
            sinks[i] = sink;
            ok = true;
        }
    }
    if (took)
        spin_unlock(&print_lock);
    return ok;
}

void kprintf_remove_sink(kprintf_sink_fn sink)
{
    bool took = print_lock_take();
    for (int i = 0; i < MAX_SINKS; i++)
        if (sinks[i] == sink)
            sinks[i] = NULL;
    if (took)
        spin_unlock(&print_lock);
}

/* How long the panic path waits for another CPU's kprintf to finish before
 * it presumes that CPU stopped inside it (rounds of cpu_relax, well over a
 * millisecond even at 4 GHz: one kprintf line takes microseconds to a serial
 * port that is not emulated, about a millisecond at 115200 baud). */
#ifdef SLAYER_HOST
#define PANIC_PRINT_SPINS (1UL << 10) /* host: each round is a sched_yield */
#else
#define PANIC_PRINT_SPINS (1UL << 24)
#endif

void kprintf_panic_lock(void)
{
    if (!spin_held(&print_lock))
        spin_lock_for_panic(&print_lock, PANIC_PRINT_SPINS);
}

/* Where formatted bytes go: a caller buffer (snprintf) or a staging buffer
 * flushed to the sinks. `total` counts every byte produced, kept or not. */
struct emitter {
    char *buf;
    size_t cap;   /* usable bytes in buf (for snprintf: size - 1) */
    size_t len;   /* bytes currently in buf */
    size_t total;
    bool to_sinks;
};

static void emit_flush(struct emitter *e)
{
    if (e->to_sinks && e->len) {
        for (int i = 0; i < MAX_SINKS; i++)
            if (sinks[i])
                sinks[i](e->buf, e->len);
        e->len = 0;
    }
}

static void emit(struct emitter *e, char c)
{
    e->total++;
    if (e->len == e->cap) {
        if (!e->to_sinks)
            return;
        emit_flush(e);
    }
    e->buf[e->len++] = c;
}

static void emit_repeat(struct emitter *e, char c, int n)
{
    while (n-- > 0)
        emit(e, c);
}

struct spec {
    bool left, zero, plus, space, alt;
    int width;
    int prec; /* -1: none */
};

/* Formats an unsigned number with sign/prefix, precision and width. */
static void emit_number(struct emitter *e, const struct spec *sp, unsigned long long v,
                        unsigned base, bool upper, bool negative)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    if (v == 0 && sp->prec != 0)
        tmp[n++] = '0';
    while (v) {
        tmp[n++] = digits[v % base];
        v /= base;
    }
    const char *prefix = "";
    if (negative)
        prefix = "-";
    else if (sp->plus)
        prefix = "+";
    else if (sp->space)
        prefix = " ";
    else if (sp->alt && base == 16 && n && !(n == 1 && tmp[0] == '0'))
        prefix = upper ? "0X" : "0x";
    int zeros = sp->prec > n ? sp->prec - n : 0;
    /* '#' with octal makes the first digit a zero, unless the digits or the
     * precision's zeros already begin with one (%#.0o of 0 prints "0"). */
    if (!*prefix && sp->alt && base == 8 && zeros == 0 && (n == 0 || tmp[n - 1] != '0'))
        prefix = "0";
    int plen = 0;
    while (prefix[plen])
        plen++;
    int body = plen + zeros + n;
    int pad = sp->width > body ? sp->width - body : 0;
    if (sp->zero && !sp->left && sp->prec < 0) {
        zeros += pad;
        pad = 0;
    }
    if (!sp->left)
        emit_repeat(e, ' ', pad);
    for (int i = 0; i < plen; i++)
        emit(e, prefix[i]);
    emit_repeat(e, '0', zeros);
    while (n)
        emit(e, tmp[--n]);
    if (sp->left)
        emit_repeat(e, ' ', pad);
}

static void emit_string(struct emitter *e, const struct spec *sp, const char *s)
{
    if (!s)
        s = "(null)";
    int n = 0;
    while (s[n] && (sp->prec < 0 || n < sp->prec))
        n++;
    int pad = sp->width > n ? sp->width - n : 0;
    if (!sp->left)
        emit_repeat(e, ' ', pad);
    for (int i = 0; i < n; i++)
        emit(e, s[i]);
    if (sp->left)
        emit_repeat(e, ' ', pad);
}

enum length { LEN_INT, LEN_CHAR, LEN_SHORT, LEN_LONG, LEN_LLONG, LEN_SIZE };

static void fmt_core(struct emitter *e, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(e, *fmt);
            continue;
        }
        struct spec sp = {.prec = -1};
        for (;;) {
            char f = *++fmt;
            if (f == '-') sp.left = true;
            else if (f == '0') sp.zero = true;
            else if (f == '+') sp.plus = true;
            else if (f == ' ') sp.space = true;
            else if (f == '#') sp.alt = true;
            else break;
        }
        if (*fmt == '*') {
            sp.width = va_arg(ap, int);
            if (sp.width < 0) {
                sp.left = true;
                sp.width = -sp.width;
            }
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                sp.width = sp.width * 10 + (*fmt++ - '0');
        }
        if (*fmt == '.') {
            fmt++;
            sp.prec = 0;
            if (*fmt == '*') {
                sp.prec = va_arg(ap, int);
                fmt++;
            } else {
                while (*fmt >= '0' && *fmt <= '9')
                    sp.prec = sp.prec * 10 + (*fmt++ - '0');
            }
        }
        enum length len = LEN_INT;
        if (*fmt == 'h') {
            len = LEN_SHORT;
            if (*++fmt == 'h') {
                len = LEN_CHAR;
                fmt++;
            }
        } else if (*fmt == 'l') {
            len = LEN_LONG;
            if (*++fmt == 'l') {
                len = LEN_LLONG;
                fmt++;
            }
        } else if (*fmt == 'z' || *fmt == 'j' || *fmt == 't') {
            len = *fmt == 'z' ? LEN_SIZE : LEN_LLONG;
            fmt++;
        }

        char c = *fmt;
        switch (c) {
        case 'd':
        case 'i': {
            long long v;
            switch (len) {
            case LEN_LONG: v = va_arg(ap, long); break;
            case LEN_LLONG: v = va_arg(ap, long long); break;
            case LEN_SIZE: v = (long long)va_arg(ap, size_t); break;
            case LEN_SHORT: v = (short)va_arg(ap, int); break;
            case LEN_CHAR: v = (signed char)va_arg(ap, int); break;
            default: v = va_arg(ap, int); break;
            }
            unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
            emit_number(e, &sp, mag, 10, false, v < 0);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            unsigned long long v;
            switch (len) {
            case LEN_LONG: v = va_arg(ap, unsigned long); break;
            case LEN_LLONG: v = va_arg(ap, unsigned long long); break;
            case LEN_SIZE: v = va_arg(ap, size_t); break;
            case LEN_SHORT: v = (unsigned short)va_arg(ap, unsigned); break;
            case LEN_CHAR: v = (unsigned char)va_arg(ap, unsigned); break;
            default: v = va_arg(ap, unsigned); break;
            }
            unsigned base = c == 'u' ? 10 : c == 'o' ? 8 : 16;
            sp.plus = sp.space = false;
            emit_number(e, &sp, v, base, c == 'X', false);
            break;
        }
        case 'p': {
            void *p = va_arg(ap, void *);
            sp.alt = true;
            emit_number(e, &sp, (unsigned long long)(uintptr_t)p, 16, false, false);
            break;
        }
        case 's':
            emit_string(e, &sp, va_arg(ap, const char *));
            break;
        case 'c': {
            char s[2] = {(char)va_arg(ap, int), 0};
            sp.prec = 1;
            if (s[0] == 0) { /* a NUL character still counts as one byte */
                emit_repeat(e, ' ', sp.left ? 0 : sp.width - 1);
                emit(e, 0);
                emit_repeat(e, ' ', sp.left ? sp.width - 1 : 0);
            } else {
                emit_string(e, &sp, s);
            }
            break;
        }
        case '%':
            emit(e, '%');
            break;
        case 0: /* a lone '%' at the end */
            return;
        default: /* unknown conversion: print it as written */
            emit(e, '%');
            emit(e, c);
            break;
        }
    }
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct emitter e = {.buf = buf, .cap = size ? size - 1 : 0};
    fmt_core(&e, fmt, ap);
    if (size)
        buf[e.len] = 0;
    return (int)e.total;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int kvprintf(const char *fmt, va_list ap)
{
    char stage[256];
    struct emitter e = {.buf = stage, .cap = sizeof(stage), .to_sinks = true};
    bool took = print_lock_take();
    fmt_core(&e, fmt, ap);
    emit_flush(&e);
    if (took)
        spin_unlock(&print_lock);
    return (int)e.total;
}

int kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvprintf(fmt, ap);
    va_end(ap);
    return n;
}
