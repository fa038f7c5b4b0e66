#!/usr/bin/env bash
# HTTP server integration tests: ingests the sample corpus into a fresh index, starts
# `damda serve` on a free port with an API key and a 1 MiB body limit, then runs
# Tests/server/test_server.py (OpenAI client + raw HTTP) and Tests/server/test_web.py
# (the web page in headless Chromium). Assumes `swift build -c release` has been run and the
# models are fetched (`damda model fetch` and `damda model fetch --embedding`).
# Screenshots go to $DAMDA_ARTIFACTS (default .build/artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."

DAMDA=.build/release/damda
[[ -x $DAMDA ]] || { echo "$DAMDA not found: run swift build -c release first" >&2; exit 1; }

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

if ! python3 -c "import openai, selenium" >/dev/null 2>&1; then
  echo "== pip install openai selenium"
  python3 -m pip install --quiet --disable-pip-version-check openai selenium
fi
if [[ ! -x /usr/bin/chromedriver ]]; then
  echo "== apt-get install chromium chromium-driver"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
# A Korean font, so that the screenshots are legible (the page itself needs none).
if command -v fc-list >/dev/null 2>&1 && [[ -z $(fc-list :lang=ko family 2>/dev/null) ]]; then
  echo "== apt-get install fonts-nanum"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends fonts-nanum
fi

IDX=$(mktemp -d -t damda-server-index.XXXXXX)
LOG=$(mktemp -t damda-server-log.XXXXXX)
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$IDX"
}
trap cleanup EXIT
server_log() { echo "---- server log (last 80 lines of $LOG)" >&2; tail -n 80 "$LOG" >&2; echo "----" >&2; }

echo "== damda ingest samples/insurance --index $IDX"
$DAMDA ingest samples/insurance --index "$IDX"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export DAMDA_URL="http://127.0.0.1:$PORT"
export DAMDA_API_KEY="test-key-123"
export DAMDA_OTHER_API_KEY="test-key-456"
# The personal-data test greps every file the server writes.
export DAMDA_INDEX_DIR="$IDX" DAMDA_SERVER_LOG="$LOG"
export DAMDA_ARTIFACTS="$(realpath -m "${DAMDA_ARTIFACTS:-.build/artifacts}")"
mkdir -p "$DAMDA_ARTIFACTS"

echo "== damda serve --index $IDX --port $PORT (log: $LOG)"
$DAMDA serve --index "$IDX" --port "$PORT" --api-key "$DAMDA_API_KEY" --api-key "$DAMDA_OTHER_API_KEY" --max-body-bytes 1048576 --redact-pii >"$LOG" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 240); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server exited before it became healthy" >&2
    server_log
    exit 1
  fi
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).read()' \
      "$DAMDA_URL" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.5
done
if ((ready == 0)); then
  echo "server not healthy after 120 s" >&2
  server_log
  exit 1
fi
echo "== server healthy at $DAMDA_URL"

status=0
# DAMDA_SERVER_TESTS picks tests (e.g. "test_server.TestFeedback"); by default all of them.
(cd Tests/server && python3 -m unittest -v ${DAMDA_SERVER_TESTS:-test_server test_web}) || status=$?
# The eval judge against this server as its endpoint: the 270M model is a poor judge, so most
# replies fail the rubric's schema; they must be retried, counted and reported, never fatal.
echo "== damda eval --judge-url $DAMDA_URL --panel (two configurations, three questions, the feedback and A/B votes the tests left)"
python3 -c 'import sys, urllib.request; r = urllib.request.Request(sys.argv[1] + "/v1/feedback/export?format=jsonl", headers={"Authorization": "Bearer " + sys.argv[2]}); open(sys.argv[3], "wb").write(urllib.request.urlopen(r, timeout=60).read())' \
  "$DAMDA_URL" "$DAMDA_API_KEY" "$DAMDA_ARTIFACTS/feedback.jsonl"
if $DAMDA eval --qa evals/sample-qa.jsonl --index "$IDX" --limit 3 --config rag --config peft+rag \
    --judge-url "$DAMDA_URL" --judge-key "$DAMDA_API_KEY" --judge-model damda --judge-attempts 2 --feedback "$DAMDA_ARTIFACTS/feedback.jsonl" \
    --json "$DAMDA_ARTIFACTS/judge.json" --out "$DAMDA_ARTIFACTS/judge.rows.jsonl" --panel --report "$DAMDA_ARTIFACTS/judge-report.html" >"$DAMDA_ARTIFACTS/judge.txt" 2>&1; then
  python3 - "$DAMDA_ARTIFACTS/judge.json" "$DAMDA_ARTIFACTS/feedback.jsonl" <<'PY' || status=1
