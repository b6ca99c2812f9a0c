"""What the synthetic actor does over time: visemes from phonemes, coarticulation, idle motion.

Phonemes (piper/espeak IPA symbols, ARPAbet or plain letters) map to a handful of mouth shapes
(visemes). Each is a target for three parameters: jaw ``open`` 0..1, lip ``wide`` -1..1 (spread
vs. narrow) and lip ``round`` 0..1. :func:`mouth_trajectory` blends neighbouring targets frame by
frame (coarticulation). :func:`idle_motion` adds seeded blinks and head sway so that a still
photo does not look frozen.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

import numpy as np

from ..timing import FPS


# viseme: ((open, wide, round) target, dominance). Dominance says how hard a shape holds against
# its neighbours: lip closure and lip-teeth contact must be reached, vowels may be undershot.
VISEMES: dict[str, tuple[tuple[float, float, float], float]] = {
    "rest": ((0.0, 0.0, 0.0), 0.6),  # silence: lips closed, relaxed
    "closed": ((0.0, -0.1, 0.0), 8.0),  # p b m
    "lip_teeth": ((0.08, -0.05, 0.0), 3.0),  # f v
    "dental": ((0.2, 0.1, 0.0), 1.5),  # θ ð
    "neutral": ((0.22, 0.1, 0.0), 0.8),  # t d n l s z k g h and anything unknown
    "postalveolar": ((0.18, -0.35, 0.6), 1.5),  # ʃ ʒ
    "r": ((0.22, -0.2, 0.45), 1.0),  # ɹ
    "rounded": ((0.35, -0.3, 1.0), 2.0),  # o u w
    "open": ((0.9, 0.1, 0.0), 1.5),  # a
    "mid": ((0.55, 0.2, 0.0), 1.2),  # ɛ ə ʌ
    "wide": ((0.3, 0.8, 0.0), 1.2),  # i e
}
_IPA = {symbol: viseme for viseme, symbols in {
    "closed": "pbm", "lip_teeth": "fvɱ", "dental": "θð", "postalveolar": "ʃʒɕʑ", "r": "ɹrɾɻʁɽ",
    "rounded": "uwʊoɔɒʏøœɵʉʍ", "open": "aɑæɐɶ", "mid": "ɛəɜɚɝɘʌ", "wide": "ieɪɨjçy",
}.items() for symbol in symbols}  # y: the English glide of plain letters, not IPA's rounded [y]
_ARPABET = {symbol: viseme for viseme, symbols in {
    "closed": "P B M", "lip_teeth": "F V", "dental": "TH DH", "postalveolar": "SH ZH CH JH",
    "r": "R ER", "rounded": "AO OW OY UH UW W", "open": "AA AE AW AY", "mid": "AH EH",
    "wide": "IH IY EY Y", "neutral": "HH D G K L N NG S T Z",
}.items() for symbol in symbols.split()}
_SILENCES = frozenset({"", "_", "^", "$", "#", "sil", "sp", "spn", "pau", "<sil>"})
_STRESS = frozenset("ˈˌ")
_TAU = 0.035  # s: how far a phoneme's pull reaches past its own segment (1/e distance)


def _classify(symbol: str) -> str:
    """Viseme of one symbol, or "<" (a mark continuing the previous sound) / ">" (stress: next)."""
    s = symbol.strip()
    if s.lower() in _SILENCES or all(unicodedata.category(c)[0] in "PZS" for c in s):
        return "rest"  # piper's word gap, sentence markers, punctuation, aligner pauses
    if s in _STRESS:
        return ">"
    if len(s) == 1 and unicodedata.category(s) in ("Lm", "Mn", "Sk"):
        return "<"  # ː ʰ ʲ and combining marks lengthen or colour the sound before them
    if len(s) == 1:
        return _IPA.get(s, _IPA.get(s.lower(), "neutral"))
    if s.rstrip("012").upper() in _ARPABET:  # AA1, sh, th...
        return _ARPABET[s.rstrip("012").upper()]
    # an IPA cluster (tʃ, aɪ, oʊ): its first sound with a distinct mouth shape
    return next((_IPA[c] for c in s if c in _IPA), "neutral")


def visemes_for(symbols: Sequence[str]) -> list[str]:
    """Viseme name (a key of VISEMES) of each phoneme symbol of a sequence.

    Stress marks take the viseme of the next sound, length and modifier marks that of the
    previous one. Unknown symbols are "neutral" and pauses/punctuation are "rest".
    """
    kinds = [_classify(symbol) for symbol in symbols]
    out = list(kinds)
    for i, kind in enumerate(kinds):
        if kind == "<":
            out[i] = out[i - 1] if i > 0 else "rest"
    following = "rest"
    for i in range(len(out) - 1, -1, -1):
        if out[i] == ">":
            out[i] = following
        else:
            following = out[i]
    return out


def _checked_phonemes(phonemes) -> list[tuple[str, float, float]]:
    """(symbol, start_s, end_s) tuples (or objects with those attributes, e.g. speech.Phoneme),
    sorted by start. Times may be negative (before the first frame) but must be finite and ordered."""
    checked = []
    for i, item in enumerate(phonemes):
        try:
            symbol, start, end = (item.symbol, item.start, item.end) if hasattr(item, "symbol") else item
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise ValueError(f"phoneme {i}: expected (symbol, start_s, end_s), got {item!r}") from None
        if not (math.isfinite(start) and math.isfinite(end) and start <= end + 1e-9):
            raise ValueError(f"phoneme {i} {symbol!r}: need finite start <= end, got {start}..{end}")
        checked.append((str(symbol), start, max(start, end)))
    return sorted(checked, key=lambda p: p[1])


def mouth_trajectory(phonemes: Sequence[tuple[str, float, float]], n_frames: int, fps: float = FPS) -> np.ndarray:
    """Per-frame mouth parameters ``[T, 3]`` float32 (open, wide, round) for timed phonemes.

    Frame k shows time ``(k + 0.5) / fps``. Every phoneme segment, plus a rest segment for every
    untimed gap (and before the first and after the last phoneme), pulls the mouth towards its
    viseme's target with weight ``dominance · exp(-d / 35 ms)``. Here d is the distance from the
    segment (0 inside it), and the mouth is the weighted mean. That is smooth, and a long pause
    gives exactly the closed rest shape.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    phonemes = _checked_phonemes(phonemes)
    segments, reached = [], 0.0
    for (_, start, end), viseme in zip(phonemes, visemes_for([p[0] for p in phonemes])):
        if start > reached:
            segments.append((reached, start, "rest"))
        segments.append((start, end, viseme))
        reached = max(reached, end)
    segments.append((reached, max(reached, n_frames / fps) + 1.0, "rest"))
    times = (np.arange(n_frames) + 0.5) / fps
    total = np.zeros((n_frames, 3))
    weight = np.full(n_frames, 1e-12)  # never 0: frames nothing reaches are rest (0, 0, 0)
    reach = 12 * _TAU  # beyond it a pull is < 1e-5 of its dominance
    for start, end, viseme in segments:
        lo, hi = max(0, int((start - reach) * fps)), min(n_frames, int((end + reach) * fps) + 1)
        if lo >= hi:
            continue
        target, dominance = VISEMES[viseme]
        t = times[lo:hi]
        w = dominance * np.exp(-np.maximum(np.maximum(start - t, t - end), 0.0) / _TAU)
        total[lo:hi] += w[:, None] * target
        weight[lo:hi] += w
    return (total / weight[:, None]).astype(np.float32)


