"""How an anchor is made, and how a time budget is spread over the stages.

The budget covers the whole call, from the first check to the report. Checking, preparing,
bundling and reporting take what they take (their time is estimated beforehand only to weigh
the progress bar); the training stages share what is left: the audio→mouth model gets
:data:`MOUTH_SHARE` of it (it converges in a few hundred steps; early stopping usually ends it
sooner), the renderer the rest. A stage's steps are its seconds over its own speed, measured on
its first :attr:`CreatePlan.calibration_steps` steps on this machine, so a GPU trains more steps
in the same minutes (up to the plan's cap, then it simply finishes sooner).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..template import DEFAULT_TEMPLATE_FRAMES

DEFAULT_MINUTES = 60.0  # a 3-minute recording on a 2-core CPU: about an hour in all
MOUTH_SHARE = 0.12
# Estimates for the progress bar and the budget (2-core CPU; what is measured replaces them)
CHECK_S_PER_RECORDED_S = 0.2
PREPARE_FRAMES_PER_S = 40.0
BUNDLE_S = 20.0
REPORT_S_PER_FRAME = 0.5


@dataclass(frozen=True)
class CreatePlan:
    """What an anchor is trained as. The defaults are for a presenter's real recordings; the
    demo and the tests use smaller plans.

    mouth_max_epochs / renderer_max_steps: caps; with a budget the steps come from the minutes
        (never fewer than the floors), without one (``minutes=None``) these are the steps.
    report_frames: held-out frames the quality report renders and measures at most (30 s).
    """

    size: int = 256
    mouth_model: str = "tcn-gan"
    mouth_max_epochs: float = 20.0
    mouth_max_steps: int = 0  # 0: the epochs decide
    mouth_min_steps: int = 50
    mouth_overrides: dict = field(default_factory=dict)
    renderer_config: str = "lower-face-bank"
    renderer_batch: int = 8
    renderer_max_steps: int = 6000
    renderer_min_steps: int = 200
    renderer_overrides: dict = field(default_factory=dict)
    calibration_steps: int = 20
    template_frames: int = DEFAULT_TEMPLATE_FRAMES
    report_frames: int = 750
    loader_workers: int = 1

    def key(self) -> str:
        """What identifies the plan in the work folder (a changed plan is a different anchor)."""
        return repr(sorted((k, repr(v)) for k, v in self.__dict__.items()))


def steps_for(seconds: float, seconds_per_step: float, floor: int, cap: int) -> int:
    """Steps that fit in ``seconds`` at the measured speed, within [floor, cap]."""
    fitting = int(seconds / max(seconds_per_step, 1e-6))
    return max(min(floor, cap), min(cap, fitting))


def training_seconds(budget_s: float, spent_s: float, still_to_come_s: float) -> float:
    """What the budget leaves for training after the work done and the work that must follow."""
    return max(0.0, budget_s - spent_s - still_to_come_s)
