"""Caption cues from timed words, written as SubRip (.srt) or WebVTT (.vtt).

A cue never spans two sentences. A sentence that fits in ``max_lines`` lines of
``line_chars`` characters (42 and 2: the common broadcast limits) is one cue; a longer one is
cut at word boundaries into as many cues as needed, each wrapped into lines of even length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomic
from .engine import SpeechError, Word

LINE_CHARS = 42
MAX_LINES = 2


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption: shown from ``start`` to ``end`` seconds; lines separated by ``\\n``."""

    start: float
    end: float
    text: str


def _wrap(words: Sequence[str], width: int) -> list[str]:
    """Greedy wrap: as many words per line as fit in ``width`` (a longer word gets a line)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _balanced(words: Sequence[str], width: int) -> list[str]:
    """The same number of lines as a greedy wrap at ``width``, but lines as even as possible:
    the narrowest width that still needs no more lines."""
    needed = len(_wrap(words, width))
    narrowest = max(len(word) for word in words)
    for trial in range(narrowest, width + 1):
        lines = _wrap(words, trial)
        if len(lines) <= needed:
            return lines
    return _wrap(words, width)


def caption_cues(sentences: Iterable[Sequence[Word]], *, line_chars: int = LINE_CHARS,
                 max_lines: int = MAX_LINES) -> list[Cue]:
    """Cues for timed sentences.

    Args:
        sentences: each sentence's timed words in order (``SpokenSentence.words``).
        line_chars: most characters per line (a single longer word still gets its own line).
        max_lines: most lines per cue.

    Returns:
        cues in time order; each runs from its first word's start to its last word's end.
    """
    if line_chars < 1 or max_lines < 1:
        raise ValueError(f"caption_cues: line_chars and max_lines must be >= 1, got {line_chars}, {max_lines}")
    cues: list[Cue] = []
    for words in sentences:
        groups: list[list[Word]] = []
        for word in words:
            if groups and len(_wrap([w.text for w in groups[-1]] + [word.text], line_chars)) <= max_lines:
                groups[-1].append(word)
            else:
                groups.append([word])
        for group in groups:
            lines = _balanced([w.text for w in group], line_chars)
            cues.append(Cue(group[0].start, max(group[-1].end, group[0].start), "\n".join(lines)))
    return cues


def _timestamp(seconds: float, separator: str) -> str:
    """``HH:MM:SS<separator>mmm``, rounded to the millisecond."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _checked_lines(index: int, cue: Cue) -> list[str]:
    if not (math.isfinite(cue.start) and math.isfinite(cue.end) and 0 <= cue.start <= cue.end):
        raise ValueError(f"cue {index}: times must satisfy 0 <= start <= end, got {cue.start}, {cue.end}")
    # A blank line ends a cue in both formats, so none may appear inside one.
    lines = [line.strip() for line in cue.text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"cue {index}: no text")
    return lines


def format_srt(cues: Iterable[Cue]) -> str:
    """SubRip text: numbered blocks, ``00:00:01,234 --> 00:00:02,000``, a blank line between."""
    blocks = []
    for index, cue in enumerate(cues, start=1):
        lines = _checked_lines(index, cue)
        timing = f"{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}"
        blocks.append("\n".join([str(index), timing, *lines]) + "\n")
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    # "&", "<" and ">" are markup in WebVTT cue text (and "-->" may not appear in it).
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_vtt(cues: Iterable[Cue]) -> str:
    """WebVTT text: the ``WEBVTT`` header, then ``00:00:01.234 --> 00:00:02.000`` blocks."""
    blocks = ["WEBVTT\n"]
    for index, cue in enumerate(cues, start=1):
        lines = [_vtt_escape(line) for line in _checked_lines(index, cue)]
        timing = f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}"
        blocks.append("\n".join([timing, *lines]) + "\n")
    return "\n".join(blocks)


_FORMATS = {".srt": format_srt, ".vtt": format_vtt}


def write_captions(cues: Iterable[Cue], path: str | os.PathLike[str]) -> Path:
    """Write cues as SubRip or WebVTT, chosen by the suffix (``.srt`` / ``.vtt``), UTF-8,
    atomically (a reader never sees half a file).

    Returns:
        the path written.

    Raises:
        SpeechError: another suffix, or the file cannot be written.
    """
    path = Path(path)
    formatter = _FORMATS.get(path.suffix.lower())
    if formatter is None:
        raise SpeechError(f"{path}: captions are written as .srt or .vtt, not {path.suffix or 'a file without suffix'}")
    content = formatter(cues)
    try:
        write_atomic(path, lambda tmp: tmp.write_text(content, encoding="utf-8", newline="\n"))
    except OSError as err:
        raise SpeechError(f"{path}: cannot write captions ({err.strerror or err})") from None
    return path
