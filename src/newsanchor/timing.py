"""The project's clock, in one place: every video is 25 frames a second and every waveform 16 kHz
mono, so one video frame spans 640 samples and four 10-ms MFCC rows."""

from __future__ import annotations

SAMPLE_RATE = 16_000  # Hz, mono
FPS = 25  # video frames a second
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 samples = 40 ms
