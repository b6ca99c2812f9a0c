"""Assemble benchmarks/results/renderer_eval.json and renderer_tables.md from the JSON lines of
`newsanchor evaluate renderer --json` (see benchmarks/renderer_results.sh)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KEYS = ("psnr", "psnr_mouth", "ssim", "ssim_mouth", "lmd", "flicker", "lmd_found")


def _load(path: Path) -> dict:
    return json.loads(path.read_text().strip().splitlines()[-1])


def _number(value: float | None) -> float | None:
    """Rounded, or None (JSON null) where undefined, e.g. LMD when dlib found no face at all."""
    return None if value is None or value != value else round(value, 4)


def _metrics(scores: dict) -> dict:
    return {k: _number(scores.get(k)) for k in KEYS}


def _step(run: str) -> int | None:
    meta = Path(run) / "renderer.json"
    return json.loads(meta.read_text())["extra"].get("step") if meta.is_file() else None


def _entry(result: dict, run: str) -> dict:
    return {**_metrics(result["runs"][run]), "baseline_static": _metrics(result["baseline_static"]),
            "real_footage": {"flicker": _number(result["real"]["flicker"]), "lmd": _number(result["real"]["lmd"])},
            "segments": result["segments"], "frames": result["frames"], "steps": _step(run), "precision": result["precision"]}


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _row(name: str, m: dict) -> str:
    return (f"| {name} | {_fmt(m['psnr'], 2)} | {_fmt(m['psnr_mouth'], 2)} | {_fmt(m['ssim'], 3)} | "
            f"{_fmt(m['ssim_mouth'], 3)} | {_fmt(m['lmd'], 2)} ({_fmt(m['lmd_found'], 2)}) | {_fmt(m['flicker'], 2)} |")


def _shrink(png: Path, max_width: int) -> None:
    import cv2

    image = cv2.imread(str(png))
    if image is not None and image.shape[1] > max_width:
        scale = max_width / image.shape[1]
        cv2.imwrite(str(png), cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", type=Path, required=True)
    parser.add_argument("--ablation", type=Path, required=True, help="evaluation of [with-edges snapshot, no-edges run]")
    parser.add_argument("--obama", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    grid, ablation, obama = _load(args.grid), _load(args.ablation), _load(args.obama)
    with_edges, no_edges = list(ablation["runs"])
    report = {
        "grid_s1": _entry(grid, next(iter(grid["runs"]))),
        "obama": _entry(obama, next(iter(obama["runs"]))),
        "ablation_no_edges": {"steps": _step(no_edges), "with_edges": _metrics(ablation["runs"][with_edges]),
                              "no_edges": _metrics(ablation["runs"][no_edges]),
                              "baseline_static": _metrics(ablation["baseline_static"]),
                              "segments": ablation["segments"], "frames": ablation["frames"]},
    }
    head = ["| | PSNR (dB) | mouth PSNR (dB) | SSIM | mouth SSIM | LMD px (share of frames dlib found a face) | flicker |", "|---|---|---|---|---|---|---|"]
    lines = []
    for name in ("grid_s1", "obama"):
        e = report[name]
        lines += [f"### {name}: light-256 after {e['steps']} steps; {e['segments']} held-out segments, {e['frames']} frames "
                  f"(medians over segments)", "", *head, _row("renderer", e), _row("static baseline", e["baseline_static"]),
                  "", f"Real footage: flicker {e['real_footage']['flicker']:.2f}, dlib LMD on the real frames "
                  f"{e['real_footage']['lmd']:.2f} px.", ""]
    a = report["ablation_no_edges"]
    lines += [f"### Edge ablation (paper Fig. 7) on grid_s1: both renderers after {a['steps']} steps; {a['segments']} "
              f"segments, {a['frames']} frames", "", *head, _row("with edges", a["with_edges"]),
              _row("without edges", a["no_edges"]), _row("static baseline", a["baseline_static"]), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    for png in args.out.glob("renderer_samples_*.png"):  # committed results stay small
        _shrink(png, max_width=640)
    (args.out / "renderer_eval.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    (args.out / "renderer_tables.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
