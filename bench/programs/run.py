#!/usr/bin/env python3
"""make bench-programs: real programs from Debian packages over four mallocs.

Each program runs with glibc's malloc (nothing preloaded), SlayerOS's kernel
heap (LD_PRELOAD of libslayer-malloc.so, bench/programs/shim.c), mimalloc and
jemalloc (LD_PRELOAD of Debian's libmimalloc.so.2 / libjemalloc.so.2). Every
output (stdout and the files a program writes) must equal glibc's, byte for
byte, or the run fails. Runs go round-robin (repetition by repetition, each
program under each allocator in turn) so that load on a shared machine
spreads over all allocators alike.

Per program and allocator: wall time (median of N runs), CPU time (user +
system, median) and peak RSS (the largest ru_maxrss of the program and the
processes it waited for, from wait4 in runprog.c). Summary: geometric means of the
time ratios SlayerOS / glibc and SlayerOS / mimalloc (and of each peer
against glibc).

  run.py --dir BUILD/bench [--out docs/performance.md] [--runs N] [--smoke]
         [--only NAME,...] [--allocs NAME,...]

--smoke: one tiny run per program and allocator, outputs checked, nothing
written. BENCH_PROGRAMS_RUNS sets N (default 3)."""
import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WORKLOADS = HERE / "workloads"
BEGIN = "<!-- bench-programs:begin -->"
END = "<!-- bench-programs:end -->"
ALLOCS = ["glibc", "slayer", "mimalloc", "jemalloc"]
LABEL = {"glibc": "glibc", "slayer": "SlayerOS", "mimalloc": "mimalloc", "jemalloc": "jemalloc"}


def die(msg):
    print(f"bench-programs: {msg}", file=sys.stderr)
    sys.exit(1)


