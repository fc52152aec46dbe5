/* The monitor's prompt loop, line editor and command dispatch. */
#include "monitor/monitor.h"

#include <stdarg.h>

#include "arch/x86_64/cpu.h"
#include "dev/input.h"
#include "dev/keyboard.h"
#include "dev/serial_irq.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "monitor/commands.h"
#include "monitor/parse.h"

#define PROMPT "slayer> "
#define LINE_MAX_CHARS 127 /* characters of one command line */
#define MAX_ARGS 16        /* words of one command line, the name included */

static void cmd_help(int argc, char **argv);

const struct monitor_cmd monitor_cmds[] = {
    {"help", "[command]", "list the commands, or explain one", 0, 1, cmd_help},
    {"version", "", "kernel version, bootloader, firmware and command line", 0, 0, cmd_version},
    {"mem", "", "memory summary: usable, free, used, reserved, reclaimed, metadata", 0, 0, cmd_mem},
    {"memmap", "", "the sanitized memory map: base, end, size, type", 0, 0, cmd_memmap},
    {"frames", "[<phys> [count]]", "frame allocator statistics, or which frames from phys are used", 0, 2, cmd_frames},
    {"heap", "", "heap statistics: in use, free, pages, size classes", 0, 0, cmd_heap},
    {"walk", "<virt>", "the page-table walk of a virtual address, level by level", 1, 1, cmd_walk},
    {"vmmap", "[id | pid <n>]", "the kernel's mapped virtual ranges; the regions of user address space id "
     "(see 'as'), or of process n's space (see 'ps')", 0, 2, cmd_vmmap},
    {"as", "", "every user address space: regions, resident pages, tables, CPUs, fault counts", 0, 0, cmd_as},
    {"vmdemo", "[free]", "make a demo user address space and its fork (free: destroy them)", 0, 1,
     cmd_vmdemo},
    {"ps", "", "every process: pid, parent, state, threads, CPU, resident memory, ticks, name", 0, 0,
     cmd_ps},
    {"run", "<program> [args] [&]", "start a program (a boot module) and wait for it (Ctrl-C kills "
     "it); with '&' in the background", 1, 15, cmd_run},
    {"kill", "<pid>", "end process pid (SIGKILL)", 1, 1, cmd_kill},
    {"alloc", "<size>", "kmalloc(size) (suffixes K, M, G allowed); prints the address", 1, 1,
     cmd_alloc},
    {"free", "<addr>", "kfree(addr) after checking that addr is a live heap block", 1, 1, cmd_free},
    {"ktest", "[name]", "run the in-kernel self-tests (those whose name contains name)", 0, 1,
     cmd_ktest},
    {"bench", "", "run the in-kernel benchmarks", 0, 0, cmd_bench},
    {"cpus", "", "every CPU: APIC ID, state, IPIs sent/received, timer ticks, cached frames and heap objects", 0, 0, cmd_cpus},
    {"panic", "[cpu]", "panic on purpose (on CPU index cpu): the report, the backtrace, every CPU stopped", 0,
     1, cmd_panic},
    {"reboot", "", "reset the machine (keyboard controller, then triple fault)", 0, 0, cmd_reboot},
    {"poweroff", "", "switch the machine off (ACPI S5 as QEMU provides it)", 0, 0, cmd_poweroff},
    {NULL, NULL, NULL, 0, 0, NULL},
};

void monitor_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    kprintf("%s: ", cmd);
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
    kprintf("\n");
}

const char *monitor_size_str(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned u = 0;
    uint64_t whole = bytes, rem = 0;
    while (whole >= 1024 && u + 1 < ARRAY_SIZE(units)) {
        rem = whole & 1023;
        whole >>= 10;
        u++;
    }
    unsigned tenth = (unsigned)(rem * 10 / 1024);
    if (u == 0 || tenth == 0)
        ksnprintf(buf, size, "%llu %s", (unsigned long long)whole, units[u]);
    else
        ksnprintf(buf, size, "%llu.%u %s", (unsigned long long)whole, tenth, units[u]);
    return buf;
}

