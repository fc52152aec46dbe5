/* The monitor's commands (private to kernel/monitor/). Each gets argv[0] =
 * its name and argc within the limits of its table entry in monitor.c. */
#pragma once

#include "lib/types.h"

struct monitor_cmd {
    const char *name;
    const char *args; /* usage after the name, "" when none */
    const char *help; /* one line */
    int min_args, max_args; /* not counting the name */
    void (*fn)(int argc, char **argv);
};

/* The command table (monitor.c), terminated by a NULL name. */
extern const struct monitor_cmd monitor_cmds[];

/* Prints "<cmd>: <message>" as the one-line error for bad arguments. */
void monitor_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats bytes as "12.5 MiB" / "4 KiB" / "100 B" into buf (at least 24 bytes). */
const char *monitor_size_str(char *buf, size_t size, uint64_t bytes);

/* The commands: each implements the table entry of its name (see its help
 * text there); it prints its answer, or one error line, and never panics. */
/* cmd_mem.c */
void cmd_mem(int argc, char **argv);
void cmd_memmap(int argc, char **argv);
void cmd_frames(int argc, char **argv);
void cmd_heap(int argc, char **argv);
void cmd_alloc(int argc, char **argv);
void cmd_free(int argc, char **argv);
/* cmd_vm.c */
void cmd_walk(int argc, char **argv);
void cmd_vmmap(int argc, char **argv);
/* cmd_as.c */
void cmd_as(int argc, char **argv);
void cmd_vmdemo(int argc, char **argv);
/* `vmmap <id>`: the regions of address space `id` (called by cmd_vmmap). */
void cmd_vmmap_space(const char *arg);
/* Prints the regions of process pid's address space: 0, -ESRCH (no such
 * process) or -ENOENT (a zombie: its space is gone); prints nothing then. */
int monitor_vmmap_of_proc(int pid);
/* cmd_sys.c */
void cmd_version(int argc, char **argv);
void cmd_ktest(int argc, char **argv);
void cmd_bench(int argc, char **argv);
void cmd_panic(int argc, char **argv);
void cmd_reboot(int argc, char **argv);
void cmd_poweroff(int argc, char **argv);
/* cmd_proc.c */
void cmd_ps(int argc, char **argv);
void cmd_run(int argc, char **argv);
void cmd_kill(int argc, char **argv);
/* `vmmap pid <n>`: the regions of process n's address space (called by cmd_vmmap). */
void cmd_vmmap_pid(const char *arg);
struct vm_space;
/* Calls fn(vs, ctx) on the address space of process pid (or, when pid is 0,
 * of the process whose space has id space_id) while that space is sure not
 * to be destroyed (under the process table's lock: fn may take vm and
 * paging locks, must not block or print). *owner (when not NULL) gets the
 * process's pid. 0 when fn ran; -ESRCH when no process matched; -ENOENT
 * when it matched but has no space (a zombie). */
int monitor_with_proc_space(int pid, uint32_t space_id, void (*fn)(struct vm_space *vs, void *ctx),
                            void *ctx, int *owner);
/* cmd_smp.c */
void cmd_cpus(int argc, char **argv);
