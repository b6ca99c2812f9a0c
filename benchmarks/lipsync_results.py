"""Lip sync of a GRID s1 anchor driven by speech no model was trained on (issue: text → video).

    .venv/bin/python benchmarks/lipsync_results.py DATASET MOUTH_RUN RENDERER_RUN [--clips 20] [--out DIR]

Bundles an anchor from a prepared GRID s1 dataset and trained runs (``newsanchor bundle``), then
with ``newsanchor evaluate lipsync``'s code:

1. drives it with the speech of ``--clips`` whole clips of the dataset's held-out test split
   (never seen in training), joined, and scores the output beside the real recordings of that
   speech (the speaker saying it): face found by an independent dlib detector in every frame,
   correlation of mouth opening with the speech envelope (target ≥ 80% of the real one), and the
   mouth in pauses;
2. drives it with the speech of every talking-head clip in ../shared/data/clips (other people,
   rooms and microphones: news addresses, interviews, a 1080p studio), joined, and scores each
   clip's stretch of the output beside that clip's own speaker saying it.

3. times the audio→mouth model against the speaker: on the whole test clips, the correlation of
   the predicted inner-lip gap with the real one and of both with the speech envelope, at lags
   of −3…+3 frames (is an offset the model's, or the speaker's own?).

Writes ``benchmarks/results/lipsync.json`` and ``lipsync_tables.md`` and prints the tables; the
videos go to ``--out`` (default: runs/lipsync).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "clips"
RESULTS = ROOT / "benchmarks" / "results"


def test_clip_sources(dataset: Path, count: int | None) -> list[Path]:
    """Source files of ``count`` (None: all) whole test-split clips, evenly spread over the split."""
    from newsanchor.dataset import PreparedDataset
    from newsanchor.dataset import dataset_split

    prepared = PreparedDataset(dataset)
    frames = {c["id"]: c["frames"] for c in prepared.clips}
    whole = [s.clip for s in dataset_split(prepared)["test"] if s.start == 0 and s.stop == frames[s.clip]]
    if count is None:
        count = len(whole)
    if len(whole) < count:
        raise SystemExit(f"{dataset}: only {len(whole)} whole test clips")
    chosen = [whole[round(i * (len(whole) - 1) / max(count - 1, 1))] for i in range(count)]
    sources = {c["id"]: Path(c["source"]) for c in prepared.clips}
    return [sources[clip] for clip in chosen]


def lagged_r(x, y, lag: int) -> float:
    """Pearson's r of x[t + lag] with y[t]."""
    import numpy as np

    n = len(x)
    a, b = (x[lag:], y[:n - lag]) if lag >= 0 else (x[:n + lag], y[-lag:])
    return float(np.corrcoef(a, b)[0, 1])


def prediction_lags(dataset: Path, anchor: Path) -> list[dict]:
    """Per lag −3…+3: r(predicted gap, real gap), r(predicted gap, envelope), r(real gap, envelope)
    over the dataset's whole test clips (landmarks 62–66 of the mouth; no closure in pauses)."""
    import numpy as np

    from newsanchor.audio2mouth.infer import mouth_from_audio
    from newsanchor.bundle import load_bundle
    from newsanchor.dataset import PreparedDataset
    from newsanchor.evaluate.lipsync import speech_envelope
    from newsanchor.features.audio import MfccStats

    bundle = load_bundle(anchor)
    model = bundle.mouth_model("cpu")[0]
    stats = MfccStats.from_dict(bundle.manifest["mfcc_stats"])
    prepared = PreparedDataset(dataset)
    by_source = {Path(c["source"]): c["id"] for c in prepared.clips}
    predicted, real, envelope = [], [], []
    for source in test_clip_sources(dataset, None):
        arrays = prepared.arrays(by_source[source])
        wav = arrays["audio"].astype(np.float32) / 32768
        mouth = bundle.mouth_pca.inverse(mouth_from_audio(model, wav, stats))
        predicted.append(np.linalg.norm(mouth[:, 14] - mouth[:, 18], axis=-1))  # dlib points 62 and 66
        real.append(np.linalg.norm(arrays["mouth"][:, 14] - arrays["mouth"][:, 18], axis=-1))
        envelope.append(speech_envelope(wav, len(real[-1])))
    predicted, real, envelope = (np.concatenate(x) for x in (predicted, real, envelope))
    return [{"lag": lag, "predicted_vs_real": lagged_r(predicted, real, lag),
             "predicted_vs_envelope": lagged_r(predicted, envelope, lag),
             "real_vs_envelope": lagged_r(real, envelope, lag)} for lag in range(-3, 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("mouth", type=Path)
    parser.add_argument("renderer", type=Path)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "lipsync")
    args = parser.parse_args()

    from newsanchor.evaluate.lipsync import evaluate_lipsync, markdown_table, per_recording_table

    anchor = args.out / "anchor_grid_s1"
    if not (anchor / "anchor.json").is_file():
        subprocess.run([str(Path(sys.executable).parent / "newsanchor"), "bundle", "--dataset", str(args.dataset),
                        "--mouth", str(args.mouth), "--renderer", str(args.renderer), "--out", str(anchor),
                        "--presenter", "GRID corpus speaker s1",
                        "--consent", "GRID audiovisual corpus (CC BY 4.0), recorded for speech research; used here to test"],
                       check=True)
    recordings = test_clip_sources(args.dataset, args.clips)
    grid = evaluate_lipsync(anchor, recordings, args.out / "grid_test_clips.mp4")
    results = {"anchor": {"dataset": str(args.dataset), "mouth": str(args.mouth), "renderer": str(args.renderer)},
               "grid_test_clips": grid}
    tables = [f"### GRID s1 anchor, driven by {len(recordings)} held-out GRID test clips "
              f"({grid['output']['frames'] / 25:.0f} s), joined\n", markdown_table(grid),
              "\nEach clip's stretch of the output beside the clip itself:\n", per_recording_table(grid)]
    others = sorted(CLIPS.glob("*.mp4"))
    joined = evaluate_lipsync(anchor, others, args.out / "other_speakers.mp4")
    results["other_speakers"] = joined
    tables += [f"\n### The same anchor driven by {len(others)} clips of other speakers "
               f"({joined['output']['frames'] / 25:.0f} s), each beside its own speaker\n", per_recording_table(joined)]
    lags = prediction_lags(args.dataset, anchor)
    results["prediction_lags"] = lags
    tables += ["\n### Audio→mouth timing on all whole test clips: r at lag (frames; + = the first later)\n",
               "| lag | predicted vs real gap | predicted gap vs envelope | real gap vs envelope |", "|---|---|---|---|"]
    tables += [f"| {row['lag']:+d} | {row['predicted_vs_real']:.3f} | {row['predicted_vs_envelope']:.3f} "
               f"| {row['real_vs_envelope']:.3f} |" for row in lags]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lipsync.json").write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    (RESULTS / "lipsync_tables.md").write_text("\n".join(tables) + "\n")
    print("\n".join(tables))


if __name__ == "__main__":
    main()
