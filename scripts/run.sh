#!/usr/bin/env bash
# The main job of README.md: on a fresh Debian 12 machine, installs what is missing, builds
# the example binaries and runs the lottery experiment (prune-lottery) with its built-in
# default; extra arguments go to prune-lottery (e.g. --quick, --full, --out DIR).
# The report is written to lottery-out/ (report.md, report.json, SVG heatmaps).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/ccache.sh
cmake --preset release >/dev/null
cmake --build --preset release --target prune-lottery prune-data prune-pretrain
exec build/bin/prune-lottery "$@"
