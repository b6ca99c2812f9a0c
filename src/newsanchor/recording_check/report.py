"""What the recording checks measure and report, and the thresholds they hold recordings to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import PrepareConfig

# The stable ids of RecordingProblem.check. Music under the speech is not among them: the energy VAD
# cannot tell music from speech, and nothing else here could do it reliably.
CHECKS = ("unreadable", "frame_rate_too_low", "too_short", "no_face", "face_too_small", "several_faces", "face_turned",
          "too_dark", "no_audio", "audio_shorter_than_video", "audio_silent", "audio_clipped", "audio_too_quiet",
          "speech_too_short", "no_quiet_stretch")


@dataclass(frozen=True)
class RecordingRequirements:
    """What a recording must show. Defaults and their reasons:"""

    # The paper trains on 2 hours; the least the project trains an anchor on is the offline demo's
    # ~2.3 min of speech (141 s over its two clips). Below 2 minutes the audio→mouth model has seen
    # too few phonemes in context to generalise to new scripts.
    min_total_speech_s: float = 120.0
    # prepare resamples to 25 fps by repeating frames: below 20 fps more than one frame in five is
    # a repeat, and the mouth the models learn from moves in jumps.
    min_fps: float = 20.0
    # The renderer's crop side (256 for CPU work, 512 as in the paper).
    crop_size: int = 256
    # prepare's crop is crop_margin × the 68-landmark box (PrepareConfig.crop_margin). The face must
    # be large enough that this crop is at least min_crop_fill of crop_size, i.e. enlarged at most
    # 1.25×: GRID s1 (face ~111 px at 360×288, the smallest the project accepts for 256² crops)
    # gives a 233 px crop, enlarged 1.10×; upscaled further, the renderer learns and reproduces blur.
    crop_margin: float = PrepareConfig.crop_margin
    min_crop_fill: float = 0.8
    # Sampled frames with a face. Frames without one are dropped by prepare; more than a fifth
    # lost means the presenter leaves the shot, looks away or is covered for long.
    min_face_found: float = 0.8
    # A second face at least half the presenter's width in a fifth of the frames: the tracker
    # follows the largest face of its first sighting, which may be the wrong person, and the
    # other face sits in the crops the renderer learns from.
    second_face_ratio: float = 0.5
    max_several_faces: float = 0.2
    # Yaw from the nose tip between the outer eye corners (0.5 = frontal). 0.2 off centre is
    # ~23° (_NOSE_DEPTH). Mouth normalisation removes in-plane rotation only, so turned heads teach
    # the mouth model foreshortening as mouth shape; the paper's actors avoided out-of-plane rotation.
    max_yaw_offset: float = 0.2
    max_turned: float = 0.2
    # Median luma (0–255) of the face box. The facial maps are Canny edges at fixed thresholds
    # (PrepareConfig canny_low 60, canny_high 140): gradients scale with brightness, so below ~40
    # (a well-lit face is 85–150) the face's contours fall under them, and shadow noise rises.
    min_face_luma: float = 40.0
    # Share of the speech samples at full scale (within 0.45 dB of it). GRID s1's loudest clips
    # reach it on 0.4 % of their speech (brief peaks); past 1 % the vowels themselves are flattened,
    # adding harmonics that change the MFCCs the mouth model hears.
    max_clipped: float = 0.01
    # Speech level (RMS above 100 Hz over speech frames). Real recordings have a noise floor
    # around -60 to -70 dBFS (features/audio.py); speech below -40 dBFS puts its quiet consonants,
    # 20–30 dB under the vowels, in that floor. Broadcast speech sits near -23.
    min_speech_dbfs: float = -40.0
    # Less speech than this in a recording: its sound is silent, or not the presenter's voice.
    min_recording_speech_s: float = 1.0
    # The template (template.py) is the best-scoring stretch of its default 100 frames (4 s, played
    # forwards and backwards); the best has no speech, the face in view and the mouth closed. Below
    # 2 s of such a stretch, half the template's frames or more show the presenter speaking or
    # looking away, and every video carries them; the message asks for 5 s to leave room.
    min_quiet_stretch_s: float = 2.0
    # Inner-lip opening (inter-ocular distances) above which a silent mouth counts as open
    # (~0.02 closed, ~0.2 wide open, see template.find_template).
    max_closed_opening: float = 0.1

    @property
    def min_face_px(self) -> float:
        """Smallest 68-landmark box (its longer side, source pixels) that meets ``min_crop_fill``."""
        return self.min_crop_fill * self.crop_size / self.crop_margin


@dataclass(frozen=True)
class RecordingProblem:
    path: Path | None  # the recording, or None for a problem of the whole set
    check: str  # stable id, e.g. "face_too_small"
    message: str  # one line: what is wrong and what to do, naming the file


@dataclass(frozen=True)
class RecordingSummary:
    """What was measured in one recording; None where it could not be measured."""

    path: Path
    error: str | None = None  # why the file could not be read
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # average source frame rate
    has_audio: bool | None = None
    sampled_frames: int = 0
    face_found: float | None = None  # fraction of sampled frames with a face
    several_faces: float | None = None  # fraction of face frames with a second, sizeable face
    face_px: float | None = None  # median 68-landmark box (longer side), source pixels
    crop_upscale: float | None = None  # how much prepare's crop is enlarged to crop_size (> 1: upsampled)
    frontal: float | None = None  # fraction of face frames turned at most max_yaw_offset
    face_luma: float | None = None  # median mean luma (0–255) of the face box
    speech_s: float | None = None
    speech_dbfs: float | None = None
    peak_dbfs: float | None = None
    clipped: float | None = None  # fraction of speech samples at full scale (within 0.45 dB)
    longest_quiet_s: float | None = None  # without speech, face in view, mouth closed


@dataclass(frozen=True)
class RecordingReport:
    recordings: list[RecordingSummary]
    problems: list[RecordingProblem]
    total_speech_s: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """One line per problem, or one line saying that all recordings pass."""
        if self.problems:
            return [p.message for p in self.problems]
        n = len(self.recordings)
        return [f"{'the recording passes' if n == 1 else f'all {n} recordings pass'}: {self.total_speech_s / 60:.1f} min of speech, "
                f"a quiet stretch of {max(r.longest_quiet_s or 0 for r in self.recordings):.1f} s for the template"]
