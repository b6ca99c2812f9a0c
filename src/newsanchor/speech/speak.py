"""Text → speech sentence by sentence (pipeline stage 0), and the engines by name.

:func:`speak_sentences` yields one :class:`SpokenSentence` at a time, so a long script is
spoken (and can be rendered) incrementally in constant memory; :func:`synthesize_speech`
joins them into one :class:`Speech`. Concatenating the sentences' waveforms in order gives
exactly the whole output: each sentence's waveform ends with the pause before the next one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from .captions import LINE_CHARS, MAX_LINES, Cue, caption_cues
from .engine import SAMPLE_RATE, Phoneme, SpeechEngine, SpeechError, Word, proportional_words
from .piper_engine import PiperEngine
from .text import check_script

# name → factory(voice) of an engine; add an engine by adding an entry (no string imports).
ENGINES: dict[str, Callable[..., SpeechEngine]] = {
    "piper": PiperEngine,
}

DEFAULT_PAUSE = 0.3  # seconds of silence between sentences, on top of the voice's own


@dataclass(frozen=True, eq=False)
class SpokenSentence:
    """One sentence of the output.

    Attributes:
        index: 0 for the first sentence.
        text: the sentence, whitespace normalised.
        waveform: ``[S]`` float32 mono 16 kHz: the sentence, then the pause before the next
            one (none after the last).
        start: time of ``waveform[0]`` in the whole output, seconds.
        words: one :class:`Word` per word of ``text.split()``, in seconds of the whole output.
        phonemes: the engine's phonemes in seconds of the whole output, or None.
        aligned: True when word times come from phoneme timings, False when they were shared
            out by character counts (the engine could not time phonemes).
    """

    index: int
    text: str
    waveform: np.ndarray
    start: float
    words: tuple[Word, ...]
    phonemes: tuple[Phoneme, ...] | None
    aligned: bool

    @property
    def duration(self) -> float:
        """Seconds of ``waveform`` (the trailing pause included)."""
        return len(self.waveform) / SAMPLE_RATE

    @property
    def end(self) -> float:
        """``start + duration``: where the next sentence starts."""
        return self.start + self.duration


@dataclass(frozen=True, eq=False)
class Speech:
    """A whole script spoken.

    Attributes:
        waveform: ``[S]`` float32 mono 16 kHz.
        sentences: in order; their waveforms are views into ``waveform``.
    """

    waveform: np.ndarray
    sentences: tuple[SpokenSentence, ...]
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sample_rate

    @property
    def words(self) -> list[Word]:
        """Every word of the script with its time in the output."""
        return [word for sentence in self.sentences for word in sentence.words]

    @property
    def phonemes(self) -> list[Phoneme] | None:
        """Every phoneme with its time, or None when some sentence has no phoneme timings."""
        phonemes: list[Phoneme] = []
        for sentence in self.sentences:
            if sentence.phonemes is None:
                return None
            phonemes.extend(sentence.phonemes)
        return phonemes

    @property
    def aligned(self) -> bool:
        """True when every sentence's word times come from phoneme timings."""
        return all(sentence.aligned for sentence in self.sentences)

    def cues(self, *, line_chars: int = LINE_CHARS, max_lines: int = MAX_LINES) -> list[Cue]:
        """Caption cues (see :func:`newsanchor.speech.captions.caption_cues`)."""
        return caption_cues((s.words for s in self.sentences), line_chars=line_chars, max_lines=max_lines)


def get_engine(engine: str | SpeechEngine = "piper", voice: str | os.PathLike[str] | None = None) -> SpeechEngine:
    """An engine by name from :data:`ENGINES` built for ``voice``, or ``engine`` itself if it
    is one already (then ``voice`` must be None: the engine has its voice)."""
    if not isinstance(engine, str):
        if voice is not None:
            raise ValueError("voice is chosen when an engine is built; pass an engine name or no voice")
        return engine
    factory = ENGINES.get(engine)
    if factory is None:
        raise SpeechError(f"{engine}: unknown speech engine (known: {', '.join(sorted(ENGINES))})")
    return factory(voice)


def _shifted(items, offset: float) -> tuple:
    """Words or phonemes moved ``offset`` seconds later."""
    return tuple(replace(item, start=item.start + offset, end=item.end + offset) for item in items)


def speak_sentences(text: str, voice: str | os.PathLike[str] | None = None, *,
                    engine: str | SpeechEngine = "piper", pause: float = DEFAULT_PAUSE) -> Iterator[SpokenSentence]:
    """Speak a script sentence by sentence.

    The text is checked and the engine loaded when this is called; each sentence is then
    synthesised when it is asked for. Only the current sentence's audio is held.

    Args:
        text: the script (any length).
        voice: the engine's voice (for piper: an ``.onnx`` file; None for the default voice).
        engine: a name in :data:`ENGINES` or an engine already built (reuse it across calls).
        pause: seconds of silence after each sentence but the last.

    Returns:
        an iterator of :class:`SpokenSentence` in order, with increasing ``start``.

    Raises:
        ScriptError: the text has nothing to speak, or letters the voice cannot read (an engine
            with ``letter_scripts`` declares which it can).
        SpeechError: the voice or engine is unknown.
    """
    if pause < 0:
        raise ValueError(f"pause must be >= 0 seconds, got {pause}")
    check_script(text)  # nothing to say is refused before the voice loads
    built = get_engine(engine, voice)
    sentences = check_script(text, getattr(built, "letter_scripts", None))
    return _spoken(sentences, built, round(pause * SAMPLE_RATE))


def _spoken(sentences: list[str], engine: SpeechEngine, pause_samples: int) -> Iterator[SpokenSentence]:
    position = 0  # samples of output before this sentence
    for index, sentence in enumerate(sentences):
        words = sentence.split()
        utterance = engine.speak(words)
        waveform = np.asarray(utterance.waveform, dtype=np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"engine {engine.name}: waveform must be [S], got shape {waveform.shape}")
        aligned = utterance.words is not None and len(utterance.words) == len(words)
        timed = utterance.words if aligned else proportional_words(words, waveform)
        if index + 1 < len(sentences) and pause_samples:
            waveform = np.concatenate([waveform, np.zeros(pause_samples, np.float32)])
        start = position / SAMPLE_RATE
        yield SpokenSentence(
            index=index,
            text=sentence,
            waveform=waveform,
            start=start,
            words=_shifted(timed, start),
            phonemes=None if utterance.phonemes is None else _shifted(utterance.phonemes, start),
            aligned=aligned,
        )
        position += len(waveform)


def synthesize_speech(text: str, voice: str | os.PathLike[str] | None = None, *,
                      engine: str | SpeechEngine = "piper", pause: float = DEFAULT_PAUSE) -> Speech:
    """Speak a whole script into one waveform (see :func:`speak_sentences`).

    Returns:
        :class:`Speech`: ``[S]`` float32 16 kHz with per-sentence word and phoneme times.
    """
    sentences = list(speak_sentences(text, voice, engine=engine, pause=pause))
    waveform = np.concatenate([sentence.waveform for sentence in sentences])
    views, position = [], 0
    for sentence in sentences:  # point into the joined array instead of keeping two copies
        views.append(replace(sentence, waveform=waveform[position:position + len(sentence.waveform)]))
        position += len(sentence.waveform)
    return Speech(waveform=waveform, sentences=tuple(views))
