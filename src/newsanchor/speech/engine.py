"""What every speech engine returns, the protocol it follows, and the engine-independent helpers.

An engine speaks one sentence at a time: it gets the sentence as its whitespace-separated words
(display text, e.g. ``["Dr.", "Smith", "arrived."]``) and returns an :class:`Utterance`: the
waveform in the library's audio contract (float32 mono 16 kHz) and, when it can, the time of
every phoneme and of every given word. Times are seconds from the utterance's first sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.signal import resample_poly

from ..errors import NewsanchorError
from ..timing import SAMPLE_RATE  # the library's audio contract; re-exported for the speech modules

# Fraction of the utterance's peak below which a sample counts as silence when the
# character-count fallback looks for where speech starts and ends.
_SILENCE_FRACTION = 0.02


class SpeechError(NewsanchorError):
    """Text cannot be spoken: empty text, an unknown voice or engine, an unusable voice file."""


class ScriptError(SpeechError):
    """The script itself cannot be spoken (nothing to say, letters the voice cannot read)."""


@dataclass(frozen=True, slots=True)
class Phoneme:
    """One phoneme (or pause symbol) of synthesised speech, ``start <= end``, in seconds."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Word:
    """One word as displayed (punctuation kept), ``start <= end``, in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class Utterance:
    """One spoken sentence as an engine returns it.

    Attributes:
        waveform: ``[S]`` float32 mono at 16 kHz, in [-1, 1].
        words: one :class:`Word` per word the engine was given, in order, times relative to
            sample 0; None when the engine cannot time words.
        phonemes: the engine's phonemes in order, contiguous, covering ``[0, S / 16000]``;
            None when it cannot time them.
    """

    waveform: np.ndarray
    words: tuple[Word, ...] | None = None
    phonemes: tuple[Phoneme, ...] | None = None


@runtime_checkable
class SpeechEngine(Protocol):
    """A text-to-speech engine: built once (loading is slow), then asked sentence by sentence."""

    name: str

    def speak(self, words: Sequence[str]) -> Utterance:
        """Speak one sentence given as its words (non-empty, no whitespace inside a word)."""
        ...


def to_library_rate(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample a mono waveform to 16 kHz with a polyphase filter (exact rational ratio).

    Args:
        waveform: ``[S]`` float mono at ``sample_rate``.
        sample_rate: its rate in Hz (22050 for most piper voices: ratio 320/441).

    Returns:
        ``[ceil(S * 16000 / sample_rate)]`` float32, clipped to [-1, 1] (the anti-aliasing
        filter can overshoot a full-scale peak slightly).
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if sample_rate != SAMPLE_RATE and waveform.size:
        common = gcd(SAMPLE_RATE, int(sample_rate))
        waveform = resample_poly(waveform, SAMPLE_RATE // common, int(sample_rate) // common).astype(np.float32)
    return np.clip(waveform, -1.0, 1.0)


def proportional_words(words: Sequence[str], waveform: np.ndarray) -> tuple[Word, ...]:
    """Time words without an aligner: the voiced part of the waveform shared out by characters.

    The span from the first to the last sample louder than 2 % of the peak (the whole
    waveform if it is silent) is divided among the words in proportion to their lengths in
    characters. Good enough to cut captions, not to drive lips.

    Args:
        words: the sentence's words, as displayed.
        waveform: ``[S]`` the sentence's audio at 16 kHz.

    Returns:
        one :class:`Word` per word, contiguous, in seconds from sample 0.
    """
    if not words:
        return ()
    loud = np.flatnonzero(np.abs(waveform) > _SILENCE_FRACTION * float(np.max(np.abs(waveform), initial=0.0)))
    first, last = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, len(waveform))
    weights = np.array([max(len(word), 1) for word in words], dtype=np.float64)
    edges = first + (last - first) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    edges /= SAMPLE_RATE
    return tuple(Word(word, float(edges[i]), float(edges[i + 1])) for i, word in enumerate(words))
