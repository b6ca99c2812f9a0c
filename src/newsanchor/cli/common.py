"""What every ``newsanchor`` command shares: one-line errors, progress bars, the stderr console."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import NewsanchorError

stderr = Console(stderr=True)
LOG_EVERY_S = 10.0
# synthesize and serve
PRECISION_HELP = ("The renderer's arithmetic: auto (bf16 where the hardware runs it natively, else fp32), fp32 or bf16. "
                  "Written into the mp4's metadata; the same script or speech and precision give the same mp4.")


def checked_precision(precision: str) -> str:
    """``--precision`` of synthesize and serve, checked before any work."""
    from ..render.runtime import PRECISIONS

    if precision not in PRECISIONS:
        raise NewsanchorError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``newsanchor: MESSAGE`` on stderr and exit with ``code``."""
    print(f"newsanchor: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


@contextmanager
def user_errors(resumable: bool = False):
    """Turn the project's own errors and Ctrl-C into one line and an exit code; ``resumable``:
    the command keeps its finished work and continues from it when run again (say so only then)."""
    try:
        yield
    except NewsanchorError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; finished work is kept — run the same command again to resume" if resumable
             else "interrupted", 130)


@contextmanager
def frame_progress(description: str, enabled: bool):
    """A progress bar counting frames, shown from the moment work starts, as a factory
    ``total → advance(frames)`` for library calls."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.1f} frames/s"), TimeRemainingColumn(),
        console=stderr, disable=not enabled,
    )
    started = time.perf_counter()
    shown = False

    def factory(total: int):
        nonlocal shown
        shown = True
        progress.start()  # only now: an input error before this point prints nothing but itself
        task = progress.add_task(description, total=total, rate=0.0)
        logged = [started]

        def advance(frames: float) -> None:
            progress.advance(task, frames)
            done = progress.tasks[task].completed
            now = time.perf_counter()
            rate = done / max(now - started, 1e-6)
            progress.update(task, rate=rate)
            if enabled and not stderr.is_terminal and now - logged[0] >= LOG_EVERY_S:
                # a log file gets a plain line now and then instead of a live bar
                logged[0] = now
                eta = (total - done) / max(rate, 1e-6)
                print(f"{description}: {done:.0f}/{total} frames, {rate:.1f} frames/s, {eta:.0f} s left",
                      file=sys.stderr, flush=True)

        return advance

    try:
        yield factory
    finally:
        if shown:
            progress.stop()


@contextmanager
def step_progress(label: str, quiet: bool):
    """A progress bar over training steps showing the latest losses, as an ``on_step(step,
    total, losses)`` callback; shown from the first step (a resumed run starts part-way)."""
    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[losses]}"),
                        TimeRemainingColumn(), console=stderr, disable=quiet)
    task = None

    def on_step(step: int, total: int, losses: dict) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(label, total=total, completed=step - 1, losses="")
        progress.update(task, completed=step, losses=" ".join(f"{k} {v:.4g}" for k, v in losses.items()))

    try:
        yield on_step
    finally:
        if task is not None:
            progress.stop()


@contextmanager
def overall_progress(label: str, enabled: bool):
    """One progress bar over a whole multi-stage job, with its ETA and what it is doing now, as
    an ``on_progress(fraction 0…1, what)`` callback; shown from the first report."""
    progress = Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                        TextColumn("{task.fields[what]}"), console=stderr, disable=not enabled)
    task = None
    logged = [0.0]

    def on_progress(fraction: float, what: str) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(label, total=1000, what="")
        progress.update(task, completed=round(1000 * fraction), what=what)
        now = time.perf_counter()
        if enabled and not stderr.is_terminal and now - logged[0] >= LOG_EVERY_S:
            logged[0] = now
            print(f"{label}: {fraction:.0%}, {what}", file=sys.stderr, flush=True)

    try:
        yield on_progress
    finally:
        if task is not None:
            progress.stop()
