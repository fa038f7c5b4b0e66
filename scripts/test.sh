#!/usr/bin/env bash
# Runs every test: installs what they need, builds, fetches the default model (the reference-
# comparison tests use it), runs `swift test` in release mode (the kernels are too slow
# unoptimized), then the HTTP server's integration tests (official `openai` client, plain HTTP,
# the web page in headless Chromium) against a real `damda serve`, and the evaluation gate
# (`damda eval` on the sample corpus against evals/sample-baseline.json, its report in Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
log=$(mktemp)
swift build -c release >"$log" 2>&1 || { tail -60 "$log"; echo "build failed" >&2; exit 1; }
.build/release/damda model fetch
.build/release/damda model fetch --embedding
# PIPESTATUS must be read right after the pipeline: behind `|| true` it held `true`'s status, and
# XCTest failures did not fail the run.
set +e
swift test -c release --disable-swift-testing 2>&1 | tee /tmp/damda-test.log | grep -vE "^\[[0-9]+/[0-9]+\]|^Test Case .* (started|passed)"
status=${PIPESTATUS[0]}
set -e
bash scripts/cli-tests.sh || status=$?
bash scripts/server-tests.sh || status=$?
bash scripts/shared-state-test.sh || status=$?
# The evaluation gate: four configurations on the sample corpus against the committed baseline.
bash scripts/eval-gate.sh || status=$?
exit "$status"
