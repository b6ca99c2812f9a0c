"""Is the same sentence spoken the same way twice? The default piper voice as piper loads it (its
random nodes seeded by ONNX Runtime) beside newsanchor's patched voice (repeatable noise,
`speech/repeatable_noise.py`), each speaking the same sentences N times in one process, then once
more from a freshly loaded voice. Prints, per voice and sentence, the number of distinct
waveforms and the range of their lengths, side by side.

    .venv/bin/python benchmarks/voice_repeatability.py [--runs 10]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from renderer import machine_line  # noqa: E402

from newsanchor.speech import piper_engine  # noqa: E402

SENTENCES = ("The quick brown fox jumps over the lazy dog.",
             "Good evening. Rain is expected across the north tonight.")


def piper_as_shipped():
    """(speak, its sample rate): the voice exactly as piper loads it."""
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(str(piper_engine.default_voice()))
    settings = SynthesisConfig(normalize_audio=False)
    return (lambda text: np.concatenate([c.audio_float_array for c in voice.synthesize(text, settings)]),
            voice.config.sample_rate)


def newsanchor_voice(cache: Path):
    piper_engine._load.cache_clear()  # a fresh load, as a new process would do
    engine = piper_engine.PiperEngine(cache=cache)
    return lambda text: engine.speak(text.split()).waveform, piper_engine.SAMPLE_RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(machine_line())
    print(f"{args.runs} calls in one loaded voice, then 1 from a fresh load, per sentence")
    print("| voice | sentence | distinct waveforms | length min–max (s) |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        voices = {"piper as shipped": piper_as_shipped, "newsanchor (repeatable noise)": lambda: newsanchor_voice(Path(tmp))}
        for name, load in voices.items():
            for number, sentence in enumerate(SENTENCES, 1):
                speak, rate = load()
                waves = [speak(sentence) for _ in range(args.runs)] + [load()[0](sentence)]
                lengths = [len(w) / rate for w in waves]
                distinct = len({hashlib.sha256(w.tobytes()).hexdigest() for w in waves})
                print(f"| {name} | {number} | {distinct} of {len(waves)} | {min(lengths):.2f}–{max(lengths):.2f} |")


if __name__ == "__main__":
    main()