import json, sys
report = json.load(open(sys.argv[1]))
j = report["judge"]
# The panel surveys the tests voted on are in the eval report (--panel).
voted = [p for p in report.get("panel") or [] if p["votes"] >= 2]
assert voted and all(p["pairs"][0]["votes"] == p["votes"] for p in voted), report.get("panel")
assert "People's blind A/B panel" in open(sys.argv[1].replace("judge.json", "judge-report.html"), encoding="utf-8").read()
for name in ("rag", "peft+rag"):
    c = j["scores"][name]["counts"]
    assert c["valid"] + c["invalid"] + c["errors"] == 6, (name, c)  # 3 answerable + 3 off-domain
    assert c["errors"] == 0, ("the endpoint failed", j.get("first_error"))
f = j["feedback"]
rated = sum(1 for line in open(sys.argv[2]) if line.strip())
assert f["rated"] == rated > 0 and f["judged"] + f["invalid"] + f["errors"] == rated, (f, rated)
p = j["pairwise"][0]
assert p["baseline_wins"] + p["config_wins"] + p["ties"] + p["invalid"] + p["errors"] == 6, p
print("judge: every question judged or counted", {n: j["scores"][n]["counts"] for n in j["scores"]}, p, "feedback", f)
PY
else
  cat "$DAMDA_ARTIFACTS/judge.txt"
  status=1
fi
# The synthesis teacher against this server: the plumbing is real (requests, schema checks,
# retries, counts); the 270M model's replies seldom hold the JSON asked for, and every failure
# must be counted, never fatal, with the failed chunks asked again by a rerun. A listener that
# accepts and never answers stands for a teacher that times out.
echo "== damda data synthesize --teacher-url $DAMDA_URL (and a teacher that never answers)"
TEACH=$(mktemp -d -t damda-teacher.XXXXXX)
$DAMDA ingest samples/insurance/notice.txt --index "$TEACH/index" >/dev/null
python3 - "$TEACH/silent.port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept(); held.append(c)   # read nothing, answer nothing
PY
SILENT_PID=$!
for _ in $(seq 50); do [[ -s $TEACH/silent.port ]] && break; sleep 0.1; done
if $DAMDA data synthesize --index "$TEACH/index" --out "$TEACH/served.jsonl" --per-chunk 2 --teacher-url "$DAMDA_URL" \
      --teacher-key "$DAMDA_API_KEY" --teacher-attempts 2 --teacher-rps 5 >"$TEACH/served.json" 2>"$TEACH/served.err" &&
   $DAMDA data synthesize --index "$TEACH/index" --out "$TEACH/served.jsonl" --per-chunk 2 --teacher-url "$DAMDA_URL" \
      --teacher-key "$DAMDA_API_KEY" --teacher-attempts 1 >"$TEACH/served-again.json" 2>>"$TEACH/served.err" &&
   $DAMDA data synthesize --index "$TEACH/index" --out "$TEACH/silent.jsonl" --teacher-url "http://127.0.0.1:$(cat "$TEACH/silent.port")" \
      --teacher-timeout 2 >"$TEACH/silent.json" 2>"$TEACH/silent.err"; then
  python3 - "$TEACH" <<'PY' || status=1
import json, sys
t = sys.argv[1]
served, again, silent = (json.load(open(f"{t}/{n}.json")) for n in ("served", "served-again", "silent"))
failed = sum(served["teacher_failures"].values())
assert served["chunks"] > 0 and served["teacher_requests"] >= served["chunks"], served
assert served["candidates"] == served["kept"] + sum(served["dropped"].values()), served
assert again["chunks"] == failed, ("a rerun asks again exactly the chunks that failed", served, again)
kept = sum(1 for line in open(f"{t}/served.jsonl") if line.strip())
assert kept == served["kept"] + again["kept"], (kept, served, again)
assert silent["teacher_failures"] == {"teacher_timeout": silent["chunks"]} and silent["kept"] == 0, silent
print("teacher: every chunk answered or counted", {"served": served["teacher_failures"], "kept": kept, "silent": silent["teacher_failures"]})
PY
else
  cat "$TEACH/served.err" "$TEACH/silent.err" 2>/dev/null
  status=1
fi
kill "$SILENT_PID" 2>/dev/null || true
rm -rf "$TEACH"
if ((status != 0)); then
  server_log
fi
echo "== screenshots in $DAMDA_ARTIFACTS"
exit "$status"
