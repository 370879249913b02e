#!/usr/bin/env bash
# PGIM's ChatGPT teacher (replayed, parsed) against the MiniLM encoder student that reads its knowledge
# (condition b of encoder_quality.py), on Twitter-2015 test: report under benchmarks/results/.
#   bash benchmarks/report_twitter2015.sh MINILM_DIR [DATA_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: report_twitter2015.sh MINILM_DIR [DATA_DIR] [EPOCHS]}
DATA=${2:-../shared/datasets}
EPOCHS=${3:-2}
WORK=$(mktemp -d)
python benchmarks/pgim_teacher_f1.py --data-dir "$DATA" --write-predictions "$WORK/teacher"
python benchmarks/encoder_quality.py --model "$MODEL" --data-dir "$DATA" --datasets twitter2015 --conditions b --seeds 0 \
    --epochs "$EPOCHS" --predictions-dir "$WORK/student" --out "$WORK/student.json"
PARAMS=$(python -c "import json,sys; print(json.load(open('$WORK/student.json'))['runs'][0].get('parameters', 0))")
cotdistill compare "teacher=$WORK/teacher/twitter2015-test-teacher.jsonl" "student=$WORK/student/twitter2015-b-s0.jsonl" \
    --dataset twitter2015 --data-dir "$DATA/twitter2015" --split test --params "student=$PARAMS" \
    --out benchmarks/results/report-twitter2015-teacher-vs-student --overwrite
