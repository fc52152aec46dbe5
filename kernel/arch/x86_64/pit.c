/* The 8254 PIT's channel 2, polled, and the TSC delay calibrated against it
 * (pit.h). Port 0x61 (the "PPI" port B): bit 0 gates channel 2, bit 1 routes
 * its output to the speaker (kept off). Channel 2 runs in mode 0 loaded
 * with 65535: it counts down at PIT_HZ and, past 0, wraps and goes on, so
 * it is a free-running 16-bit clock read with a latch command.
 *
 * Measuring against it must survive stalls: under QEMU on a busy host the
 * vCPU is often descheduled for milliseconds (and, under multi-threaded TCG
 * with other vCPUs spinning, for longer than a 54.9 ms wrap). "Load N ticks,
 * poll until they are over" read 40-60% high; summing PIT steps between
 * reads read up to 13.6 GHz when a stall hid a wrap. So a window is built
 * from segments: the PIT is read over and over, each read bracketed by two
 * TSC reads, and a segment (from one read to the next) counts, its PIT
 * ticks and its TSC ticks both, only when both reads were quick and the gap
 * between them short (STALL_TSC: far below a wrap at any TSC rate). A stall
 * drops the segment it falls in, whole; the errors of the other segments'
 * ends cancel out, as each end is the next segment's start. */
#include "arch/x86_64/pit.h"

#include "arch/x86_64/cpu.h"
#include "lib/printf.h"

#define PIT_CH2_DATA   0x42
#define PIT_COMMAND    0x43
#define PIT_PORT_B     0x61
#define PORT_B_GATE2   0x01
#define PORT_B_SPEAKER 0x02
/* Command: channel 2, low byte then high byte, mode 0, binary. */
#define PIT_CMD_CH2_MODE0 0xb0
/* Command: latch channel 2's count (read back low then high). */
#define PIT_CMD_CH2_LATCH 0x80

#define PIT_FULL_COUNT 0xffffu
#define CALIBRATE_MS   10
#define CALIBRATE_RUNS 3
/* A segment counts when its reads took at most READ_TSC each and they lie
 * at most STALL_TSC apart: 10 ms at 100 MHz, 0.1 ms at 10 GHz, so never a
 * PIT wrap (54.9 ms). Reads take about 2,000 TSC ticks under TCG. */
#define READ_TSC  100000ULL
#define STALL_TSC 1000000ULL
/* A window gives up after this many TSC ticks (0.4 s at 10 GHz, 4 s at
 * 1 GHz): the PIT does not count, or the CPU never ran undisturbed. */
#define WINDOW_GIVE_UP_TSC 4000000000ULL
/* A PIT that has not moved after this many TSC ticks does not count. */
#define PIT_STUCK_TSC WINDOW_GIVE_UP_TSC

/* Set once by pit_calibrate_tsc (BSP), read by every CPU afterwards. */
static volatile uint64_t tsc_us;

/* Channel 2 free-running from 65535 (gate open, speaker off). */
static void ch2_start(void)
{
    outb(PIT_PORT_B, inb(PIT_PORT_B) & ~(PORT_B_GATE2 | PORT_B_SPEAKER));
    outb(PIT_COMMAND, PIT_CMD_CH2_MODE0);
    outb(PIT_CH2_DATA, PIT_FULL_COUNT & 0xff);
    outb(PIT_CH2_DATA, PIT_FULL_COUNT >> 8);
    outb(PIT_PORT_B, (inb(PIT_PORT_B) & ~PORT_B_SPEAKER) | PORT_B_GATE2);
}

/* Channel 2's current count (it counts down). */
static uint16_t ch2_count(void)
{
    outb(PIT_COMMAND, PIT_CMD_CH2_LATCH);
    uint16_t lo = inb(PIT_CH2_DATA);
    uint16_t hi = inb(PIT_CH2_DATA);
    return (uint16_t)(lo | hi << 8);
}

/* One PIT read and the TSC around it. */
struct reading {
    uint64_t tsc;   /* halfway between the TSC reads before and after */
    uint64_t took;  /* TSC ticks between them */
    uint16_t count;
};

static struct reading read_both(void)
{
    uint64_t a = rdtsc();
    uint16_t c = ch2_count();
    uint64_t b = rdtsc();
    return (struct reading){a + (b - a) / 2, b - a, c};
}

/* Follows the running channel from `from` until at least `ticks` PIT ticks
 * passed (mod-65536 steps summed: a stall that hides a wrap only makes the
 * wait longer). Returns false when the PIT did not move for PIT_STUCK_TSC. */
static bool follow(uint16_t from, uint64_t ticks)
{
    uint64_t passed = 0, moved = rdtsc();
    uint16_t prev = from;
    while (passed < ticks) {
        uint16_t c = ch2_count();
        if (c != prev) {
            passed += (uint16_t)(prev - c);
            prev = c;
            moved = rdtsc();
        } else if (rdtsc() - moved > PIT_STUCK_TSC) {
            return false;
        }
    }
    return true;
}

