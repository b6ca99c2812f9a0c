"""Progress reporting shared by the command line and long library work."""

from __future__ import annotations

from typing import Callable

ProgressFactory = Callable[[int], Callable[[float], None]]  # total → advance(amount)


def done_of_total(factory: ProgressFactory) -> Callable[[int, int], None]:
    """Adapt a ``total → advance(n)`` progress factory to callbacks ``(done so far, total)``,
    the form library loops report in; the bar starts on the first report."""
    state: dict = {"advance": None, "done": 0}

    def on_progress(done: int, total: int) -> None:
        if state["advance"] is None:
            state["advance"] = factory(total)
        state["advance"](done - state["done"])
        state["done"] = done

    return on_progress
