#!/usr/bin/env bash
# Trains the default Korean RAG adapter shipped in models/ko-rag/ (see its README.md, the model card).
#
#   scripts/train-default-adapter.sh [WORK=/tmp/damda-ko-rag]
#
# Data, all read in place from ../shared/data/:
# - KorQuAD 1.0 dev subset, split by article with scripts/korquad-split.py (every 5th of 84 articles
#   held out for evaluation, never trained on); two of every three training-article questions
#   (1,711), the third kept apart for refusal calibration (scripts/calibrate-refusal.sh);
# - 600 questions `damda data synthesize --docs` writes for the easylaw finance and insurance
#   documents (extractive, no model), so the adapter sees the domain's register;
# mixed by scripts/default-adapter-data.py (seed 0). Contexts are built like the assistant's: hybrid
# retrieval over one index of all KorQuAD paragraphs and easylaw sections, the gold chunk among
# retrieved distractors, within the 512-token budget; 20% of examples get distractors only and learn
# to answer "답변을 찾을 수 없습니다.". A second stage continues that adapter (--from-adapter) on the
# layperson questions of models/ko-rag/training/ (written in people's own words over easylaw sections
# no evaluation or calibration question is about) with as many stage-one questions replayed beside
# them (split/natural-mix.jsonl), so the adapter answers paraphrases too. Every stage is resumable: rerun the script after a kill and
# training continues from its last checkpoint to the same adapter. The last step stores the adapter
# in F16 in models/ko-rag/ with its SHA-256 in models/ko-rag/SHA256SUMS (checked at every load).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/damda-ko-rag}
damda=${DAMDA:-.build/release/damda}
korquad=../shared/data/korquad   # the shared data, read in place
domain=../shared/data/domain
mkdir -p "$work"
python3 scripts/korquad-split.py "$korquad/dev_qa.jsonl" "$work/split" 3
[[ -s "$work/easylaw-syn.jsonl" ]] || "$damda" data synthesize --docs "$domain/easylaw_finance_docs.jsonl" --out "$work/easylaw-syn.jsonl"
python3 scripts/default-adapter-data.py "$work"
[[ -f "$work/index-mixed/index.sqlite" ]] || "$damda" ingest "$korquad/dev_docs.jsonl" "$domain/easylaw_finance_docs.jsonl" --index "$work/index-mixed"
"$damda" train --data "$work/split/mix.jsonl" --format rag --rag --index "$work/index-mixed" --out "$work/lora-mixed" \
  --unanswerable 0.2 --batch 4 --epochs 1 --lr 3e-4 --warmup 0.05 --seed 0 \
  --eval-every 50 --save-every 5 --save-adapter-every 50 | tee "$work/train.json"
"$damda" adapter export --adapter "$work/lora-mixed" --out "$work/stage1" --dtype f16
"$damda" train --data "$work/split/natural-mix.jsonl" --format rag --rag --index "$work/index-mixed" --from-adapter "$work/stage1" \
  --out "$work/lora-natural" --unanswerable 0.2 --batch 4 --epochs 1 --lr 2e-4 --warmup 0.05 --seed 0 \
  --eval-every 30 --save-every 5 --save-adapter-every 45 | tee "$work/train-natural.json"
"$damda" adapter export --adapter "$work/lora-natural" --out models/ko-rag --dtype f16
(cd models/ko-rag && sha256sum adapter_model.safetensors > SHA256SUMS && cat SHA256SUMS)
