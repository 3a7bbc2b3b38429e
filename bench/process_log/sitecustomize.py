"""Every Python process started with this folder on PYTHONPATH appends a record of itself when it exits.

bench/scale.py and bench/workflow_time.py put the folder on the jobs' PYTHONPATH and name the file in
GEOCONTRAST_PROCESS_LOG; without that variable nothing is written. One JSON line per process: its argv, working
directory and pid;

- ``max_rss_mb``: the kernel's high-water mark of its own resident memory since it started (``VmHWM``;
  ``getrusage``'s ``ru_maxrss`` would also count the process it was forked from), and ``children_max_rss_mb``, the
  largest of its waited-for child processes' (a worker pool's);
- ``cpu_seconds``: its own user + system CPU time, and ``children_cpu_seconds``, that of its waited-for children;
- ``seconds``: its age at exit (from the kernel's start time of the process);
- ``waiting_seconds``: how long its threads alive at exit were ready to run but waited for a core (the kernel's
  run-queue delay, field 2 of ``/proc/self/task/*/schedstat``): contention, where ``seconds - cpu_seconds`` also
  counts reading, sleeping and waiting on other processes.

Exact where Snakemake's ``benchmark:`` samples a job twice a second for its first 15 s and then every 30 s, and
reports the CPU time and RSS of the last sample: a job of 40 s is reported with the CPU time of its first 15 s.
"""

import atexit
import json
import os
import resource
import sys


def _own_peak_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _age_seconds() -> float:
    """Seconds since the kernel started this process (field 22 of /proc/self/stat, in clock ticks since boot)."""
    with open("/proc/self/stat") as stat:
        started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as uptime:
        return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")


def _waiting_seconds() -> float | None:
    """Seconds the process's live threads spent runnable on a run queue, not running; None where the kernel keeps
    no schedstat."""
    waited = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as schedstat:
                waited += int(schedstat.read().split()[1])
    except OSError:
        return None
    return waited / 1e9


def _record_process() -> None:
    path = os.environ.get("GEOCONTRAST_PROCESS_LOG")
    if not path:
        return
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {"argv": sys.argv, "cwd": os.getcwd(), "pid": os.getpid()}
    record.update(
        max_rss_mb=round(_own_peak_kb() / 1024, 1),
        children_max_rss_mb=round(children.ru_maxrss / 1024, 1),
        cpu_seconds=round(own.ru_utime + own.ru_stime, 3),
        children_cpu_seconds=round(children.ru_utime + children.ru_stime, 3),
        seconds=round(_age_seconds(), 3),
        waiting_seconds=None if (waiting := _waiting_seconds()) is None else round(waiting, 3),
    )
    with open(path, "a") as log:  # one short line per process: appends from parallel jobs do not interleave
        log.write(json.dumps(record) + "\n")


atexit.register(_record_process)
