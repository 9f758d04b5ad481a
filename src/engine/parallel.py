"""Large batches of rows over the machine's cores.

numpy's partitions and comparisons and scipy's sparse products release the GIL, so threads run them in parallel.
Every row is computed exactly as it would be alone, so a profile scores and ranks the same in a batch (evaluation,
tuning) as alone (serving), to the bit. Requests (a row or a few) never start a thread.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

Block = TypeVar("Block")


def by_row_blocks(work: Callable[[int, int], Block], n_rows: int, rows_per_thread: int = 128) -> list[Block]:
    """``work(start, stop)`` for consecutive blocks of rows covering ``n_rows``, in order: one block (this thread)
    below 2 x ``rows_per_thread`` rows, otherwise one per core, each at least ``rows_per_thread`` rows."""
    threads = min(len(os.sched_getaffinity(0)), n_rows // rows_per_thread)
    if threads < 2:
        return [work(0, n_rows)]
    bounds = np.linspace(0, n_rows, threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, bounds[:-1], bounds[1:]))