def find_lib(soname, package):
    """The path of a shared library: ldconfig's cache first, then dpkg's file list."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.strip().split(" => ")
            if len(parts) == 2 and parts[0].split()[0] == soname and "x86-64" in parts[0]:
                if os.path.exists(parts[1]):
                    return parts[1]
    except OSError:
        pass
    try:
        out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if os.path.basename(line) == soname and os.path.exists(line):
                return line
    except OSError:
        pass
    die(f"{soname} not found (package {package}; run tools/deps.sh)")


def need(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        die(f"{path} missing (run tools/deps.sh)")
    return path


# ---- inputs ------------------------------------------------------------------------

def make_text(path, size, seed):
    """Deterministic compressible text: words, numbers and repeats (xz, sort)."""
    import random
    rng = random.Random(seed)
    words = [("".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 10))))
             for _ in range(3000)]
    lines, total = [], 0
    while total < size:
        n = rng.randint(3, 16)
        line = " ".join(rng.choice(words) if rng.random() < 0.85 else str(rng.randint(0, 10**6))
                        for _ in range(n))
        lines.append(line)
        total += len(line) + 1
    Path(path).write_text("\n".join(lines) + "\n")


def prepare_inputs(work, smoke):
    """Every input a program reads, made once per invocation under work/inputs."""
    inp = work / "inputs"
    if inp.exists():
        shutil.rmtree(inp)
    inp.mkdir(parents=True)
    make_text(inp / "text.txt", 200_000 if smoke else 2_500_000, 7)
    make_text(inp / "lines.txt", 100_000 if smoke else 15_000_000, 11)
    rows = 2000 if smoke else 150_000
    sql = (WORKLOADS / "sqlite_work.sql").read_text().replace("@ROWS@", str(rows))
    (inp / "work.sql").write_text(sql)
    # A snapshot of the kernel's sources for gcc (so edits made meanwhile do
    # not change its input between runs).
    shutil.copytree(REPO / "kernel", inp / "kernel")
    shutil.copytree(REPO / "tests" / "host", inp / "host")
    return inp


# ---- programs ----------------------------------------------------------------------

GCC_SOURCES = ["kernel/mm/heap_slab.c", "kernel/mm/frame.c", "kernel/mm/paging.c",
               "kernel/lib/printf.c"]


def programs(inp, bench_dir, smoke):
    """name -> (steps, extra env); a step is (argv, stdin file or None, stdout file name).
    Files a program writes into its run directory are outputs too."""
    py = need("/usr/bin/python3")
    xz = need(shutil.which("xz") or "/usr/bin/xz")
    gcc = need(shutil.which("gcc") or "/usr/bin/gcc")
    perl = need("/usr/bin/perl")
    sort = need(shutil.which("sort") or "/usr/bin/sort")
    sqlite = need(shutil.which("sqlite3") or "/usr/bin/sqlite3")
    larson = need(str(bench_dir / "larson"))
    text = str(inp / "text.txt")
    progs = {}
    progs["python3"] = (
        [([py, "-s", "-B", str(WORKLOADS / "py_work.py"), "0.02" if smoke else "0.35"], None, "out")],
        {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"})
    progs["sqlite3"] = (
        [([sqlite, "-batch", "-init", "/dev/null"], str(inp / "work.sql"), "out")], {})
    for t in (1, 2):
        progs[f"xz -T{t}"] = (
            [([xz, f"-T{t}", "-6", "--block-size=1MiB", "-c", text], None, "text.xz"),
             ([xz, f"-T{t}", "-d", "-c", "text.xz"], None, "text.out")], {})
    srcs = GCC_SOURCES[:1] if smoke else GCC_SOURCES
    progs["gcc -O2"] = (
        [([gcc, "-O0" if smoke else "-O2", "-std=gnu11", "-DSLAYER_HOST", "-DHEAP_POISON=0",
           f"-I{inp / 'kernel'}", f"-I{inp / 'host'}", "-c"] + [str(inp / s) for s in srcs],
          None, "out")], {})
    progs["perl"] = (
        [([perl, str(WORKLOADS / "perl_work.pl"), text, "0.05" if smoke else "1"], None, "out")],
        {})
    progs["sort"] = (
        [([sort, "--parallel=2", "-S", "64M", "-k2,2", "-k1,1", str(inp / "lines.txt")], None,
          "out")], {})
    larson_args = ["-t", "2", "-r", "2000", "-g", "2"] if smoke else ["-t", "2", "-r", "1000000"]
    progs["larson"] = ([([larson] + larson_args, None, "out")], {})
    return progs


def run_once(steps, env, preload, runprog, rundir):
    """Runs the steps in a fresh rundir (through runprog, which sets LD_PRELOAD
    for the program only); returns (wall s, cpu s, peak RSS KiB, digests)."""
    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    wall = cpu = 0.0
    rss = 0
    result = rundir.parent / (rundir.name + ".cost")
    for argv, stdin, stdout in steps:
        fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
        with open(rundir / stdout, "wb") as fout, open(rundir / (stdout + ".err"), "wb") as ferr:
            rc = subprocess.call([runprog, str(result), preload or "-"] + argv,
                                 stdin=fin, stdout=fout, stderr=ferr, cwd=rundir, env=env)
        if stdin:
            fin.close()
        if rc != 0:
            err = (rundir / (stdout + ".err")).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv)} exited with {rc}\n{err}")
        w, c, r = result.read_text().split()
        wall += float(w)
        cpu += float(c)
        rss = max(rss, int(r))
    digests = {}
    for f in sorted(rundir.iterdir()):
        if f.suffix == ".err":
            continue
        digests[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return wall, cpu, rss, digests


def base_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "MALLOC_CONF", "MIMALLOC_OPTIONS", "PYTHONMALLOC")
           and not k.startswith(("MIMALLOC_", "MALLOC_", "GLIBC_TUNABLES", "SLAYER_MALLOC"))}
    env["LC_ALL"] = "C"
    return env


def geomean(xs):
    import math
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def table(names, res, allocs, key, unit_fmt):
    hdr = "| program | " + " | ".join(LABEL[a] for a in allocs)
    has = "slayer" in allocs
    if has and "glibc" in allocs:
        hdr += " | SlayerOS / glibc"
    if has and "mimalloc" in allocs:
        hdr += " | SlayerOS / mimalloc"
    lines = [hdr + " |", "|" + "---|" * (hdr.count("|"))]
    for n in names:
        row = f"| {n} | " + " | ".join(unit_fmt(res[n][a][key]) for a in allocs)
        for peer in ("glibc", "mimalloc"):
            if has and peer in allocs:
                row += f" | {res[n]['slayer'][key] / res[n][peer][key]:.2f}"
        lines.append(row + " |")
    gm = "| **geomean vs glibc** | " + " | ".join(
        f"{geomean([res[n][a][key] / res[n]['glibc'][key] for n in names]):.2f}" for a in allocs)
    for peer in ("glibc", "mimalloc"):
        if has and peer in allocs:
            gm += f" | **{geomean([res[n]['slayer'][key] / res[n][peer][key] for n in names]):.2f}**"
    lines.append(gm + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="the bench build folder (libslayer-malloc.so, larson)")
    ap.add_argument("--out", help="docs/performance.md: the section between the markers is rewritten")
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_PROGRAMS_RUNS", "3")))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", help="comma-separated program names")
    ap.add_argument("--allocs", default=",".join(ALLOCS))
    args = ap.parse_args()

    bench_dir = Path(args.dir).resolve()
    shim = bench_dir / "libslayer-malloc.so"
    if not shim.exists():
        die(f"{shim} missing (make bench-programs-bins)")
    runprog = str(bench_dir / "runprog")
    need(runprog)
    allocs = args.allocs.split(",")
    if allocs[0] != "glibc":
        die("--allocs must start with glibc (the reference outputs)")
    preload = {"glibc": None, "slayer": str(shim),
               "mimalloc": find_lib("libmimalloc.so.2", "libmimalloc2.0"),
               "jemalloc": find_lib("libjemalloc.so.2", "libjemalloc2")}
    work = bench_dir / "programs"
    t_start = time.perf_counter()
    inp = prepare_inputs(work, args.smoke)
    progs = programs(inp, bench_dir, args.smoke)
    names = list(progs)
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
        if not names:
            die(f"no program called {args.only}; there are: {', '.join(progs)}")
    runs = 1 if args.smoke else max(1, args.runs)

    samples = {n: {a: [] for a in allocs} for n in names}
    ref = {}
    failed = []
    for rep in range(runs):
        for n in names:
            steps, extra = progs[n]
            for a in allocs:
                env = base_env()
                env.update(extra)
                rundir = work / "run" / f"{n.replace(' ', '_')}-{a}"
                try:
                    wall, cpu, rss, dig = run_once(steps, env, preload[a], runprog, rundir)
                except RuntimeError as e:
                    die(f"{n} with {LABEL[a]} failed: {e}")
                if a == "glibc" and n not in ref:
                    ref[n] = dig
                elif dig != ref[n]:
                    bad = sorted(k for k in set(dig) | set(ref[n]) if dig.get(k) != ref[n].get(k))
                    failed.append(f"{n} with {LABEL[a]}: {', '.join(bad)} differ from glibc's "
                                  f"(kept in {rundir})")
                    print(f"bench-programs: OUTPUT MISMATCH: {failed[-1]}", file=sys.stderr)
                    continue
                samples[n][a].append((wall, cpu, rss))
                print(f"  {n:10} {LABEL[a]:9} run {rep + 1}/{runs}: {wall:7.3f} s wall "
                      f"{cpu:7.3f} s cpu {rss / 1024:8.1f} MiB", flush=True)
    if failed:
        die("outputs differ from glibc's:\n  " + "\n  ".join(failed))
    elapsed = time.perf_counter() - t_start
    if args.smoke:
        print(f"bench-programs-smoke: {len(names)} programs x {len(allocs)} allocators, "
              f"every output equal to glibc's ({elapsed:.1f} s)")
        return

    res = {n: {a: {"wall": statistics.median(s[0] for s in samples[n][a]),
                   "cpu": statistics.median(s[1] for s in samples[n][a]),
                   "rss": max(s[2] for s in samples[n][a]) / 1024}
               for a in allocs} for n in names}
    doc = []
    doc.append(f"Wall time, seconds (median of {runs}):\n")
    doc.append(table(names, res, allocs, "wall", lambda v: f"{v:.3f}"))
    doc.append(f"\nCPU time (user + system), seconds (median of {runs}):\n")
    doc.append(table(names, res, allocs, "cpu", lambda v: f"{v:.3f}"))
    doc.append("\nPeak RSS, MiB (largest of the runs):\n")
    doc.append(table(names, res, allocs, "rss", lambda v: f"{v:.1f}"))
    uname = os.uname()
    load = os.getloadavg()
    doc.append(f"\nTaken {time.strftime('%Y-%m-%d')} on {uname.machine} Linux {uname.release}, "
               f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at the end; "
               f"mimalloc: {preload['mimalloc']}, jemalloc: {preload['jemalloc']}; "
               f"{elapsed:.0f} s in all. Every output equal to glibc's.")
    text = "\n".join(doc) + "\n"
    print("\n" + text)
    if args.out:
        write_section(Path(args.out), text)
        print(f"bench-programs: wrote {args.out}")


def write_section(path, text):
    old = path.read_text()
    if BEGIN not in old or END not in old:
        die(f"{path} lacks the lines {BEGIN} and {END}")
    head, rest = old.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + BEGIN + "\n" + text + END + tail)


if __name__ == "__main__":
    main()
