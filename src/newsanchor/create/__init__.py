"""Recordings → a checked, trained and reported anchor in one call. ``newsanchor anchor create``,
the service's Anchors page and the demo all make anchors with :func:`create_anchor`.

Stages, each kept in the work folder (``OUT.work`` beside the bundle unless given) and skipped
when the same call runs again — after Ctrl-C, a kill or a reboot it goes on where it stopped:

1. check    — ``recording_check``: every problem at once, and nothing is written unless the
              recordings pass (problems named in ``accept`` are noted in the report instead);
2. prepare  — recordings → dataset at the plan's crop size (resumes clip by clip);
3. mouth    — audio→mouth, the paper's TCN-GAN (resumes from its checkpoint);
4. renderer — the lower-face renderer (resumes from its checkpoint);
5. bundle   — the anchor, its template found automatically in the recordings;
6. report   — quality on held-out stretches and a preview (:mod:`.quality`), put into the bundle;

then the bundle is moved to OUT (it appears complete or not at all) and the work folder is
removed. A time budget (``minutes``) is spread over the stages as :mod:`.plan` describes; the training
stages measure their speed as they go and fit their steps to what is left.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import media
from ..bundle import MANIFEST, Presenter, add_quality_report, build_bundle
from ..config import PrepareConfig
from ..dataset import PreparedDataset
from ..errors import NewsanchorError
from ..files import check_output_path, write_atomic
from ..prepare import collect_inputs, prepare
from ..recording_check import RecordingRequirements, check_recordings
from ..recording_check.report import CHECKS, RecordingProblem
from ..render.lower_face import LOWER_FACE_CONFIGS
from ..template import template_in_dataset
from ..timing import FPS
from . import quality
from .plan import (BUNDLE_S, CHECK_S_PER_RECORDED_S, DEFAULT_MINUTES, MOUTH_SHARE, PREPARE_FRAMES_PER_S,
                   REPORT_S_PER_FRAME, CreatePlan, steps_for, training_seconds)

STAGES = ("check", "prepare", "mouth", "renderer", "bundle", "report")
STATE_FILE = "state.json"
RECHECK_STEPS = 250  # training steps between two measurements of the speed (a restart of the trainer: seconds)
# Problems no training can get past: a recording that cannot be read, or shows or says nothing
NOT_ACCEPTABLE = ("unreadable", "no_face", "no_audio", "audio_silent", "too_short")
ACCEPTABLE = tuple(c for c in CHECKS if c not in NOT_ACCEPTABLE)

__all__ = ["ACCEPTABLE", "CreatePlan", "DEFAULT_MINUTES", "RecordingsRejected", "STAGES", "create_anchor", "work_folder"]


class RecordingsRejected(NewsanchorError):
    """The recordings failed their checks: ``problems`` holds each, worded for the user."""

    def __init__(self, problems: Sequence[RecordingProblem]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} with the recordings: "
                         + "; ".join(p.message for p in self.problems))


def work_folder(out: str | Path) -> Path:
    """Where :func:`create_anchor` keeps its stages for the anchor at ``out`` by default."""
    out = Path(out)
    return out.with_name(out.name + ".work")


@dataclass
class _State:
    """What the work folder has finished, saved after every stage (``state.json``)."""

    folder: Path
    fingerprint: str
    seconds: dict[str, float] = field(default_factory=dict)  # finished stages
    steps: dict[str, int] = field(default_factory=dict)  # planned training steps, once measured
    reached: dict[str, int] = field(default_factory=dict)  # the step each training stage got to
    accepted: list[str] = field(default_factory=list)  # recording problems accepted, worded
    recorded_s: float = 0.0
    presenter: dict = field(default_factory=dict)  # the presenter the bundle stage used
    finished: bool = False  # the bundle is in place (a work folder kept with --keep-work)

    @classmethod
    def load(cls, folder: Path) -> _State | None:
        try:
            data = json.loads((folder / STATE_FILE).read_text())
            return cls(folder, **data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as err:
            raise NewsanchorError(f"{folder / STATE_FILE}: unreadable ({err}); remove {folder} to start over") from None

    def save(self) -> None:
        data = {k: v for k, v in self.__dict__.items() if k != "folder"}
        write_atomic(self.folder / STATE_FILE, lambda tmp: tmp.write_text(json.dumps(data, indent=1)))

    def done(self, stage: str) -> bool:
        return stage in self.seconds

    def finish(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 1)
        self.save()


class _Progress:
    """One overall fraction over the stages, each weighed by its expected seconds."""

    def __init__(self, on_progress: Callable[[float, str], None] | None):
        self.on_progress = on_progress
        self.weights = dict.fromkeys(STAGES, 1.0)
        self.finished: set[str] = set()
        self.shown = 0.0
        self.what = ""

    def expect(self, stage: str, seconds: float) -> None:
        self.weights[stage] = max(seconds, 1.0)

    def update(self, stage: str, fraction: float, what: str | None = None) -> None:
        if self.on_progress is None:
            return
        total = sum(self.weights.values())
        done = sum(self.weights[s] for s in self.finished) + min(max(fraction, 0.0), 1.0) * self.weights[stage]
        self.shown = max(self.shown, min(done / total, 1.0))  # never backwards when estimates change
        self.what = what or self.what
        self.on_progress(self.shown, self.what)

    def complete(self, stage: str) -> None:
        """The stage is finished (or was, in an earlier run): the bar moves past it."""
        self.finished.add(stage)
        self.update(stage, 1.0)


def _fingerprint(paths: Sequence[Path], plan: CreatePlan) -> str:
    """What the work folder was made from: the recordings (path, size, time) and the plan, hashed."""
    files = []
    for path in paths:
        stat = path.stat()
        files.append([str(path), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps({"recordings": files, "plan": plan.key()}).encode()).hexdigest()


def _recorded_seconds(paths: Sequence[Path]) -> float:
    total = 0.0
    for path in paths:
        try:
            total += media.probe(path, require_audio=False, scan_packets=False).video_duration_s
        except NewsanchorError:
            pass  # the check names it
    return total


def _check(paths: Sequence[Path], plan: CreatePlan, accept: Sequence[str], progress: _Progress) -> tuple[list[str], float]:
    """The recordings checked; returns the accepted problems' words and the recorded seconds."""
    report = check_recordings(paths, RecordingRequirements(crop_size=plan.size),
                              progress=lambda done, total: progress.update("check", done / max(total, 1), "checking the recordings"))
    rejected = [p for p in report.problems if p.check not in accept]
    if rejected:
        raise RecordingsRejected(rejected)
    return [p.message for p in report.problems], sum(r.duration_s or 0.0 for r in report.recordings)


