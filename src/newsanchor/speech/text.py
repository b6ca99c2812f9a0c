"""News text → sentences → words, and the spoken form of English abbreviations.

Sentences end at ``. ! ?`` followed by whitespace, and always at a blank line (a new
paragraph). A period after a known abbreviation does not end a sentence:

- titles before a name (``Dr. Mr. Mrs. Ms. Prof. Gen. Sen. Gov. St.`` …) never do;
- other abbreviations and dotted initials (``Inc. Jr. etc. vs. Jan. U.S. U.K. a.m. J.``) do
  only when the next word is a typical sentence opener (``The``, ``It``, ``But`` …), so
  ``the U.S. President`` stays one sentence and ``in the U.S. The talks`` is two.

The speech engine is handed every sentence as its words, so that word timings can be
reported for the text exactly as written. espeak-ng, which phonemises for piper, reads
``Gen.`` as "jen", ``Ms.`` as "M S" and stops the sentence after ``Dr.``; :func:`spoken_words`
rewrites such words one for one (``Dr.`` → ``Doctor``) before they are phonemised.
"""

from __future__ import annotations

import re
import unicodedata

from .engine import ScriptError

# Abbreviation (without its period) → spoken word, and whether it stands before a name or
# number (and so never ends a sentence). Keys are case-sensitive: "sat." and "no." are also
# plain words. One spoken word per abbreviation, so words stay one for one with the text.
_ABBREVIATIONS: dict[str, tuple[str, bool]] = {
    "Mr": ("Mister", True), "Mrs": ("Missus", True), "Ms": ("Miz", True), "Dr": ("Doctor", True),
    "Prof": ("Professor", True), "Gen": ("General", True), "Sen": ("Senator", True),
    "Rep": ("Representative", True), "Gov": ("Governor", True), "Pres": ("President", True),
    "Capt": ("Captain", True), "Lt": ("Lieutenant", True), "Col": ("Colonel", True),
    "Sgt": ("Sergeant", True), "Rev": ("Reverend", True), "Hon": ("Honorable", True),
    "Mt": ("Mount", True), "Ft": ("Fort", True), "St": ("Saint", True),
    "Jr": ("Junior", False), "Sr": ("Senior", False), "Inc": ("Incorporated", False),
    "Corp": ("Corporation", False), "Ltd": ("Limited", False), "Co": ("Company", False),
    "Dept": ("Department", False), "No": ("Number", False), "Nos": ("Numbers", False),
    "vs": ("versus", False), "etc": ("etc", False), "approx": ("approximately", False),
    "Jan": ("January", False), "Feb": ("February", False), "Mar": ("March", False),
    "Apr": ("April", False), "Jun": ("June", False), "Jul": ("July", False),
    "Aug": ("August", False), "Sep": ("September", False), "Sept": ("September", False),
    "Oct": ("October", False), "Nov": ("November", False), "Dec": ("December", False),
}
# Dotted initials: "U.S.", "U.S.A.", "a.m.", "e.g.", a single initial "J.".
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+")
# Words that typically open a sentence; after an abbreviation they decide that it ended one.
_OPENERS = frozenset("""
    A An The It Its He His She Her They Their Them We Our I You Your This That These Those
    There Then But And Or So Yet In On At For From After Before When While If As Now Meanwhile
    However Still Also Officials Police
""".split())
_OPENING = "\"'“‘«([{"
_CLOSING = "\"'”’»)]}"
# Longest script read in one video by default (the command line's --max-chars, the service's
# limit): about 20 minutes of speech, which takes this CPU ~10 minutes to render.
MAX_SCRIPT_CHARS = 20_000
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")


def _core(word: str) -> str:
    """The word without the quotes and brackets around it: ``("U.S."),`` → ``U.S."),``'s core."""
    return word.lstrip(_OPENING).rstrip(_CLOSING)


def _abbreviation(core: str) -> tuple[str, bool] | None:
    """(spoken form, precedes a name) when ``core`` is a known abbreviation with its period."""
    if not core.endswith(".") or core.endswith(".."):
        return None
    return _ABBREVIATIONS.get(core[:-1])


def _ends_sentence(word: str, following: str | None) -> bool:
    if following is None:
        return True
    core = _core(word)
    if core.endswith(("?", "!", "?.", "!.")):
        return True
    if not core.endswith("."):
        return False
    abbreviation = _abbreviation(core)
    if abbreviation is not None and abbreviation[1]:
        return False
    next_core = _core(following)
    if abbreviation is not None or _INITIALS.fullmatch(core):
        return next_core.rstrip(",;:.!?") in _OPENERS
    # An ordinary word (or "..."): a sentence ends unless the text goes on in lower case,
    # which after a period almost always means an abbreviation we do not know.
    return not next_core[:1].islower()


