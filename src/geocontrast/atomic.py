"""Atomic file output: write to a temporary name beside the target, rename on success.

A killed or failing job then never leaves a half-written file under the final name, where Snakemake or a
resuming run would take it for complete. A job killed with SIGKILL cannot clean up its temporary file; the next
writer of the same target removes it (Snakemake's locks ensure one job per output at a time).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, remove_orphans: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (created if needed); rename it to ``path`` if the block succeeds.

    The temporary name keeps the suffix, so writers that infer the format from it (numpy, matplotlib) still work.
    Temporary files of the same target left by writers that are no longer running are deleted first, unless
    ``remove_orphans`` is False: finding them lists the folder, once per file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if remove_orphans:
        _remove_orphaned_partials(path)
    partial = _partial_path(path, os.getpid())
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text(text: str, path) -> None:
    """``text`` at ``path``, atomically."""
    with atomic_path(path) as partial:
        partial.write_text(text)


def write_json(obj, path) -> None:
    """``obj`` as indented JSON at ``path``, atomically."""
    write_text(json.dumps(obj, indent=2) + "\n", path)


def write_jsonl(records, path) -> None:
    """``records`` as JSON lines (one compact object per line) at ``path``, atomically: the whole file each time,
    so a kill never leaves a half line that a reader would fail on."""
    write_text("".join(json.dumps(record) + "\n" for record in records), path)


def _partial_path(path: Path, pid: int | str) -> Path:
    return path.with_name(f".{path.stem}.partial-{pid}{path.suffix}")


def _remove_orphaned_partials(path: Path) -> None:
    """Delete the temporary files of ``path`` whose writer process is gone (killed before it could clean up)."""
    for partial in path.parent.glob(_partial_path(path, "*").name):
        pid = partial.name[len(f".{path.stem}.partial-") : len(partial.name) - len(path.suffix)]
        if pid.isdigit() and not _running(int(pid)):
            partial.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True
