#!/usr/bin/env bash
# Synthetic-only vs human-trained RAG adapter at equal size (issue: training data from documents).
#
#   scripts/synthetic-vs-human.sh [WORK=/tmp/damda-syn] [N=200]
#
# The KorQuAD split of scripts/train-default-adapter.sh (by article, every 5th held out): `damda data
# synthesize` writes questions for the training articles' paragraphs without their human questions;
# N of them, evenly spaced, train one adapter, N human questions of the same articles the other
# (same recipe: --rag, 20% unanswerable, 1 epoch, batch 4, lr 3e-4); `damda eval` asks both the 100
# held-out human questions (+ 20 with their article hidden). Every step resumes after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/damda-syn}
n=${2:-200}
damda=${DAMDA:-.build/release/damda}
data=../shared/data/korquad   # the shared data, read in place
mkdir -p "$work"
python3 scripts/korquad-split.py "$data/dev_qa.jsonl" "$work/split" 3
[[ -f "$work/index/index.sqlite" ]] || "$damda" ingest "$data/dev_docs.jsonl" --index "$work/index"
"$damda" data synthesize --index "$work/index" --out "$work/synthetic.jsonl" --documents-of "$work/split/train.jsonl" | tee "$work/synthesis.json"
python3 - "$work" "$n" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
def lines(p): return [json.loads(l) for l in open(p, encoding="utf-8") if l.strip()]
syn, hum = lines(f"{work}/synthetic.jsonl"), lines(f"{work}/split/train-sample.jsonl")
n = min(n, len(syn), len(hum))
for name, rows in (("synthetic", syn), ("human", hum)):
    with open(f"{work}/{name}-{n}.jsonl", "w", encoding="utf-8") as f:
        for q in (rows[i * len(rows) // n] for i in range(n)):
            f.write(json.dumps({k: q[k] for k in ("id", "question", "answers", "doc_id")}, ensure_ascii=False) + "\n")
print(f"{n} questions each")
PY
for kind in human synthetic; do
  "$damda" train --data "$work/$kind-$n.jsonl" --format rag --rag --index "$work/index" --out "$work/lora-$kind" \
    --unanswerable 0.2 --batch 4 --epochs 1 --lr 3e-4 --seed 0 --save-every 5 | tee "$work/train-$kind.json"
done
"$damda" eval --qa "$work/split/test.jsonl" --index "$work/index" --limit 100 --unanswerable 20 \
  --config human=adapter="$work/lora-human" --config synthetic=adapter="$work/lora-synthetic" \
  --json "$work/eval.json" --report "$work/eval.html" --out "$work/eval.rows.jsonl" --resume
