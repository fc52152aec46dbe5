/* The stack protector's canary and the function a smashed frame calls. */
#include "lib/stack_protector.h"

#include "arch/x86_64/cpu.h"
#include "lib/panic.h"
#include "lib/symbols.h"

#define NO_SSP __attribute__((no_stack_protector))

/* Not zero before seeding, so that early frames are protected too. */
uintptr_t __stack_chk_guard = 0x2f8c5b3e9d6a7100ULL;
static const char *source = "built-in";

const char *stack_protector_source(void)
{
    return source;
}

/* RDSEED / RDRAND may fail transiently (CF = 0): retry a few times. */
NO_SSP static bool rdseed64(uint64_t *out)
{
    for (int i = 0; i < 32; i++) {
        uint8_t ok;
        __asm__ volatile("rdseed %0; setc %1" : "=r"(*out), "=qm"(ok)::"cc");
        if (ok)
            return true;
        cpu_pause();
    }
    return false;
}

NO_SSP static bool rdrand64(uint64_t *out)
{
    for (int i = 0; i < 32; i++) {
        uint8_t ok;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(*out), "=qm"(ok)::"cc");
        if (ok)
            return true;
    }
    return false;
}

NO_SSP void stack_protector_init(void)
{
    uint64_t v = 0;
    bool have7 = cpuid(0, 0).eax >= 7;
    if (have7 && (cpuid(7, 0).ebx & CPUID_7_EBX_RDSEED) && rdseed64(&v)) {
        source = "RDSEED";
    } else if ((cpuid(1, 0).ecx & CPUID_1_ECX_RDRAND) && rdrand64(&v)) {
        source = "RDRAND";
    } else {
        /* weak, but differs from boot to boot: mix the TSC (splitmix64 finaliser) */
        v = rdtsc() ^ __stack_chk_guard;
        v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
        v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
        v ^= v >> 31;
        source = "TSC";
    }
    v &= ~0xffULL; /* a zero byte first: string overflows stop before copying it */
    if (v == 0)
        v = 0x5a5a5a5a5a5a5a00ULL;
    __stack_chk_guard = v;
}

NO_SSP NORETURN void __stack_chk_fail(void);
NO_SSP NORETURN void __stack_chk_fail(void)
{
    uint64_t ra = (uint64_t)(uintptr_t)__builtin_return_address(0);
    const char *fn = symbols_lookup(ra - 1, NULL); /* the call, not what follows it */
    panic("stack smashing detected: the canary of %s's frame was overwritten (returning from %#llx)",
          fn ? fn : "?", (unsigned long long)ra);
}