def idle_motion(seed: int, n_frames: int, size: int = 384, fps: float = FPS) -> np.ndarray:
    """Seeded blinks and head sway ``[T, 4]`` float32 (blink 0..1, dx px, dy px, tilt rad).

    ``size`` is the portrait's side in pixels. Sway is a sum of three slow sines (0.05–0.35 Hz) per axis, within ±0.6 % of ``size`` (x),
    ±0.3 % (y) and ±0.7° (tilt). Blinks last 4 frames, every 2.5–5.5 s. Frame k's values do
    not depend on ``n_frames``, so a longer clip starts like a shorter one.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    out = np.zeros((n_frames, 4), np.float32)
    for axis, amplitude in zip((1, 2, 3), (0.006 * size, 0.003 * size, 0.012)):
        freqs, phases, amps = rng.uniform(0.05, 0.35, 3), rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.5, 1, 3)
        out[:, axis] = amplitude * (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(0) / amps.sum()
    profile = (0.5, 1.0, 0.7, 0.3)  # closes fast, opens more slowly
    when = rng.uniform(0.8, 2.5)
    while when * fps < n_frames:
        k = int(when * fps)
        out[k:k + len(profile), 0] = profile[: max(0, min(len(profile), n_frames - k))]
        when += rng.uniform(2.5, 5.5)
    return out
