#!/usr/bin/env bash
# Trains the default Korean RAG adapter shipped in models/ko-rag/ (see its README.md, the model card).
#
#   scripts/train-default-adapter.sh [WORK=/tmp/damda-ko-rag]
#
# Data: the shared KorQuAD 1.0 dev subset (../shared/data/korquad/, read in place), split by article
# with scripts/korquad-split.py (every 5th of 84 articles held out for evaluation, never trained on);
# every $EVERY-th training question (default 3: 856 of 2,566). Contexts are built like the
# assistant's: hybrid retrieval over all 524 paragraphs, the gold chunk among retrieved distractors,
# within the 512-token budget; 20% of examples get distractors only and learn to answer
# "답변을 찾을 수 없습니다.". Every stage is resumable: rerun the script after a kill and training
# continues from its last checkpoint to the same adapter. The last step stores the adapter in F16 in
# models/ko-rag/ with its SHA-256 in models/ko-rag/SHA256SUMS (checked at every load).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/damda-ko-rag}
every=${EVERY:-3}
damda=${DAMDA:-.build/release/damda}
data=../shared/data/korquad   # the shared data, read in place
mkdir -p "$work"
python3 scripts/korquad-split.py "$data/dev_qa.jsonl" "$work/split" "$every"
[[ -f "$work/index/index.sqlite" ]] || "$damda" ingest "$data/dev_docs.jsonl" --index "$work/index"
"$damda" train --data "$work/split/train-sample.jsonl" --rag --index "$work/index" --out "$work/lora" \
  --unanswerable 0.2 --batch 4 --epochs 1 --lr 3e-4 --warmup 0.05 --seed 0 \
  --eval-every 25 --save-every 5 --save-adapter-every 25 | tee "$work/train.json"
"$damda" adapter export --adapter "$work/lora" --out models/ko-rag --dtype f16
(cd models/ko-rag && sha256sum adapter_model.safetensors > SHA256SUMS && cat SHA256SUMS)
