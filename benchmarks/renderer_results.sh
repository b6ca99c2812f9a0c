#!/usr/bin/env bash
# Renderer results on real recordings (issue: jaw, facial maps, pix2pixHD renderer).
# Prepares GRID s1 and the three Obama clips at 256² (if not yet), trains light-256 on each, and
# the edge ablation (--no-edges) on GRID with the same step budget as the with-edges run's
# snapshot, then evaluates all on the held-out segments and writes benchmarks/results/
# renderer_eval.json, renderer_tables.md and renderer_samples_*.png. Runs resume if interrupted;
# re-running after more training re-evaluates.
#   bash benchmarks/renderer_results.sh [DATA_DIR] [RUNS_DIR]
# STEPS (default 2400), ABLATION_STEPS (800), OBAMA_STEPS (1500), EVAL_CLIPS (20) tune the budget.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
runs=${2:-runs/renderer}
bin=${BIN:-.venv/bin}
steps=${STEPS:-2400}
ablation_steps=${ABLATION_STEPS:-800}
obama_steps=${OBAMA_STEPS:-1500}
eval_clips=${EVAL_CLIPS:-20}
results=benchmarks/results
mkdir -p "$results"
bash benchmarks/prepare_real_datasets.sh "$data"

# one thread per run, two runs at a time: the 2-core machine's best throughput
train() { OMP_NUM_THREADS=1 $bin/newsanchor train renderer "$@" --preset light-256 --loader-workers 1 --quiet; }
train "$data/grid_s1" --out "$runs/grid_s1" --max-steps "$steps" --snapshot-steps "$ablation_steps" &
{ train "$data/grid_s1" --out "$runs/grid_s1_no_edges" --max-steps "$ablation_steps" --no-edges
  train "$data/obama" --out "$runs/obama" --max-steps "$obama_steps"; } &
wait

snapshot=$(printf "%s/grid_s1/step_%07d" "$runs" "$ablation_steps")
evaluate() { $bin/newsanchor evaluate renderer "$@" --json --quiet; }
evaluate "$data/grid_s1" "$runs/grid_s1" --clips "$eval_clips" --samples 2 --samples-png "$results/renderer_samples_grid_s1.png" \
  > "$runs/eval_grid_s1.json"
evaluate "$data/grid_s1" "$snapshot" "$runs/grid_s1_no_edges" --clips "$eval_clips" \
  --samples 2 --samples-png "$results/renderer_samples_ablation.png" > "$runs/eval_ablation.json"
evaluate "$data/obama" "$runs/obama" --samples 2 --samples-png "$results/renderer_samples_obama.png" > "$runs/eval_obama.json"
$bin/python benchmarks/renderer_report.py --grid "$runs/eval_grid_s1.json" --ablation "$runs/eval_ablation.json" \
  --obama "$runs/eval_obama.json" --out "$results"
cat "$results/renderer_tables.md"