def _train_on_budget(name: str, run: Callable[[int, Callable], dict], seconds_left: Callable[[], float],
                     floor: int, cap: int, plan: CreatePlan, state: _State, on_step: Callable) -> None:
    """Train a stage for the steps its budget buys: its first ``calibration_steps`` steps are
    timed, the seconds left buy the rest (within [floor, cap]), and every :data:`RECHECK_STEPS`
    steps the speed is measured again and the plan redone, so the budget holds when the machine
    gets busier or freer. The plan and how far it got are kept in the state for a resumed run."""
    timed_steps: list[tuple[int, float]] = []

    def timed(step: int, total: int, losses: dict) -> None:
        timed_steps.append((step, time.perf_counter()))
        on_step(step, total, losses)

    reached = state.reached.get(name, 0)
    target = min(state.steps.get(name, plan.calibration_steps), reached + (RECHECK_STEPS if reached else plan.calibration_steps), cap)
    while True:
        timed_steps.clear()
        counters = run(target, timed)
        step = counters["step"]
        if counters.get("done") or step < target or step >= cap:  # early stopping, or the epochs' or the plan's cap
            planned = step
        elif len(timed_steps) >= 3:
            (first, began), (last, ended) = timed_steps[0], timed_steps[-1]
            per_step = (ended - began) / max(last - first, 1)
            planned = step + steps_for(seconds_left(), per_step, max(floor - step, 0), cap - step)
        else:  # resumed at the target: nothing was timed this time
            planned = state.steps.get(name, step + plan.calibration_steps)
        state.steps[name], state.reached[name] = planned, step
        state.save()
        if planned <= step:
            return
        target = min(planned, step + RECHECK_STEPS)