static const struct monitor_cmd *find_cmd(const char *name)
{
    for (const struct monitor_cmd *c = monitor_cmds; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void cmd_help(int argc, char **argv)
{
    if (argc == 2) {
        const struct monitor_cmd *c = find_cmd(argv[1]);
        if (!c) {
            monitor_error("help", "no command '%s' (try 'help')", argv[1]);
            return;
        }
        kprintf("%s %s\n  %s\n", c->name, c->args, c->help);
        return;
    }
    kprintf("commands:\n");
    for (const struct monitor_cmd *c = monitor_cmds; c->name; c++) {
        char usage[40];
        ksnprintf(usage, sizeof(usage), "%s %s", c->name, c->args);
        kprintf("  %-26s %s\n", usage, c->help);
    }
    kprintf("keys: Backspace, Ctrl-U erases the line, Ctrl-C cancels it\n");
}

void monitor_execute(char *line)
{
    char *argv[MAX_ARGS];
    int argc = parse_split(line, argv, MAX_ARGS);
    if (argc == 0)
        return;
    if (argc < 0) {
        kprintf("monitor: too many words (at most %d)\n", MAX_ARGS);
        return;
    }
    const struct monitor_cmd *c = find_cmd(argv[0]);
    if (!c) {
        kprintf("monitor: unknown command '%s' (try 'help')\n", argv[0]);
        return;
    }
    if (argc - 1 < c->min_args || argc - 1 > c->max_args) {
        kprintf("%s: usage: %s %s\n", c->name, c->name, c->args);
        return;
    }
    c->fn(argc, argv);
}

/* Line editor state for bytes that are not characters of the line. */
enum esc_state { ESC_NONE, ESC_START, ESC_CSI };

/* Reads one line into buf (LINE_MAX_CHARS + 1 bytes), echoing it. Returns the
 * length, or -1 when the line was too long or cancelled (already reported). */
static int read_line(char *buf)
{
    size_t len = 0, dropped = 0;
    enum esc_state esc = ESC_NONE;
    static bool last_was_cr; /* "\r\n" ends one line, not two */
    for (;;) {
        int c = input_getc();
        if (c == '\n' && last_was_cr) {
            last_was_cr = false;
            continue;
        }
        last_was_cr = c == '\r';
        if (c == '\r' || c == '\n') {
            kprintf("\n");
            if (dropped) {
                kprintf("monitor: line too long (more than %d characters), ignored\n",
                        LINE_MAX_CHARS);
                return -1;
            }
            buf[len] = '\0';
            return (int)len;
        }
        /* Terminal escape sequences (arrow keys: ESC [ A) are swallowed whole. */
        if (esc == ESC_START) {
            esc = (c == '[' || c == 'O') ? ESC_CSI : ESC_NONE;
            if (esc == ESC_CSI)
                continue;
        } else if (esc == ESC_CSI) {
            if (c >= 0x40 && c <= 0x7e)
                esc = ESC_NONE;
            continue;
        }
        if (c == 0x1b) {
            esc = ESC_START;
        } else if (c == '\b' || c == 0x7f) {
            if (dropped) {
                dropped--;
            } else if (len > 0) {
                len--;
                kprintf("\b \b");
            }
        } else if (c == 0x15) { /* Ctrl-U: erase the line */
            for (; len > 0; len--)
                kprintf("\b \b");
            dropped = 0;
        } else if (c == 0x03) { /* Ctrl-C: cancel */
            kprintf("^C\n");
            return -1;
        } else if (c >= 0x20 && c < 0x7f) {
            if (len < LINE_MAX_CHARS) {
                buf[len++] = (char)c;
                kprintf("%c", c);
            } else {
                dropped++;
            }
        }
        /* every other byte (controls, 8-bit) is ignored */
    }
}

void monitor_run(void)
{
    bool kbd = keyboard_init();
    bool ser = serial_enable_rx_irq();
    klog("monitor", "input: keyboard %s, serial %s", kbd ? "PS/2 on IRQ 1" : "absent",
         ser ? "COM1 on IRQ 4" : "absent");
    cpu_sti();
    kprintf("\nSlayerOS kernel monitor. Type 'help' for the commands.\n");
    static char line[LINE_MAX_CHARS + 1];
    for (;;) {
        kprintf(PROMPT);
        if (read_line(line) >= 0)
            monitor_execute(line);
    }
}
