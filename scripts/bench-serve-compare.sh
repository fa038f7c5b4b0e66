#!/usr/bin/env bash
# Side-by-side serving benchmark: `damda serve` and llama.cpp's `llama-server -np 8` on the same
# model and machine, one after the other in each round (so both see the same machine state).
#
#   LLAMA_SERVER=/path/to/llama-server bash scripts/bench-serve-compare.sh [ROUNDS] [bench-serve.py args...]
#
# llama-server is built outside this repository, e.g. from the llama.cpp in PyPI's
# llama-cpp-python sdist: cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF && cmake --build build --target llama-server.
# Damda runs the base model (--no-adapter), as llama-server does. Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}; shift || true
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--clients 1,4,8 --max-tokens 64)
LLAMA_SERVER=${LLAMA_SERVER:?set LLAMA_SERVER to a llama-server binary}
THREADS=${THREADS:-2}
DAMDA=${DAMDA:-.build/release/damda}
MODEL=${DAMDA_MODEL:-${DAMDA_MODELS_DIR:-$HOME/.cache/damda/models}/gemma-3-270m-q4_k_m.gguf}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

wait_up() { for _ in $(seq 1 120); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done; echo "server at $1 did not start" >&2; return 1; }

for round in $(seq 1 "$ROUNDS"); do
  "$DAMDA" serve --index "$WORK/index" --no-adapter --threads "$THREADS" --port 18181 >"$WORK/damda.log" 2>&1 &
  pid=$!; wait_up http://127.0.0.1:18181/health
  echo "{\"round\": $round, \"server\": \"damda serve\", \"result\": $(python3 scripts/bench-serve.py --url http://127.0.0.1:18181 "${ARGS[@]}")}"
  kill $pid; wait $pid 2>/dev/null || true
  "$LLAMA_SERVER" -m "$MODEL" -np 8 -c 16384 -t "$THREADS" --port 18182 >"$WORK/llama.log" 2>&1 &
  pid=$!; wait_up http://127.0.0.1:18182/health
  echo "{\"round\": $round, \"server\": \"llama-server -np 8\", \"result\": $(python3 scripts/bench-serve.py --url http://127.0.0.1:18182 "${ARGS[@]}")}"
  kill $pid; wait $pid 2>/dev/null || true
done
