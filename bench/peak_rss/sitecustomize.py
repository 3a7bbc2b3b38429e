"""Every Python process started with this folder on PYTHONPATH appends its peak RSS when it exits.

bench/scale.py puts the folder on the jobs' PYTHONPATH and names the file in GEOCONTRAST_PEAK_RSS_LOG; without
that variable nothing is written. One JSON line per process: its argv, working directory, ``max_rss_mb``, the
kernel's high-water mark of its own resident memory since it started (``VmHWM``; ``getrusage``'s ``ru_maxrss``
would also count the process it was forked from) and ``children_max_rss_mb``, the largest of its waited-for child
processes' (a worker pool's). Exact where Snakemake's ``benchmark:`` samples RSS once a second for 30 s and then
every 30 s, so that the peak of a job of minutes can fall between two samples.
"""

import atexit
import json
import os
import resource
import sys


def _own_peak_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _record_peak_rss() -> None:
    path = os.environ.get("GEOCONTRAST_PEAK_RSS_LOG")
    if not path:
        return
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    record = {"argv": sys.argv, "cwd": os.getcwd(), "pid": os.getpid()}
    record.update(max_rss_mb=round(_own_peak_kb() / 1024, 1), children_max_rss_mb=round(children_kb / 1024, 1))
    with open(path, "a") as log:  # one short line per process: appends from parallel jobs do not interleave
        log.write(json.dumps(record) + "\n")


atexit.register(_record_peak_rss)
