"""The offline demo: an anchor built from nothing but what ships inside the dependencies.

``run_demo`` makes a whole anchor the way a newsroom would — with ``create_anchor``, the call
behind ``newsanchor anchor create`` — from a synthetic actor (:mod:`newsanchor.demo.actor`: the
public-domain astronaut photograph animated by a viseme model from TTS phoneme timings) instead
of a person's recordings:

1. speech   — the TTS voice reads :data:`TRAINING_SENTENCES` (~2.5 min) in two clips;
2. record   — the actor "records" them: mp4 clips with exact lip movement;
3. anchor   — ``create_anchor`` with the demo's plan (:class:`DemoPlan`: 128² crops, the TCN
              with L2 only, the lower-face renderer for a fixed number of steps), without the
              recording checks (the actor is made to pass them but never pauses for 2 s) and
              without the quality report (minutes the demo need not spend);
4. speak    — the news script → ``demo.mp4`` with ``make_video``, as ``newsanchor synthesize`` makes it.

Stages 1–3 are cached under the user's cache directory (``$XDG_CACHE_HOME/newsanchor`` or
``~/.cache/newsanchor``): the recordings, and the anchor, whose making resumes where it stopped
(``create_anchor``'s work folder), so an interrupted first run goes on and later runs only do
stage 4. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from .. import __version__
from ..create.plan import CreatePlan
from ..progress import done_of_total

DEMO_FORMAT = 3  # bump to rebuild every cached demo anchor (2: the lower-face renderer; 3: made by create_anchor)
PRESENTER = "Demo anchor (synthetic actor from the NASA astronaut photograph, public domain)"
CONSENT = ("Synthetic actor built from a public-domain NASA photograph shipped with scikit-image; "
           "no real person's recordings are used.")

DEMO_SCRIPT = (
    "Good evening, and welcome to the news. "
    "Tonight, city officials opened a new bridge across the river, ending two years of construction. "
    "Meteorologists expect a dry and sunny weekend, with temperatures rising slowly. "
    "This presenter is a synthetic anchor, made entirely by computer."
)

TRAINING_SENTENCES = (
    "The council met on Monday to discuss the budget for the coming year.",
    "Heavy rain is expected in the north, while the south stays mostly dry.",
    "A local school won the national robotics championship for the second time.",
    "Shares rose sharply after the company reported better profits than expected.",
    "Firefighters brought the blaze under control early this morning.",
    "The museum will reopen next week after a long renovation.",
    "Officials urged drivers to avoid the highway during the repairs.",
    "Scientists announced a breakthrough in battery research on Thursday.",
    "Thousands of runners joined the marathon despite the cold weather.",
    "The mayor promised more buses and safer bicycle lanes.",
    "Food prices have fallen for the third month in a row.",
    "A rare bird was spotted near the lake, delighting local watchers.",
    "The new hospital wing will open its doors in the spring.",
    "Voters will choose a new governor in November.",
    "The football team celebrated its victory with a parade through the city.",
    "Astronomers observed a bright comet passing close to the sun.",
    "The library is offering free computer classes for older residents.",
    "Engineers are testing a quieter, cleaner kind of aircraft engine.",
    "Farmers expect a good harvest thanks to the mild summer.",
    "Police thanked the public for their help in finding the missing child.",
    "The orchestra performed a sold-out concert in the old cathedral.",
    "A power cut left several neighbourhoods in the dark for an hour.",
    "The government plans to plant a million trees over five years.",
    "Students protested peacefully outside the university on Friday.",
    "The zoo welcomed a baby elephant, its first in a decade.",
    "Bridge inspections found no serious damage after the earthquake.",
    "The airline will add direct flights to three new cities.",
    "Doctors recommend regular exercise and plenty of sleep.",
    "A famous painting was returned to the gallery it was stolen from.",
    "Unemployment fell slightly, according to figures published today.",
    "The festival will feature music, food and fireworks by the water.",
    "Volunteers cleaned the beach and collected tons of plastic.",
    "The court will announce its decision later this month.",
    "Wind farms produced a record share of the country's electricity.",
    "Commuters faced long delays because of a signal failure.",
    "The chess champion defended her title in a thrilling final game.",
    "Researchers mapped the ocean floor with underwater robots.",
    "A new park with playgrounds and gardens opened downtown.",
    "The bakery on Main Street has served bread for a hundred years.",
    "Finally, the weather: clear skies tonight and a warm, bright morning.",
)


@dataclass(frozen=True)
class DemoPlan:
    """What the demo anchor is built from and how long it trains (tests use a smaller plan).

    clips: recordings the sentences are spread over; each should last over a minute so that the
        dataset's split cuts inside clips (shorter clips snap to whole clips, leaving none to validate).
    """

    sentences: tuple[str, ...] = TRAINING_SENTENCES
    clips: int = 2
    # the actor's stable crop is 256 px of its 384² frames: at 128² the lower face was rendered at
    # half the output's scale and its mouth kept a quarter of the recordings' detail after
    # paste-back (0.24-0.31); at 256², its own scale, the bank renderer keeps about 0.7 of it
    crop_size: int = 256
    mouth_epochs: float = 15.0
    mouth_max_steps: int = 0
    renderer_config: str = "lower-face-bank"  # or another lower-face preset, or a pix2pixHD config (light-256)
    renderer: tuple[tuple[str, int], ...] = ()  # overrides of the config's sizes
    renderer_steps: int = 600
    renderer_batch: int = 8
    template_frames: int = 50

    def create_plan(self) -> CreatePlan:
        """The plan ``create_anchor`` trains the demo anchor with (fixed steps, no budget)."""
        return CreatePlan(size=self.crop_size, mouth_model="tcn", mouth_max_epochs=self.mouth_epochs,
                          mouth_max_steps=self.mouth_max_steps, renderer_config=self.renderer_config,
                          renderer_overrides=dict(self.renderer), renderer_max_steps=self.renderer_steps,
                          renderer_batch=self.renderer_batch, template_frames=self.template_frames)


@dataclass
class DemoHooks:
    """How the demo reports progress (the CLI passes bars; tests pass nothing).

    stage(name): a stage starts. frames(label): context manager yielding a ``total →
    advance(n)`` factory (see ``newsanchor.cli.common.frame_progress``). progress(label):
    context manager yielding an ``on_progress(fraction, what)`` callback over the anchor's
    making (see ``newsanchor.cli.common.overall_progress``).
    """

    stage: Callable[[str], None] = lambda name: None
    frames: Callable[[str], ContextManager] = lambda label: nullcontext(None)
    progress: Callable[[str], ContextManager] = lambda label: nullcontext(None)


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/newsanchor`` or ``~/.cache/newsanchor``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "newsanchor"


def demo_cache(root: Path | None = None, plan: DemoPlan = DemoPlan()) -> Path:
    """The plan's own folder: another plan (or newsanchor version) builds another anchor."""
    key = hashlib.sha256(repr(dataclasses.astuple(plan)).encode()).hexdigest()[:10]
    return (root or cache_root()) / f"demo-v{DEMO_FORMAT}-{__version__}-{key}"


