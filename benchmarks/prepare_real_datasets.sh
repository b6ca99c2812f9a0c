#!/usr/bin/env bash
# Prepares GRID s1 and the three Obama clips of ../shared/data at 256² into DATA/grid_s1 and
# DATA/obama, unless already there (the renderer benchmark scripts call this first).
#   bash benchmarks/prepare_real_datasets.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${1:-data}
bin=${BIN:-.venv/bin}
[ -f "$data/grid_s1/manifest.json" ] || $bin/newsanchor prepare ../shared/data/grid_s1 --out "$data/grid_s1" --size 256
[ -f "$data/obama/manifest.json" ] || $bin/newsanchor prepare ../shared/data/clips/obama_address_{1,2,3}.mp4 \
  --out "$data/obama" --size 256
