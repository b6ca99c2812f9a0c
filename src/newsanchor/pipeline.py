"""Synthesis, inference only: speech → the anchor's finished video (pipeline stages 1–7).

``AnchorPipeline(bundle)`` holds the models and the template. For a 16 kHz waveform it
computes the mouth trajectory (MFCC → audio→mouth, closure in pauses), places each mouth in
the template frame's pose with the jaw corrected, draws the facial map, renders the face crop,
pastes it back into the full template frame, optionally keys out a green screen for a studio
background and adds a lower third, draws the disclosure label, and streams the
frames into an H.264/AAC mp4. The template plays back and forth (``template.pingpong_indices``)
for any length. Frames are produced in small batches and never held: memory does not grow
with the output's length (the mouth trajectory, 40 bytes a frame, and the waveform are the
only things that do).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from . import __version__, media
from .audio2mouth.stream import MouthStreamer
from .bundle import AnchorBundle
from .composite.burned_captions import CaptionBurner
from .composite.chroma import DEFAULT_KEY, chroma_key_mask, replace_background
from .composite.overlay import DisclosureConfig, apply_disclosure, disclosure_rect, draw_lower_third, lower_third_rect
from .composite.paste import paste_back
from .facemap.jaw import correct_jaw
from .features.audio import MfccStats
from .render.inputs import appearance_reference, input_uses_edges, lower_face_input, region_alpha, renderer_input
from .render.lower_face import LowerFaceConfig
from .render.pix2pixhd import is_lower_face
from .render.references import ReferenceChooser, reference_chooser
from .render.runtime import PRECISIONS, choose_runner
from .speech.captions import Cue
from .template import pingpong_indices
from .threads import single_threaded_blas
from .timing import SAMPLE_RATE

AUDIO_CHUNK = SAMPLE_RATE * 20  # samples of speech turned into mouth frames at a time
# The template's full frames are kept decoded up to this size in all; above it (long 1080p
# templates) they are kept PNG-compressed and decoded when used.
RAW_TEMPLATE_BYTES = 256 << 20


@dataclass(frozen=True)
class SynthesisSettings:
    """How a video is made from a bundle.

    close_mouth: ease the mouth to the speaker's closed pose in pauses.
    batch_size: face crops rendered at once (4: light-256 bf16 runs 0.099 s a frame at 4, 0.111 at 8 on
        the development CPU; compiled 0.078 and 0.080).
    label: the visible "AI-generated" label (on by default; see DisclosureConfig).
    background: a studio image [H, W, 3] RGB put behind the presenter, keyed out of the template's
        green screen (``key_colour``), or None to keep the recorded background.
    lower_third: (title, subtitle or None) of a news caption bar, or None.
    captions: cues to burn into the picture (``Speech.cues()``), or None.
    compile_renderer: compile the renderer first (see ``RendererRunner``): ~40 s once, then
        faster frames; worth it for long videos and long-lived workers.
    crf: H.264 quality (lower is better and larger). Videos are encoded reproducibly (see
        ``media.write_video``): CRF 20 there is as large and as good as CRF 18 was before.
    precision: the renderer's arithmetic, auto (bf16 where the hardware runs it natively, else
        fp32), fp32 or bf16; written into the mp4's metadata. The same inputs and precision give
        the same frames and the same mp4.
    """

    close_mouth: bool = True
    batch_size: int = 4
    label: DisclosureConfig = field(default_factory=DisclosureConfig)
    background: np.ndarray | None = None
    key_colour: tuple[int, int, int] = DEFAULT_KEY
    lower_third: tuple[str, str | None] | None = None
    captions: tuple[Cue, ...] | None = None
    compile_renderer: bool = False
    crf: int = 20
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


class _TemplateFrames:
    """The template's full frames by index, decoded once, kept raw or PNG-compressed."""

    def __init__(self, frames: Iterator[np.ndarray]):
        self._raw: list[np.ndarray] = []
        self._png: list[bytes] = []
        size = 0
        for frame in frames:
            size += frame.nbytes
            if self._png or size > RAW_TEMPLATE_BYTES:
                if not self._png:  # switch: compress what is held so far
                    self._png = [self._encode(f) for f in self._raw]
                    self._raw = []
                self._png.append(self._encode(frame))
            else:
                self._raw.append(frame)

    @staticmethod
    def _encode(frame: np.ndarray) -> bytes:
        return cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()

    def __len__(self) -> int:
        return len(self._raw) or len(self._png)

    def __getitem__(self, index: int) -> np.ndarray:
        if self._raw:
            return self._raw[index]
        image = cv2.imdecode(np.frombuffer(self._png[index], np.uint8), cv2.IMREAD_COLOR)
        if image is None:  # the PNG was encoded by _encode above
            raise RuntimeError(f"template frame {index}: its in-memory PNG does not decode")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class AnchorPipeline:
    """Speech → frames → mp4 for one anchor bundle. Not thread-safe; one per worker."""

    def __init__(self, bundle: AnchorBundle, *, settings: SynthesisSettings = SynthesisSettings(),
                 device: str | None = None):
        self.bundle, self.settings = bundle, settings
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.mouth_model, _, _, _ = bundle.mouth_model(self.device)
        renderer, self.renderer_config, extra = bundle.renderer(self.device)
        self.use_edges = input_uses_edges(extra)
        self.lower_face = is_lower_face(self.renderer_config)
        self.region: tuple[int, int, int, int] | None = self.renderer_config.region_box(bundle.size) if self.lower_face else None
        self.runner = choose_runner(renderer, device=self.device, batch=settings.batch_size,
                                    precision=settings.precision, compiled=settings.compile_renderer)
        self.stats = MfccStats.from_dict(bundle.manifest["mfcc_stats"])
        closed = bundle.manifest["mouth"].get("closed_mouth")
        self.closed_mouth = np.asarray(closed, np.float32) if (closed is not None and settings.close_mouth) else None
        template = bundle.template_arrays
        self.template_landmarks = template["landmarks"].astype(np.float64)
        self.template_edges = template["edges"]
        self.crop_box = tuple(int(v) for v in template["crop_box"])
        if self.lower_face:
            # the lower-face renderer reads each template crop's own region and the presenter's
            # reference mouths (template crops: ~200 kB a frame at 256²)
            self.template_crops = list(bundle.template_crops())
            self.reference_mouths = bundle.reference_mouths()
            self._aligned_references: dict[int, np.ndarray] = {}
        else:
            first_crop = next(iter(bundle.template_crops()))
            self.reference = appearance_reference(first_crop, self.template_landmarks[0])
        self.template_frames = _TemplateFrames(bundle.template_frames())
        self.set_settings(settings)
        if len(self.template_frames) != len(self.template_landmarks):
            raise ValueError(f"{bundle.root}: template has {len(self.template_frames)} frames but "
                             f"{len(self.template_landmarks)} landmark rows")

    def set_settings(self, settings: SynthesisSettings) -> None:
        """Use other settings for the next videos (the models and template stay loaded)."""
        self.settings = settings
        self.caption_burner = CaptionBurner(settings.captions) if settings.captions else None

    def mouth_trajectory(self, wav16k: np.ndarray) -> np.ndarray:
        """``[S]`` float32 16 kHz → PCA mouths ``[T, K]``, ``T = ceil(S / 640)``.

        Streamed in :data:`AUDIO_CHUNK` pieces (the same result as one pass, see MouthStreamer):
        one pass over a 10-minute waveform held ~200 MB of MFCC and TCN activations."""
        streamer = MouthStreamer(self.mouth_model, self.stats, self.closed_mouth, device=self.device)
        parts = [streamer.push(wav16k[i:i + AUDIO_CHUNK]) for i in range(0, len(wav16k), AUDIO_CHUNK)]
        return np.concatenate(parts + [streamer.flush()])

    def face_landmarks(self, mouth: np.ndarray, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Mouths ``[T, K]`` → (template index per frame ``[T]``, landmarks ``[T, 68, 2]`` crop px) with
        the mouth placed in each template frame's pose and the jaw corrected."""
        indices = pingpong_indices(len(self.template_landmarks), len(mouth), start)
        mouths = self.bundle.mouth_pca.inverse(mouth)
        return indices, correct_jaw(self.template_landmarks[indices], mouths, self.bundle.jaw)

    def frames(self, mouth: np.ndarray, stage_seconds: dict[str, float] | None = None) -> Iterator[np.ndarray]:
        """Mouths ``[T, K]`` → finished frames ``[H, W, 3]`` uint8, streamed in batches.

        ``stage_seconds``, if given, accumulates the time spent in ``maps`` (landmarks, jaw
        correction, facial maps), ``render`` and ``composite`` (paste-back and overlays)."""
        batch = self.settings.batch_size
        timing = stage_seconds if stage_seconds is not None else {}
        chooser = reference_chooser(self.renderer_config, self.reference_mouths) \
            if isinstance(self.renderer_config, LowerFaceConfig) else None
        for first in range(0, len(mouth), batch):
            started = time.perf_counter()
            with single_threaded_blas():  # small matrices: BLAS threads would only spin on the renderer's cores
                indices, landmarks = self.face_landmarks(mouth[first:first + batch], first)
                if self.lower_face:
                    # the mask covers the new face and the template's own (so neither chin shows)
                    faces_masked = [np.stack([lm, self.template_landmarks[i]]) for i, lm in zip(indices, landmarks)]
                    inputs = np.stack([self._region_input(int(i), lm, masked, chooser)
                                       for i, lm, masked in zip(indices, landmarks, faces_masked)])
                else:
                    inputs = np.stack([renderer_input(self.template_edges[i], lm, self.reference, use_edges=self.use_edges)
                                       for i, lm in zip(indices, landmarks)])
            mapped = time.perf_counter()
            faces = self.runner.render(inputs)
            rendered = time.perf_counter()
            timing["maps"] = timing.get("maps", 0.0) + mapped - started
            timing["render"] = timing.get("render", 0.0) + rendered - mapped
            for j, (i, face, lm) in enumerate(zip(indices, faces, landmarks)):
                started = time.perf_counter()
                if self.lower_face:
                    pasted = self._paste_region(int(i), face, faces_masked[j])
                else:
                    pasted = paste_back(self.template_frames[int(i)], face, self.crop_box, lm)
                finished = self.finish(pasted, (first + j) / self.bundle.fps)
                timing["composite"] = timing.get("composite", 0.0) + time.perf_counter() - started
                yield finished

    def _region_box(self) -> tuple[int, int, int, int]:
        """The lower-face renderer's region in the crop (set whenever ``self.lower_face``)."""
        if self.region is None:
            raise RuntimeError("AnchorPipeline: only a lower-face renderer has a region")
        return self.region

    def _region_input(self, index: int, landmarks: np.ndarray, faces: np.ndarray,
                      chooser: ReferenceChooser | None = None) -> np.ndarray:
        """The lower-face renderer's input ``[C, h, w]`` for template frame ``index`` with the face
        ``landmarks [68, 2]`` drawn, masked where ``faces [N, 68, 2]`` are; a bank's references
        from ``chooser`` (frames in order) where given."""
        region = self._region_box()
        x0, y0, w, h = region
        alpha = region_alpha(faces, region)
        warp, count = self.renderer_config.reference_warp, self.renderer_config.references
        resample = self.renderer_config.reference_resample
        if warp == "head" and self.renderer_config.reference_choice == "states":
            # aligned by the eyes and nose, which the new mouth does not move: once per template
            # frame (~25 MB for a 100-frame template at 256²)
            if index not in self._aligned_references:
                self._aligned_references[index] = self.reference_mouths.aligned(self.template_landmarks[index], region,
                                                                                resample=resample)
            references = self._aligned_references[index]
        elif chooser is not None:  # chosen by the new mouth, then bent onto it: every frame
            references = chooser.aligned(landmarks, region, warp, resample)
        else:  # bent onto the new mouth: every frame (~1.5 ms for three at 256²)
            references = self.reference_mouths.aligned(landmarks, region, warp, count, resample)
        return lower_face_input(self.template_edges[index], landmarks, self.template_crops[index][y0:y0 + h, x0:x0 + w], alpha,
                                references, region,
                                use_edges=self.use_edges, masked_frame=self.renderer_config.masked_frame,
                                match_colours=self.renderer_config.match_reference_colours,
                                reference_warp=self.renderer_config.reference_warp)

    def _paste_region(self, index: int, region: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Template frame ``index`` with a rendered region ``[h, w, 3]`` blended in through the
        paste-back mask of ``faces [N, 68, 2]`` (the same mask the renderer was given), colour-matched."""
        x0, y0, w, h = self._region_box()
        # the template crop with the region replaced: paste_back maps crop pixels to the frame box
        # and blends only inside the lower-face mask (within the region, but for a face high in it)
        canvas = self.template_crops[index].copy()
        canvas[y0:y0 + h, x0:x0 + w] = region
        return paste_back(self.template_frames[index], canvas, self.crop_box, faces)

    def finish(self, frame: np.ndarray, t: float = 0.0) -> np.ndarray:
        """Studio background, lower third, burned-in caption (the cue at ``t`` seconds) and the
        disclosure label on a pasted frame [H, W, 3]."""
        settings = self.settings
        if settings.background is not None:
            key = settings.key_colour
            frame = replace_background(frame, settings.background, chroma_key_mask(frame, key), key_colour=key)
        keep_clear = [disclosure_rect(frame.shape, settings.label)]
        if settings.lower_third is not None:
            title, subtitle = settings.lower_third
            frame = draw_lower_third(frame, title, subtitle, keep_clear=keep_clear)
            keep_clear.append(lower_third_rect(frame.shape, keep_clear=keep_clear))
        if self.caption_burner is not None:
            frame = self.caption_burner(frame, t, keep_clear)
        return apply_disclosure(frame, settings.label)

    def synthesize(self, wav16k: np.ndarray, out: str | Path, *,
                   on_frames: Callable[[int, int], None] | None = None) -> dict:
        """Write the video of ``wav16k`` ``[S]`` float32 16 kHz to ``out`` (atomically).

        Returns ``{"video", "frames", "fps", "duration_s", "audio_duration_s", "seconds",
        "frames_per_s", "renderer_path", "stage_seconds"}``; ``stage_seconds`` splits the time
        into ``mouth``, ``maps``, ``render``, ``composite`` and ``encode`` (the H.264/AAC writer).
        """
        started = time.perf_counter()
        wav16k = np.asarray(wav16k, dtype=np.float32)
        mouth = self.mouth_trajectory(wav16k)
        stages = {"mouth": time.perf_counter() - started}
        total = len(mouth)
        done = 0

        def counted() -> Iterator[np.ndarray]:
            nonlocal done
            for frame in self.frames(mouth, stages):
                yield frame
                done += 1
                if on_frames and (done % self.settings.batch_size == 0 or done == total):
                    on_frames(done, total)

        metadata = {**self.settings.label.metadata(), "newsanchor_ai_generated": "true",
                     "newsanchor_version": __version__, "newsanchor_presenter": self.bundle.presenter.name,
                     "newsanchor_precision": self.runner.path}
        written = media.write_video(out, counted(), self.bundle.fps, audio=wav16k, crf=self.settings.crf,
                                    metadata=metadata, reproducible=True)
        seconds = time.perf_counter() - started
        stages["encode"] = max(0.0, seconds - sum(stages.values()))
        return {"video": str(out), "frames": written, "fps": self.bundle.fps,
                "duration_s": written / self.bundle.fps, "audio_duration_s": len(wav16k) / SAMPLE_RATE,
                "seconds": round(seconds, 2), "frames_per_s": round(written / max(seconds, 1e-9), 2),
                "renderer_path": self.runner.path, "stage_seconds": {k: round(v, 3) for k, v in stages.items()}}