def create_anchor(recordings: Sequence[str | Path], out: str | Path, presenter: Presenter, *,
                  minutes: float | None = DEFAULT_MINUTES, plan: CreatePlan = CreatePlan(),
                  accept: Sequence[str] = (), device: str | None = None, work: str | Path | None = None,
                  keep_work: bool = False, check: bool = True, report: bool = True,
                  on_progress: Callable[[float, str], None] | None = None) -> dict:
    """Make the anchor bundle ``out`` from a presenter's recordings (files or folders of them).

    Args:
        minutes: the time budget of the whole call (see :mod:`.plan`); None trains the plan's
            fixed steps (``mouth_max_steps`` / epochs, ``renderer_max_steps``).
        accept: recording checks (:data:`ACCEPTABLE`) whose problems are noted in the report
            instead of stopping the call (e.g. ``speech_too_short`` for a trial anchor).
        work: the work folder (default :func:`work_folder`), removed at the end unless
            ``keep_work``.
        check / report: run the recording checks and the quality report (the demo skips both).
        on_progress: ``(overall fraction 0…1, what is happening)``, often.

    Returns:
        ``{"anchor", "report" (or None), "accepted_problems", "seconds" (per stage), "steps"}``.

    Raises:
        RecordingsRejected: problems with the recordings (nothing written).
        NewsanchorError: one line: an output that exists, a work folder of other recordings,
            an unreadable file, a stage that fails.
    """
    out = Path(out)
    unknown = [c for c in accept if c not in ACCEPTABLE]
    if unknown:
        raise NewsanchorError(f"cannot accept {', '.join(map(repr, unknown))}: choose from {', '.join(ACCEPTABLE)}")
    if (out / MANIFEST).exists() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise NewsanchorError(f"{out}: already exists; choose another name or remove it")
    check_output_path(out, folder=True)
    work = Path(work) if work is not None else work_folder(out)
    check_output_path(work, folder=True)
    paths = collect_inputs(recordings)
    fingerprint = _fingerprint(paths, plan)
    state = _State.load(work)
    if state is not None and state.fingerprint != fingerprint:
        raise NewsanchorError(f"{work}: holds an unfinished anchor of other recordings or another plan; "
                              f"finish it with the command that started it, or remove the folder to start over")
    budget_s = None if minutes is None else float(minutes) * 60
    if budget_s is not None and budget_s <= 0:
        raise NewsanchorError(f"--minutes {minutes}: give a positive time budget")
    progress = _Progress(on_progress)
    started = time.perf_counter()
    recorded_s = state.recorded_s if state is not None else _recorded_seconds(paths)
    frames = recorded_s * FPS
    progress.expect("check", recorded_s * CHECK_S_PER_RECORDED_S if check else 0.0)
    progress.expect("prepare", frames / PREPARE_FRAMES_PER_S)
    progress.expect("bundle", BUNDLE_S)
    progress.expect("report", min(frames * 0.1, plan.report_frames) * REPORT_S_PER_FRAME if report else 0.0)
    for stage in ("mouth", "renderer"):
        progress.expect(stage, (budget_s or 600) * (MOUTH_SHARE if stage == "mouth" else 1 - MOUTH_SHARE) * 0.8)

    # 1. check: the first write happens only after the recordings pass
    if state is None:
        accepted: list[str] = []
        if check:
            accepted, recorded_s = _check(paths, plan, accept, progress)
        work.mkdir(parents=True, exist_ok=True)
        state = _State(work, fingerprint, accepted=accepted, recorded_s=recorded_s)
        state.finish("check", time.perf_counter() - started)
    progress.complete("check")

    def spent() -> float:
        return sum(state.seconds.values()) + (time.perf_counter() - stage_started)

    # 2. prepare
    dataset_dir = work / "dataset"
    stage_started = time.perf_counter()
    if not state.done("prepare"):
        def frames_factory(total: int) -> Callable[[float], None]:
            done = [0.0]

            def advance(amount: float) -> None:
                done[0] += amount
                progress.update("prepare", done[0] / max(total, 1), "preparing the recordings")
            return advance

        prepare(paths, dataset_dir, PrepareConfig(size=plan.size), progress_factory=frames_factory)
        state.finish("prepare", time.perf_counter() - stage_started)
    progress.complete("prepare")
    dataset = PreparedDataset(dataset_dir)
    report_s = (quality.held_out_frames(dataset, plan.report_frames) * REPORT_S_PER_FRAME) if report else 0.0
    progress.expect("report", report_s)
    to_come = BUNDLE_S + report_s
    if budget_s is not None:
        left = training_seconds(budget_s, spent(), to_come)
        progress.expect("mouth", MOUTH_SHARE * left)
        progress.expect("renderer", (1 - MOUTH_SHARE) * left)

    # 3. mouth and 4. renderer
    for stage in ("mouth", "renderer"):
        stage_started = time.perf_counter()
        if not state.done(stage):
            _train(stage, dataset_dir, work / stage, plan, state, budget_s, spent, to_come, device, progress)
            state.finish(stage, time.perf_counter() - stage_started)
        progress.complete(stage)

    # 5. bundle
    bundle_dir = work / "bundle"
    stage_started = time.perf_counter()
    person = {"name": presenter.name, "consent": presenter.consent}
    if not state.done("bundle") or state.presenter != person:
        progress.update("bundle", 0.0, "bundling the anchor")
        shutil.rmtree(bundle_dir, ignore_errors=True)
        build_bundle(dataset_dir, work / "mouth", work / "renderer", bundle_dir, presenter=presenter,
                     template=template_in_dataset(dataset_dir, None, plan.template_frames))
        state.presenter = person
        state.seconds.pop("report", None)
        state.finish("bundle", time.perf_counter() - stage_started)
    progress.complete("bundle")

    # 6. report
    result: dict | None = None
    stage_started = time.perf_counter()
    if report:
        folder = work / "quality"
        if state.done("report"):
            result = json.loads((folder / quality.REPORT_JSON).read_text())
        else:
            result = quality.measure_quality(
                bundle_dir, dataset_dir, work / "renderer", folder, max_frames=plan.report_frames, device=device,
                on_frames=lambda done, total: progress.update("report", done / max(total, 1), "measuring the anchor on held-out speech"))
            result["accepted_problems"] = state.accepted
            (folder / quality.REPORT_JSON).write_text(json.dumps(result, indent=1, allow_nan=False))
            (folder / quality.REPORT_MD).write_text(quality.markdown_report(result) + "\n")
            add_quality_report(bundle_dir, {name: folder / name for name in (quality.REPORT_JSON, quality.REPORT_MD, quality.PREVIEW)},
                               {"met": result["met"], "not_met": result["not_met"], "held_out_s": result["held_out_s"],
                                "accepted_problems": len(state.accepted)})
            state.finish("report", time.perf_counter() - stage_started)
    progress.complete("report")

    # the anchor appears complete, then the work is cleared
    if out.is_dir():
        out.rmdir()  # empty (checked above)
    bundle_dir.rename(out)
    state.finished = True
    state.save()
    summary = {"anchor": str(out), "report": result, "accepted_problems": state.accepted,
               "seconds": dict(state.seconds), "steps": dict(state.steps)}
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def _train(stage: str, dataset_dir: Path, run_dir: Path, plan: CreatePlan, state: _State, budget_s: float | None,
           spent: Callable[[], float], to_come: float, device: str | None, progress: _Progress) -> None:
    """Train the audio→mouth model or the renderer into ``run_dir`` (resuming it) for the steps
    the plan or the budget gives."""
    from ..train.lower_face import LowerFaceTrainConfig, train_lower_face
    from ..train.mouth import MouthTrainConfig, train_mouth
    from ..train.renderer import RendererTrainConfig, train_renderer

    what = "training audio→mouth" if stage == "mouth" else f"training the renderer ({plan.renderer_config})"
    share = MOUTH_SHARE if stage == "mouth" else 1.0
    # with a budget the stage's share of it is what the bar shows (the steps are known only
    # after the first ones are timed); without one, the steps
    allotted = None if budget_s is None else share * training_seconds(budget_s, spent(), to_come)
    started = time.perf_counter()

    def on_step(step: int, total: int, losses: dict) -> None:
        planned = total if allotted is None else state.steps.get(stage)  # None while the first steps are timed
        fraction = (step / max(total, 1) if allotted is None
                    else min(0.99, (time.perf_counter() - started) / max(allotted, 1.0)))
        progress.update(stage, fraction, f"{what}: step {step}" + (f" of {planned}" if planned else ""))

    if stage == "mouth":
        mouth_config = MouthTrainConfig(model=plan.mouth_model, max_epochs=plan.mouth_max_epochs,
                                        max_steps=plan.mouth_max_steps, model_overrides=dict(plan.mouth_overrides))

        def run(max_steps: int, callback: Callable) -> dict:
            return train_mouth(dataset_dir, run_dir, replace(mouth_config, max_steps=max_steps), device=device, on_step=callback)
        cap, floor = plan.mouth_max_steps or 10**9, plan.mouth_min_steps
    else:
        common: dict[str, Any] = dict(config=plan.renderer_config, batch_size=plan.renderer_batch, sample_every=10**9,
                                      loader_workers=plan.loader_workers, renderer_overrides=dict(plan.renderer_overrides))

        def run(max_steps: int, callback: Callable) -> dict:
            if plan.renderer_config in LOWER_FACE_CONFIGS:
                return train_lower_face(dataset_dir, run_dir, LowerFaceTrainConfig(**common, max_steps=max_steps),
                                        device=device, on_step=callback)
            return train_renderer(dataset_dir, run_dir, RendererTrainConfig(**common, max_steps=max_steps),
                                  device=device, on_step=callback)
        cap, floor = plan.renderer_max_steps, plan.renderer_min_steps

    if budget_s is None:
        run(plan.mouth_max_steps if stage == "mouth" else plan.renderer_max_steps, on_step)
        return

    def seconds_left() -> float:
        return share * training_seconds(budget_s, spent(), to_come)

    _train_on_budget(stage, run, seconds_left, floor, cap, plan, state, on_step)