def _done(folder: Path) -> bool:
    return (folder / ".done").is_file()


def _mark_done(folder: Path) -> None:
    (folder / ".done").write_text("ok\n")


def _phoneme_tuples(sentence) -> list[tuple[str, float, float]]:
    """The sentence's phonemes relative to its own start; words split evenly into letters when
    the voice gave no phoneme timings (the actor's viseme model reads letters too)."""
    if sentence.phonemes is not None:
        return [(p.symbol, p.start - sentence.start, p.end - sentence.start) for p in sentence.phonemes]
    out = []
    for word in sentence.words:
        letters = [c for c in word.text.lower() if c.isalpha()] or [" "]
        step = (word.end - word.start) / len(letters)
        out += [(c, word.start - sentence.start + i * step, word.start - sentence.start + (i + 1) * step)
                for i, c in enumerate(letters)]
    return out


def record_training_clips(folder: Path, plan: DemoPlan, hooks: DemoHooks) -> Path:
    """Stages 1–2: speak the training sentences and film the actor saying them."""
    from ..speech.speak import speak_sentences
    from .actor import write_actor_video

    if _done(folder):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    per_clip = int(np.ceil(len(plan.sentences) / plan.clips))
    texts = [" ".join(plan.sentences[i:i + per_clip]) for i in range(0, len(plan.sentences), per_clip)]
    for index, text in enumerate(texts):
        hooks.stage(f"recording the synthetic actor: clip {index + 1} of {len(texts)}")
        phonemes, waves = [], []
        offset = 0.0
        for sentence in speak_sentences(text):
            phonemes += [(s, a + offset, b + offset) for s, a, b in _phoneme_tuples(sentence)]
            waves.append(sentence.waveform)
            offset += sentence.duration
        write_actor_video(folder / f"actor_{index:02d}.mp4", phonemes, np.concatenate(waves), seed=index)
    _mark_done(folder)
    return folder


def build_demo_anchor(root: Path | None = None, hooks: DemoHooks = DemoHooks(), plan: DemoPlan = DemoPlan()) -> Path:
    """Stages 1–3, each skipped when its cached result is complete. Returns the bundle path."""
    from ..bundle import MANIFEST, Presenter
    from ..create import create_anchor

    cache = demo_cache(root, plan)
    anchor = cache / "anchor"
    if (anchor / MANIFEST).is_file():
        return anchor
    clips = record_training_clips(cache / "recordings", plan, hooks)
    shown = [""]
    with hooks.progress("demo anchor") as on_progress:
        def report(fraction: float, what: str) -> None:
            stage = what.split(":")[0]  # "training the renderer (lower-face): step 3 of 1500"
            if stage != shown[0]:
                shown[0] = stage
                hooks.stage(stage)
            if on_progress is not None:
                on_progress(fraction, what)

        create_anchor([clips], anchor, Presenter(PRESENTER, CONSENT), minutes=None, plan=plan.create_plan(),
                      check=False, report=False, work=cache / "work", on_progress=report)
    return anchor


def run_demo(out: str | Path, *, text: str = DEMO_SCRIPT, root: Path | None = None,
             hooks: DemoHooks = DemoHooks(), plan: DemoPlan = DemoPlan()) -> dict:
    """Build (or reuse) the demo anchor and make it read ``text`` into ``out``; returns the
    video's summary (see ``newsanchor.synthesis.make_video``) and the anchor's folder."""
    from ..bundle import load_bundle
    from ..pipeline import AnchorPipeline
    from ..synthesis import VideoRequest, make_video

    request = VideoRequest(text=text)
    anchor = build_demo_anchor(root, hooks, plan)
    hooks.stage("reading the news script")
    pipeline = AnchorPipeline(load_bundle(anchor))
    with hooks.frames("synthesize") as factory:
        result = make_video(pipeline, request, out, on_frames=done_of_total(factory) if factory else None)
    result["anchor"] = str(anchor)
    return result
