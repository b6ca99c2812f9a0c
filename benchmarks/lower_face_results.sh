#!/usr/bin/env bash
# The lower-face renderer on real recordings (issue: a photoreal mouth in real time).
# Prepares GRID s1 and the three Obama clips at 256² (if not yet); trains the lower-face renderer
# on each (one thread per run, the two runs side by side: each within an hour on the 2-core CPU);
# trains four variants on GRID to the main run's step-600 snapshot (without reference mouths,
# without the masked frame, references aligned by the head only, the blend head; the blend head on
# Obama too) and light-256 (the paper's
# renderer, for comparison; as many steps as the CPU budget allowed); evaluates them side by
# side on the held-out segments with the static baseline; writes benchmarks/results/
# renderer_eval.json (key lower_face), lower_face_tables.md, lower_face_samples_*.png and blend_samples_*.png
# (open-mouth held-out frames at native size: static | renderers… | real). Runs resume if
# interrupted.
#   bash benchmarks/lower_face_results.sh [DATA_DIR] [RUNS_DIR]
# STEPS (default 2000), ABLATION_STEPS (600), LIGHT_STEPS (300), EVAL_CLIPS (20).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
runs=${2:-runs/lower_face}
bin=${BIN:-.venv/bin}
steps=${STEPS:-2000}
ablation_steps=${ABLATION_STEPS:-600}
light_steps=${LIGHT_STEPS:-300}
eval_clips=${EVAL_CLIPS:-20}
results=benchmarks/results
mkdir -p "$results" "$runs"
bash benchmarks/prepare_real_datasets.sh "$data"

train() { OMP_NUM_THREADS=1 $bin/newsanchor train renderer "$@" --loader-workers 1 --quiet; }
train "$data/grid_s1" --preset lower-face --out "$runs/grid_s1" --max-steps "$steps" --snapshot-steps "$ablation_steps,1000" &
train "$data/obama" --preset lower-face --out "$runs/obama" --max-steps "$steps" --snapshot-steps "$ablation_steps,1000" &
wait
train "$data/grid_s1" --preset lower-face --out "$runs/grid_s1_no_references" --max-steps "$ablation_steps" --no-references &
train "$data/grid_s1" --preset lower-face --out "$runs/grid_s1_no_masked_frame" --max-steps "$ablation_steps" --no-masked-frame &
train "$data/grid_s1" --preset light-256 --out "$runs/grid_s1_light256" --max-steps "$light_steps" &
wait
train "$data/grid_s1" --preset lower-face --out "$runs/grid_s1_head_warp" --max-steps "$ablation_steps" --reference-warp head &
train "$data/grid_s1" --preset lower-face --out "$runs/grid_s1_blend_head" --max-steps "$ablation_steps" --head blend &
train "$data/obama" --preset lower-face --out "$runs/obama_head_warp" --max-steps 1600 --reference-warp head &
wait
train "$data/obama" --preset lower-face --out "$runs/obama_blend_head" --max-steps "$ablation_steps" --head blend

snapshot=$(printf "%s/grid_s1/step_%07d" "$runs" "$ablation_steps")
evaluate() { OMP_NUM_THREADS=1 $bin/newsanchor evaluate renderer "$@" --json --quiet; }
evaluate "$data/grid_s1" "$runs/grid_s1" "$runs/grid_s1_light256" --clips "$eval_clips" --samples 3 --open-mouths \
  --samples-png "$results/lower_face_samples_grid_s1.png" > "$runs/eval_grid_s1.json" &
evaluate "$data/grid_s1" "$snapshot" "$runs/grid_s1_no_references" "$runs/grid_s1_no_masked_frame" "$runs/grid_s1_blend_head" \
  "$runs/grid_s1_head_warp" \
  --clips "$eval_clips" > "$runs/eval_ablation.json" &
wait
evaluate "$data/obama" "$runs/obama" "$runs/obama_head_warp" --samples 3 --open-mouths \
  --samples-png "$results/lower_face_samples_obama.png" > "$runs/eval_obama.json"
# the blend head beside the rgb head at equal steps, with samples (RESULTS: "The blend head, stabilised")
evaluate "$data/grid_s1" "$snapshot" "$runs/grid_s1_blend_head" --clips "$eval_clips" --samples 3 --open-mouths \
  --samples-png "$results/blend_samples_grid_s1.png" > "$runs/eval_blend_grid_s1.json"
evaluate "$data/obama" "$(printf "%s/obama/step_%07d" "$runs" "$ablation_steps")" "$runs/obama_blend_head" --samples 3 \
  --open-mouths --samples-png "$results/blend_samples_obama.png" > "$runs/eval_blend_obama.json"
$bin/python benchmarks/lower_face_report.py --grid "$runs/eval_grid_s1.json" --obama "$runs/eval_obama.json" \
  --ablation "$runs/eval_ablation.json" --out "$results"
