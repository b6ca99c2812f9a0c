"""Word times from phoneme times: which stretch of a sentence's phonemes belongs to which word.

piper times the phonemes of a whole sentence, but its phonemiser (espeak-ng) does not keep the
words apart: it runs short words together (``on the`` → ``ɔnðə``, ``1999`` → ``nˈaɪntiːnhˈʌndɹɪd
nˈaɪnti nˈaɪn``, one word into three). So the words are phonemised once more, each on its own,
to learn how many sounds each one has, and the sentence's sounds are shared out in those
proportions. A cut that lands within one sound of a real word gap (a space or punctuation in
the sentence's phonemes) snaps to it; otherwise it cuts inside the run-together group, which
is where ``ɔn|ðə`` splits.

A *sound* is a phoneme symbol that is a letter or a combining mark (``ɔ``, ``ː``, ``ʲ``), not a
stress mark (``ˈ ˌ``), punctuation, the word gap or piper's sentence start/end markers. A stress
mark belongs to the sound after it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from .engine import Phoneme, Word

_STRESS = frozenset("ˈˌ")
_SNAP = 1  # sounds: how far a cut may move to reach a real word gap


def is_sound(symbol: str) -> bool:
    """True for a phoneme symbol that is pronounced (see the module docstring)."""
    return (len(symbol) == 1 and symbol not in _STRESS
            and unicodedata.category(symbol)[0] in "LM")


def count_sounds(symbols: Sequence[str]) -> int:
    """Number of pronounced symbols in a phoneme sequence."""
    return sum(1 for symbol in symbols if is_sound(symbol))


def words_from_phonemes(words: Sequence[str], phonemes: Sequence[Phoneme],
                        sounds_per_word: Sequence[int]) -> tuple[Word, ...] | None:
    """Time each word of a sentence from the timed phonemes of the whole sentence.

    Args:
        words: the sentence's ``N`` words as displayed.
        phonemes: the sentence's phonemes in order, with times (contiguous or not).
        sounds_per_word: ``[N]`` how many sounds each word has when phonemised alone (0 for a
            word that is not pronounced, e.g. a dash).

    Returns:
        ``N`` words; a word gets the time from the start of its first sound (stress mark
        included) to the end of its last. A word with no sounds gets an empty span where it
        sits. None when the sentence has no sounds or the words have none to share out.
    """
    if len(words) != len(sounds_per_word):
        raise ValueError(f"words_from_phonemes: {len(words)} words but {len(sounds_per_word)} sound counts")
    firsts: list[int] = []  # per sound: the phoneme index where it starts (its stress mark)
    lasts: list[int] = []  # per sound: its own phoneme index
    gaps = {0}  # sound indices with a word gap before them
    pending: int | None = None  # index of a stress mark waiting for its sound
    for index, phoneme in enumerate(phonemes):
        if is_sound(phoneme.symbol):
            firsts.append(index if pending is None else pending)
            lasts.append(index)
            pending = None
        elif phoneme.symbol in _STRESS:
            pending = index if pending is None else pending
        else:
            gaps.add(len(lasts))
            pending = None
    total = len(lasts)
    gaps.add(total)
    expected = np.asarray(sounds_per_word, dtype=np.float64)
    if total == 0 or expected.sum() <= 0:
        return None

    targets = np.cumsum(expected) * (total / expected.sum())
    gap_list = np.array(sorted(gaps))
    cuts = [0]
    for target in targets[:-1]:
        nearest = int(gap_list[np.argmin(np.abs(gap_list - target))])
        cut = nearest if abs(nearest - target) <= _SNAP else int(round(target))
        cuts.append(min(max(cut, cuts[-1]), total))
    cuts.append(total)

    timed = []
    for i, word in enumerate(words):
        first, last = cuts[i], cuts[i + 1]
        if last > first:
            start, end = phonemes[firsts[first]].start, phonemes[lasts[last - 1]].end
        else:  # nothing pronounced: an empty span at the boundary
            start = end = phonemes[firsts[first]].start if first < total else phonemes[lasts[-1]].end
        timed.append(Word(word, float(start), float(end)))
    return tuple(timed)
