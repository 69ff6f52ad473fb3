#!/usr/bin/python3
"""benchmarks/rss_watchdog.py: run a command under /usr/bin/time -v, killing it when its
anonymous memory or its wall time passes a limit (benchmarks/llama7b.sh uses it).

Why anonymous memory: VmRSS counts the touched pages of mapped files, which are clean page
cache the kernel can drop at any time (a binary that mmaps 13.5 GB of shards and reads them
all has a VmRSS of 13.5 GB without needing that memory), and a cap on the address space
(RLIMIT_AS) counts every mapping in full, resident or not. What can take the machine down is
RssAnon + RssShmem, polled here from /proc/PID/status every --interval seconds (0.05 s by
default, so a fast allocator overshoots the limit by at most what it touches in that time).

Prints one JSON line: status (ok, failed, rss_limit, timeout), exit code, seconds (wall),
peak_rss_mib (/usr/bin/time -v "Maximum resident set size": the kernel's peak VmRSS, file
pages included) and peak_anon_mib (the sampled peak of RssAnon + RssShmem).

Usage: rss_watchdog.py --limit-mib N --timeout S --log PREFIX -- COMMAND...
  (PREFIX.out, PREFIX.err: the command's output; PREFIX.time: /usr/bin/time -v's report)
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time


def anon_kb(pid):
    """RssAnon + RssShmem of pid in kB (0 if it is gone)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssShmem:")):
                    total += int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return total


def child_of(pid):
    """The command /usr/bin/time started (its only child), or None before it exists."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except FileNotFoundError:
        return None
    return int(kids[0]) if kids else None


def max_rss_mib(time_report):
    with open(time_report) as f:
        for line in f:
            if "Maximum resident set size" in line:
                return round(int(line.rsplit(":", 1)[1]) / 1024, 1)
    return None


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit-mib", type=float, required=True, help="kill above this anonymous memory (MiB)")
    p.add_argument("--timeout", type=float, required=True, help="kill after this many seconds")
    p.add_argument("--log", required=True, help="prefix of the .out, .err and .time files")
    p.add_argument("--interval", type=float, default=0.05, help="polling interval in seconds")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        p.error("no command given")
    start = time.monotonic()
    with open(a.log + ".out", "wb") as out, open(a.log + ".err", "wb") as err:
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", a.log + ".time"] + cmd, stdout=out, stderr=err)
    limit_kb, peak, why, child = a.limit_mib * 1024, 0, None, None
    while proc.poll() is None:
        child = child or child_of(proc.pid)
        if child:
            kb = anon_kb(child)
            peak = max(peak, kb)
            if why is None and kb > limit_kb:
                why = "rss_limit"
            elif why is None and time.monotonic() - start > a.timeout:
                why = "timeout"
            if why:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(a.interval)
    seconds = time.monotonic() - start
    status = why or ("ok" if proc.returncode == 0 else "failed")
    print(json.dumps({"status": status, "exit_code": proc.returncode, "seconds": round(seconds, 2),
                      "peak_rss_mib": max_rss_mib(a.log + ".time"), "peak_anon_mib": round(peak / 1024, 1)}))


if __name__ == "__main__":
    main(sys.argv[1:])
