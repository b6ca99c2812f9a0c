"""End-to-end synthesis: wall time and peak memory for outputs of several lengths, side by side.

    .venv/bin/python benchmarks/end_to_end.py [--anchor DIR] [--speech FILE] [--durations 10,60,600] [--compile]
        [--json-out benchmarks/results/end_to_end.json]

Each length runs in its own process (so each peak RSS is its own), synthesising a speech
recording looped to that length with an anchor bundle: by default the demo anchor (built and
cached by ``newsanchor demo`` on first use), and ``../shared/data/speech/styletalk_intro.wav``.
The first table measures the pipeline from waveform to finished mp4; the last columns compare
each length with the shortest: time should grow with the length, memory should not. The second
splits each run's time by stage (seconds per second of output; setup: loading the bundle and
timing the renderer paths). TTS, the one stage a text script adds, is timed on its own on a news
paragraph, and the last line adds it to the longest run: text → finished video. With
``--compile`` every length also runs with the renderer compiled (``synthesize --compile``), side
by side; its set-up then includes the compilation. ``--json-out`` writes every row and the text →
video real-time factor of the longest (``{"text_to_video_rtf": …}``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from renderer import machine_line  # noqa: E402  (one line for the machine in every benchmark)
DEFAULT_SPEECH = ROOT.parent / "shared" / "data" / "speech" / "styletalk_intro.wav"


def run_one(anchor: Path, speech: Path, seconds: float, compiled: bool = False) -> dict:
    """In this process: synthesise ``seconds`` of video; returns the pipeline's summary."""
    from newsanchor.bundle import load_bundle
    from newsanchor.media import read_audio
    from newsanchor.pipeline import AnchorPipeline, SynthesisSettings

    wav = read_audio(speech, 16000)
    wav = np.resize(wav, int(seconds * 16000)).astype(np.float32)  # loops the recording
    started = time.perf_counter()
    pipeline = AnchorPipeline(load_bundle(anchor), settings=SynthesisSettings(compile_renderer=compiled))
    size, config = pipeline.bundle.size, pipeline.renderer_config
    shape = config.region_shape(size) if pipeline.lower_face else (size, size)
    pipeline.runner.forward(np.zeros((1, config.input_channels, *shape), np.float32))  # compiles, if asked to
    setup_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = pipeline.synthesize(wav, Path(tmp) / "out.mp4")
        result["wall_s"] = time.perf_counter() - started
        result["stage_seconds"]["setup"] = setup_s
        result["renderer"] = (("lower-face " if pipeline.lower_face else "") + result["renderer_path"]
                              + (" compiled" if compiled else ""))
        result["mp4_mb"] = (Path(tmp) / "out.mp4").stat().st_size / 1e6
    return result


def measure(anchor: Path, speech: Path, seconds: float, compiled: bool = False) -> dict:
    """Run :func:`run_one` in a child process; add its peak resident memory."""
    child = subprocess.Popen([sys.executable, __file__, "--one", str(seconds), "--anchor", str(anchor),
                              "--speech", str(speech)] + (["--compile"] if compiled else []),
                             stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"synthesis of {seconds} s failed (status {status})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return result


def tts_seconds_per_second() -> tuple[float, float]:
    """(seconds of TTS work per second of speech, seconds of speech) for the demo's news script."""
    from newsanchor.demo.build import DEMO_SCRIPT
    from newsanchor.speech import PiperEngine, synthesize_speech

    engine = PiperEngine()
    synthesize_speech("Warm up.", engine=engine)
    started = time.perf_counter()
    speech = synthesize_speech(DEMO_SCRIPT * 3, engine=engine)
    return (time.perf_counter() - started) / speech.duration, speech.duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anchor", type=Path, help="anchor bundle (default: the demo anchor)")
    parser.add_argument("--speech", type=Path, default=DEFAULT_SPEECH)
    parser.add_argument("--durations", default="10,60,600", help="output lengths in seconds")
    parser.add_argument("--compile", action="store_true", help="also run every length with the renderer compiled")
    parser.add_argument("--json-out", type=Path, help="write the rows and the text → video real-time factor here")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.anchor, args.speech, args.one, args.compile)))
        return
    if args.anchor is None:
        from newsanchor.demo.build import build_demo_anchor

        args.anchor = build_demo_anchor()
    rows = []
    for s in args.durations.split(","):
        rows.append((float(s), measure(args.anchor, args.speech, float(s))))
        if args.compile:
            rows.append((float(s), measure(args.anchor, args.speech, float(s), compiled=True)))
    base_seconds, base = rows[0]
    print(f"{machine_line()}; anchor {args.anchor}, speech {args.speech.name}")
    print("| output | renderer | frames | wall (s) | frames/s | × real time | peak RSS (MB) | mp4 (MB) | time vs shortest | RSS vs shortest |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seconds, r in rows:
        print(f"| {seconds:.0f} s | {r['renderer']} | {r['frames']} | {r['wall_s']:.1f} | {r['frames'] / r['wall_s']:.1f} "
              f"| {r['wall_s'] / seconds:.2f} | {r['peak_rss_mb']:.0f} | {r['mp4_mb']:.1f} "
              f"| {r['wall_s'] / base['wall_s']:.1f}× for {seconds / base_seconds:.0f}× the length "
              f"| {r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |", flush=True)
    stages = ["setup", "mouth", "maps", "render", "composite", "encode"]
    print("\nSeconds per second of output, by stage:")
    print("| output | renderer | " + " | ".join(stages) + " | total (× real time) |")
    print("|---" * (len(stages) + 3) + "|")
    for seconds, r in rows:
        split = r["stage_seconds"]
        print(f"| {seconds:.0f} s | {r['renderer']} | " + " | ".join(f"{split.get(k, 0.0) / seconds:.3f}" for k in stages)
              + f" | {sum(split.values()) / seconds:.2f} |")
    tts, spoken = tts_seconds_per_second()
    longest_s, longest = rows[-1]
    pipeline_x = sum(longest["stage_seconds"].values()) / longest_s
    print(f"\nTTS (piper, {spoken:.0f} s of speech): {tts:.3f} s per second of speech. Text → finished video "
          f"at {longest_s:.0f} s: {pipeline_x + tts:.2f} × real time (target ≤ 1.0 for a lower-face 256² anchor).")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({
            "text_to_video_rtf": round(pipeline_x + tts, 3), "at_seconds": longest_s, "tts_seconds_per_second": round(tts, 4),
            "anchor": str(args.anchor), "machine": machine_line(),
            "rows": [{"seconds": s, "renderer": r["renderer"], "wall_s": round(r["wall_s"], 2),
                      "peak_rss_mb": round(r["peak_rss_mb"]), "stage_seconds": r["stage_seconds"]} for s, r in rows]},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
