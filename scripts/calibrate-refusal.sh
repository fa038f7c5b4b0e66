#!/usr/bin/env bash
# Calibrates the default adapter's refusal threshold (models/ko-rag/assistant.json).
#
#   scripts/calibrate-refusal.sh [WORK=/tmp/damda-ko-rag] [ADAPTER=models/ko-rag]
#
# Questions: KorQuAD questions of the training articles that the adapter was not trained on (the
# split of scripts/train-default-adapter.sh trains on every 3rd; the other two thirds calibrate),
# 100 answerable + 30 asked with their article hidden; the held-out articles stay for evaluation.
# `damda eval` runs them with refusal-threshold=1 (the model never refuses at the first token and
# each row records its refusal probability); scripts/refusal-threshold.py then prices every
# threshold from those rows and writes the one with the best answerable F1 that still refuses 70%
# of the unanswerable questions. Rerunning resumes the evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/damda-ko-rag}
adapter=${2:-models/ko-rag}
damda=${DAMDA:-.build/release/damda}
[[ -f $work/split/train.jsonl && -f $work/index/index.sqlite ]] || { echo "run scripts/train-default-adapter.sh first (split and index in $work)" >&2; exit 1; }
python3 - "$work/split" <<'PY'
import sys
d = sys.argv[1]
rows = open(f"{d}/train.jsonl", encoding="utf-8").readlines()
open(f"{d}/calibration.jsonl", "w", encoding="utf-8").writelines(r for i, r in enumerate(rows) if i % 3 != 0)
PY
"$damda" eval --qa "$work/split/calibration.jsonl" --index "$work/index" --limit 100 --unanswerable 30 \
  --config "calibrate=adapter=$adapter,refusal-threshold=1" --json "$work/calibration.json" --out "$work/calibration.rows.jsonl" --resume
python3 scripts/refusal-threshold.py "$work/calibration.rows.jsonl" calibrate --min-unanswerable 0.70 --write "$adapter" \
  --note "KorQuAD questions of the training articles that were not trained on (scripts/calibrate-refusal.sh)"
