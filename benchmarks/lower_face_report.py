"""Add the lower-face renderer's results to benchmarks/results/renderer_eval.json (key
``lower_face``) and write benchmarks/results/lower_face_tables.md, from the JSON lines of
`newsanchor evaluate renderer --json` (see benchmarks/lower_face_results.sh).

Each evaluation holds several renderers side by side (the lower-face renderer, light-256, …) and
the static baseline on the same held-out frames; the tables also check the lower-face issue's
floors (mouth sharpness ≥ 0.85, mouth PSNR ≥ static + 3 dB, mouth SSIM ≥ 0.90, whole-crop PSNR
≥ static + 1 dB, LMD ≤ 0.8 px, identity distance ≤ 0.10, flicker ≤ 1.2 × the real footage's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KEYS = ("psnr", "psnr_mouth", "ssim", "ssim_mouth", "lmd", "lmd_found", "flicker", "flicker_face", "sharpness_ratio",
        "identity_dist")


def _load(path: Path) -> dict:
    return json.loads(path.read_text().strip().splitlines()[-1])


def _number(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 4)


def _describe(run: str) -> dict:
    meta = json.loads((Path(run) / "renderer.json").read_text())
    train = meta["extra"].get("train_config", {})
    return {"architecture": meta.get("architecture", "pix2pixhd"), "config": train.get("config"),
            "step": meta["extra"].get("step"), "references": train.get("references", None),
            "masked_frame": train.get("masked_frame", None), "reference_warp": meta["config"].get("reference_warp", "head"),  # files from before the field: head
            "head": meta["config"].get("head")}


def _entry(result: dict) -> dict:
    return {"segments": result["segments"], "frames": result["frames"], "precision": result["precision"],
            "renderers": {run: {**_describe(run), **{k: _number(scores.get(k)) for k in KEYS}}
                          for run, scores in result["runs"].items()},
            "baseline_static": {k: _number(result["baseline_static"].get(k)) for k in KEYS},
            "real_footage": {k: _number(result["real"].get(k)) for k in ("flicker", "flicker_face", "lmd")}}


def floors(scores: dict, static: dict, real: dict) -> dict[str, bool]:
    """The issue's targets for one renderer: name → met."""
    return {"sharpness_ratio >= 0.85": scores["sharpness_ratio"] >= 0.85,
            "mouth PSNR >= static + 3 dB": scores["psnr_mouth"] >= static["psnr_mouth"] + 3,
            "mouth SSIM >= 0.90": scores["ssim_mouth"] >= 0.90,
            "PSNR >= static + 1 dB": scores["psnr"] >= static["psnr"] + 1,
            "LMD <= 0.8 px": scores["lmd"] is not None and scores["lmd"] <= 0.8,
            "identity_dist <= 0.10": scores["identity_dist"] is not None and scores["identity_dist"] <= 0.10,
            "flicker <= 1.2 x real": scores["flicker"] <= 1.2 * real["flicker"],
            "lower-face flicker <= 1.2 x real": scores["flicker_face"] <= 1.2 * real["flicker_face"]}


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(title: str, entry: dict, with_targets: bool = True) -> list[str]:
    lines = [f"### {title}: {entry['segments']} held-out segments, {entry['frames']} frames (medians over segments)", "",
             "| | steps | PSNR (dB) | mouth PSNR (dB) | SSIM | mouth SSIM | LMD px | flicker | lower-face flicker "
             "| mouth sharpness | identity dist |", "|---" * 11 + "|"]
    rows = [(f"{r['config']}" + ("" if r["references"] in (None, True) else ", no references")
             + ("" if r["masked_frame"] in (None, True) else ", no masked frame")
             + (", references aligned by the head only" if r["architecture"] == "lower-face" and r["reference_warp"] == "head"
               and r["references"] is not False else "")
             + (", blend head" if r["head"] == "blend" else ""), r)
            for r in entry["renderers"].values()]
    rows.append(("static baseline (first frame)", {**entry["baseline_static"], "step": "—"}))
    for name, m in rows:
        lines.append(f"| {name} | {m['step']} | {_fmt(m['psnr'], 2)} | {_fmt(m['psnr_mouth'], 2)} | {_fmt(m['ssim'], 3)} | "
                     f"{_fmt(m['ssim_mouth'], 3)} | {_fmt(m['lmd'], 2)} | {_fmt(m['flicker'], 2)} | {_fmt(m['flicker_face'], 2)} | "
                     f"{_fmt(m['sharpness_ratio'], 2)} | {_fmt(m['identity_dist'], 3)} |")
    real = entry["real_footage"]
    lines += ["", f"Real footage: flicker {_fmt(real['flicker'], 2)}, lower-face flicker {_fmt(real['flicker_face'], 2)}, "
                  f"dlib LMD on the real frames {_fmt(real['lmd'], 2)} px.", ""]
    for run, r in entry["renderers"].items() if with_targets else ():
        if (r["architecture"] == "lower-face" and r["references"] in (None, True) and r["masked_frame"] in (None, True)
                and r["reference_warp"] == "mouth"):
            met = floors(r, entry["baseline_static"], real)
            lines += [f"Targets for {r['config']}{', blend head' if r['head'] == 'blend' else ''} (step {r['step']}): "
                      + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in met.items()), ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=Path, required=True, help="evaluation of GRID s1: lower-face and light-256")
    parser.add_argument("--obama", type=Path, required=True, help="evaluation of the Obama clips: lower-face and light-256")
    parser.add_argument("--ablation", type=Path, required=True, help="evaluation of the lower-face snapshot and its ablations")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    report = {"grid_s1": _entry(_load(args.grid)), "obama": _entry(_load(args.obama)),
              "ablation_grid_s1": _entry(_load(args.ablation))}
    args.out.mkdir(parents=True, exist_ok=True)
    eval_file = args.out / "renderer_eval.json"
    everything = json.loads(eval_file.read_text()) if eval_file.is_file() else {}
    everything["lower_face"] = report
    eval_file.write_text(json.dumps(everything, indent=1, allow_nan=False) + "\n")
    lines = _table("grid_s1", report["grid_s1"]) + _table("obama", report["obama"]) \
        + _table("ablation on grid_s1 (600 steps each; a run's renderer is its best checkpoint on validation)",
                 report["ablation_grid_s1"], with_targets=False)
    (args.out / "lower_face_tables.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
