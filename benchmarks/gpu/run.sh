#!/usr/bin/env bash
# On a lent GPU machine (one H100 or H200), from the repository root: install, then the GPU figures from random
# weights (no downloads) into benchmarks/results/gpu.json, in at most 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
pip install -q -e ".[vllm]" >/dev/null 2>&1 || pip install -q -e . vllm
timeout 480 python benchmarks/gpu/bench.py --size full --out "${OUT:-benchmarks/results}/gpu.json"
