"""Keeping NumPy's BLAS on one thread where it only meets small matrices.

The facial maps, the reference warps and the training samples use NumPy matrix products and
solves on small matrices (a thin-plate spline of ~40 points, a 144×13 · 13×192 interpolation).
OpenBLAS splits them over its own threads, which then spin for a while waiting for more work —
on the cores PyTorch's threads need next. On the 2-core development CPU the lower-face
renderer's forward pass took 30.6 ms a frame between two map computations and 12.9 ms with
NumPy's BLAS on one thread (``OPENBLAS_NUM_THREADS=1``); the small products lose nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache


@lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finds the loaded BLAS libraries once (~10 ms)


def single_threaded_blas() -> AbstractContextManager:
    """A context in which NumPy's BLAS (and LAPACK) runs on the calling thread only."""
    return _controller().limit(limits=1, user_api="blas")


def limit_blas_in_worker(_worker_id: int = 0) -> None:
    """A data-loader worker's ``worker_init_fn``: BLAS on one thread for the worker's lifetime
    (the worker only builds samples; the training's threads are in the main process)."""
    _controller().limit(limits=1, user_api="blas")
