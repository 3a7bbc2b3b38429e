"""Every Python process started with this folder on PYTHONPATH appends its peak RSS when it exits.

bench/scale.py puts the folder on the jobs' PYTHONPATH and names the file in GEOCONTRAST_PEAK_RSS_LOG; without
that variable nothing is written. One JSON line per process: its argv, working directory and the kernel's
high-water mark of its resident memory (getrusage ``ru_maxrss``, the larger of the process's own and its waited-for
children's), exact where Snakemake's ``benchmark:`` samples RSS once a second for 30 s and then every 30 s, so that
the peak of a job of minutes can fall between two samples.
"""

import atexit
import json
import os
import resource
import sys


def _record_peak_rss() -> None:
    path = os.environ.get("GEOCONTRAST_PEAK_RSS_LOG")
    if not path:
        return
    peak_kb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    record = {"argv": sys.argv, "cwd": os.getcwd(), "pid": os.getpid(), "max_rss_mb": round(peak_kb / 1024, 1)}
    with open(path, "a") as log:  # one short line per process: appends from parallel jobs do not interleave
        log.write(json.dumps(record) + "\n")


atexit.register(_record_peak_rss)