def split_sentences(text: str) -> list[str]:
    """Split news text into sentences, whitespace normalised to single spaces.

    Args:
        text: any length; line breaks inside a paragraph are spaces, a blank line ends a
            sentence.

    Returns:
        the sentences in order; pieces without a letter or digit (a lone ``—``) are dropped.
    """
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        words = paragraph.split()
        start = 0
        for i, word in enumerate(words):
            following = words[i + 1] if i + 1 < len(words) else None
            if _ends_sentence(word, following):
                sentence = words[start:i + 1]
                start = i + 1
                if any(ch.isalnum() for ch in "".join(sentence)):
                    sentences.append(" ".join(sentence))
    return sentences


def spoken_words(words: list[str]) -> list[str]:
    """English spoken form of one sentence's words, one for one.

    Known abbreviations become words (``Dr.`` → ``Doctor``, ``St.`` → ``Saint`` before a
    capitalised word and ``Street`` otherwise, ``No.`` → ``Number`` before a digit), and the
    period after an abbreviation or dotted initials is dropped inside a sentence (``U.S.`` →
    ``U.S``), because espeak-ng takes it for the end of the sentence and pauses.

    Args:
        words: one sentence's words, as from ``sentence.split()``.

    Returns:
        a list of the same length; words without an abbreviation are unchanged.
    """
    spoken: list[str] = []
    for i, word in enumerate(words):
        last = i + 1 == len(words)
        following = _core(words[i + 1]) if not last else ""
        core = _core(word).rstrip(",;:")  # "Corp.," is the abbreviation "Corp." and a comma
        start = len(word) - len(word.lstrip(_OPENING))
        end = start + len(core)
        abbreviation = _abbreviation(core)
        replacement = core
        if abbreviation is not None:
            replacement = abbreviation[0]
            if core == "St." and not following[:1].isupper():
                replacement = "Street"
            elif core == "No." and not following[:1].isdigit():
                replacement = "No"
            replacement += "." if last else ""
        elif _INITIALS.fullmatch(core) and not last:
            replacement = core[:-1]
        spoken.append(word[:start] + replacement + word[end:])
    return spoken


# Invisible characters a script picks up from copy and paste (control codes, zero-width
# spaces, byte-order marks): never spoken, and a NUL makes espeak-ng fail.
def clean_script(text: str) -> str:
    """``text`` without control and format characters (Unicode categories Cc, Cf), except the
    line breaks and tabs that separate words and paragraphs."""
    return "".join(ch for ch in text if ch in "\t\n\r" or unicodedata.category(ch) not in ("Cc", "Cf"))


def unreadable_letters(text: str, scripts: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Letters of ``text`` written in none of ``scripts`` (Unicode script names as they begin
    character names: ``("LATIN",)`` for English), as ``(letter, line, column)``, 1-based, in order.

    A voice reads such letters as their names ("Chinese letter…") or skips them: a script
    holding them was meant for another voice. Symbols and emoji are not letters and pass (the
    voice says what it can of them, e.g. "%" → "percent")."""
    found: list[tuple[str, int, int]] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        for column, ch in enumerate(line, start=1):
            if ch.isalpha() and not unicodedata.name(ch, "").startswith(scripts):
                found.append((ch, line_number, column))
    return found


def check_script(text: str, letter_scripts: tuple[str, ...] | None = None) -> list[str]:
    """The sentences of a script a voice can read, or ScriptError saying why it cannot: nothing
    to speak (no letter or digit once invisible characters are dropped), or letters written in
    none of ``letter_scripts`` (the voice's, see :func:`unreadable_letters`; None: not checked).
    The one check of a script before its speech is made, by the command line and the service alike.

    Returns:
        ``split_sentences(clean_script(text))``, never empty.
    """
    sentences = split_sentences(clean_script(text))
    if not sentences:
        raise ScriptError("nothing to speak: the script is empty (no letters or digits)")
    if letter_scripts:
        unreadable = unreadable_letters(text, letter_scripts)
        if unreadable:
            shown = ", ".join(f"{ch!r} (line {line}, column {column})" for ch, line, column in unreadable[:3])
            more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
            raise ScriptError(f"the voice reads {'/'.join(s.lower() for s in letter_scripts)} letters only; the text "
                              f"has {shown}{more}: remove them or choose a voice for that language")
    return sentences