/* *hz = the TSC's rate over segments adding up to `ticks` PIT ticks (the
 * file's comment). Returns 0, or -1 when the PIT does not count or no
 * undisturbed segments added up within WINDOW_GIVE_UP_TSC. */
static int tsc_hz_window(uint64_t ticks, uint64_t *hz)
{
    ch2_start();
    struct reading prev = read_both();
    uint64_t start = prev.tsc, moved = prev.tsc, pit = 0, tsc = 0;
    while (pit < ticks) {
        struct reading r = read_both();
        if (r.count != prev.count)
            moved = r.tsc;
        else if (r.tsc - moved > PIT_STUCK_TSC)
            return -1;
        if (r.tsc - start > WINDOW_GIVE_UP_TSC)
            return -1;
        if (prev.took <= READ_TSC && r.took <= READ_TSC && r.tsc - prev.tsc <= STALL_TSC) {
            pit += (uint16_t)(prev.count - r.count);
            tsc += r.tsc - prev.tsc;
        }
        prev = r;
    }
    *hz = tsc * PIT_HZ / pit;
    return 0;
}

void pit_wait_us(uint64_t us)
{
    ch2_start();
    follow(ch2_count(), (us * PIT_HZ + 999999) / 1000000);
}

/* read(arg) and the TSC at one instant: a TSC read on each side, the
 * tightest of SAMPLE_TRIES tries kept. */
#define SAMPLE_TRIES 4
static void paired_read(uint64_t (*read)(void *arg), void *arg, uint64_t *tsc, uint64_t *value)
{
    uint64_t spread = UINT64_MAX;
    for (int k = 0; k < SAMPLE_TRIES; k++) {
        uint64_t a = rdtsc();
        uint64_t x = read(arg);
        uint64_t b = rdtsc();
        if (b - a < spread) {
            spread = b - a;
            *tsc = a + (b - a) / 2;
            *value = x;
        }
    }
}

uint64_t counter_hz_by_tsc(uint64_t (*read)(void *arg), void *arg, unsigned ms)
{
    if (!tsc_us)
        pit_calibrate_tsc();
    uint64_t t0, v0, t1, v1;
    paired_read(read, arg, &t0, &v0);
    delay_us((uint64_t)(ms ? ms : 1) * 1000);
    paired_read(read, arg, &t1, &v1);
    uint64_t d = v1 >= v0 ? v1 - v0 : v0 - v1;
    uint64_t us = (t1 - t0) / tsc_us;
    return us ? d * 1000000 / us : 0;
}

void pit_stopwatch_start(void)
{
    ch2_start();
}

uint32_t pit_stopwatch_ticks(void)
{
    return PIT_FULL_COUNT - ch2_count();
}

/* The TSC's nominal rate from CPUID (Hz), 0 when the CPU does not say:
 * leaf 0x15 (crystal clock x ratio) or leaf 0x16 (base frequency, MHz). */
static uint64_t cpuid_tsc_hz(void)
{
    uint32_t max = cpuid(0, 0).eax;
    if (max >= 0x15) {
        struct cpuid_regs r = cpuid(0x15, 0);
        if (r.eax && r.ebx && r.ecx)
            return (uint64_t)r.ecx * r.ebx / r.eax;
    }
    if (max >= 0x16) {
        uint32_t mhz = cpuid(0x16, 0).eax & 0xffff;
        if (mhz)
            return (uint64_t)mhz * 1000000;
    }
    return 0;
}

/* Sorts a few values in place (insertion sort). */
static void sort_small(uint64_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

void pit_calibrate_tsc(void)
{
    const uint64_t ticks = (uint64_t)PIT_HZ * CALIBRATE_MS / 1000;
    uint64_t hz[CALIBRATE_RUNS];
    for (int k = 0; k < CALIBRATE_RUNS; k++) {
        if (tsc_hz_window(ticks, &hz[k]) < 0) {
            uint64_t nominal = cpuid_tsc_hz();
            const char *from = nominal ? "CPUID" : "a guess";
            if (!nominal)
                nominal = 1000000000ULL;
            tsc_us = nominal / 1000000 ? nominal / 1000000 : 1;
            kwarn("smp", "PIT channel 2 gave no usable window: TSC taken as %llu MHz (%s)",
                  (unsigned long long)tsc_us, from);
            return;
        }
    }
    sort_small(hz, CALIBRATE_RUNS);
    uint64_t mid = hz[CALIBRATE_RUNS / 2];
    tsc_us = mid / 1000000 ? mid / 1000000 : 1;
    klog("smp", "TSC: %llu MHz (median of %d PIT windows of %d ms: %llu..%llu kHz)",
         (unsigned long long)tsc_us, CALIBRATE_RUNS, CALIBRATE_MS,
         (unsigned long long)hz[0] / 1000, (unsigned long long)hz[CALIBRATE_RUNS - 1] / 1000);
}

uint64_t tsc_per_us(void)
{
    return tsc_us;
}

void delay_us(uint64_t us)
{
    uint64_t rate = tsc_us;
    if (!rate) {
        pit_wait_us(us);
        return;
    }
    uint64_t start = rdtsc(), span = us * rate;
    while (rdtsc() - start < span)
        cpu_pause();
}
