"""A 2-D ``.npy`` file read a block of rows at a time, without keeping the file mapped.

A memory map held open keeps every page it has touched resident in the process, and the kernel's readahead
touches far more pages than the rows asked for: reading the val and test rows of a 500,000 x 3,000 float32
geographic prior (6 GB) through one open map made nearly the whole file part of the job's memory. Each read here
goes through a map of its own that closes with it, so a job holds only the copy of the rows it asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class NpyRows:
    """The rows of the ``.npy`` at ``path`` on demand: ``rows[index]`` (an int array, a slice) is an in-memory
    copy; ``shape``, ``dtype`` and ``len()`` are the file's."""

    def __init__(self, path):
        self.path = Path(path)
        mapped = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype = mapped.shape, mapped.dtype
        del mapped

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        mapped = np.load(self.path, mmap_mode="r")
        rows = np.array(mapped[index], subok=False)  # a copy: the map closes when `mapped` goes
        del mapped
        return rows
