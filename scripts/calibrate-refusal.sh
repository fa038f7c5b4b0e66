#!/usr/bin/env bash
# Calibrates the default adapter's refusals: the first-token threshold (models/ko-rag/assistant.json,
# which the assistant uses), and a refusal probe for measurement (WORK/refusal-probe.json; not
# shipped: see the adapter's model card).
#
#   scripts/calibrate-refusal.sh [WORK=/tmp/damda-ko-rag] [ADAPTER=models/ko-rag]
#
# Questions: KorQuAD questions of the training articles that the adapter was not trained on (every
# third, split/calibration.jsonl of scripts/default-adapter-data.py), 100 answerable + 30 asked with
# their article hidden, over an index of the KorQuAD paragraphs alone; the held-out articles stay for
# evaluation. `damda eval` runs them with refusal-threshold=1 (the model never refuses at the first
# token and each row records its refusal probability); scripts/refusal-threshold.py then prices every
# threshold from those rows and writes the one with the best answerable F1 that still refuses 70%
# of the unanswerable questions. Rerunning resumes the evaluation.
#
# The probe (shipped as ADAPTER/refusal-probe.json, which the assistant uses by default):
# `damda adapter calibrate` asks split/calibration-natural.jsonl (scripts/default-adapter-data.py: 400
# questions of the same third, then the natural-style questions in models/ko-rag/calibration/), each
# as it is and with its article hidden, over one index of the KorQuAD paragraphs and the easylaw
# sections; it reads the adapter's state after layer 9 at each prompt's end and fits logistic
# regression with a threshold that refuses at most 5% of the answerable ones out of fold.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/damda-ko-rag}
adapter=${2:-models/ko-rag}
damda=${DAMDA:-.build/release/damda}
[[ -f $work/split/calibration.jsonl ]] || { echo "run scripts/train-default-adapter.sh first (split in $work)" >&2; exit 1; }
[[ -f $work/index/index.sqlite ]] || "$damda" ingest ../shared/data/korquad/dev_docs.jsonl --index "$work/index"
"$damda" eval --qa "$work/split/calibration.jsonl" --index "$work/index" --limit 100 --unanswerable 30 \
  --config "calibrate=adapter=$adapter,refusal-threshold=1,refusal-probe=off" --json "$work/calibration.json" --out "$work/calibration.rows.jsonl" --resume
python3 scripts/refusal-threshold.py "$work/calibration.rows.jsonl" calibrate --min-unanswerable 0.70 --write "$adapter" \
  --note "KorQuAD questions of the training articles that were not trained on (scripts/calibrate-refusal.sh)"
[[ -f $work/index-mixed/index.sqlite ]] || "$damda" ingest ../shared/data/korquad/dev_docs.jsonl ../shared/data/domain/easylaw_finance_docs.jsonl --index "$work/index-mixed"
"$damda" adapter calibrate --adapter "$adapter" --qa "$work/split/calibration-natural.jsonl" --index "$work/index-mixed" --limit 0 \
  --negatives article --out "$adapter/refusal-probe.json" --json "$work/refusal-probe-fit.json"
