#!/usr/bin/env bash
# The evaluation regression gate: ingests the sample corpus into a fresh index, runs `damda eval`
# with the seed's four configurations (base, rag, peft, peft+rag) on evals/sample-qa.jsonl
# (12 answerable, 3 off-domain, 3 with their document hidden), compares with the committed
# evals/sample-baseline.json and fails when a gated metric's interval falls below it; then checks
# the HTML report in headless Chromium (Tests/server/test_report.py, screenshot in
# $DAMDA_ARTIFACTS). Assumes `swift build -c release` and the fetched models.
# To refresh the baseline after an intended change: bash scripts/eval-gate.sh --write-baseline
set -euo pipefail
cd "$(dirname "$0")/.."
DAMDA=.build/release/damda
ARTIFACTS="${DAMDA_ARTIFACTS:-.build/artifacts}"
mkdir -p "$ARTIFACTS"
IDX=$(mktemp -d -t damda-eval-index.XXXXXX)
trap 'rm -rf "$IDX"' EXIT
$DAMDA ingest samples/insurance --index "$IDX" >/dev/null
args=(eval --qa evals/sample-qa.jsonl --index "$IDX" --unanswerable 3
      --json "$ARTIFACTS/eval.json" --report "$ARTIFACTS/eval.html" --out "$ARTIFACTS/eval.rows.jsonl")
if [[ ${1:-} == --write-baseline ]]; then
  $DAMDA "${args[@]}"
  cp "$ARTIFACTS/eval.json" evals/sample-baseline.json
  echo "wrote evals/sample-baseline.json"
  exit 0
fi
$DAMDA "${args[@]}" --baseline evals/sample-baseline.json --gate
# Every answerable row with retrieval says whether the prompt held a gold phrase, consistently with
# its sources, and the passage_miss tag marks the gold document in the prompt without one.
python3 - "$ARTIFACTS/eval.rows.jsonl" <<'PY'
import json, string, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# KorQuAD's normalization, as the eval scores answers: lowercase, no ASCII punctuation, no whitespace.
norm = lambda t: "".join(c for c in t.lower() if c not in string.punctuation and not c.isspace())
checked = 0
for r in rows:
    if r["kind"] != "answerable" or r["config"] not in ("rag", "peft+rag"):
        continue
    held = any(norm(g) and norm(g) in norm(s) for g in r["gold"] for s in r["sources"])
    assert r["gold_phrase_in_prompt"] == held, r["id"]
    assert ("passage_miss" in r["tags"]) == (r["gold_in_prompt"] and not held), r["id"]
    checked += 1
assert checked == 24, checked
print(f"gold phrase in prompt: consistent with the sources on {checked} rows")
PY
# Resume after a kill mid-write: tear the last row in half, rerun with --resume; only that answer
# is asked again and the summary is the same.
python3 - "$ARTIFACTS/eval.rows.jsonl" <<'PY'
import sys
p = sys.argv[1]
data = open(p, "rb").read().rstrip(b"\n")
cut = data.rfind(b"\n") + 1
open(p, "wb").write(data[:cut + (len(data) - cut) // 2])
PY
$DAMDA eval --qa evals/sample-qa.jsonl --index "$IDX" --unanswerable 3 --json "$ARTIFACTS/eval-resumed.json" \
  --out "$ARTIFACTS/eval.rows.jsonl" --resume 2>"$ARTIFACTS/eval-resume.log" >/dev/null
grep -q "resuming: 71 rows kept" "$ARTIFACTS/eval-resume.log" || { cat "$ARTIFACTS/eval-resume.log"; echo "resume did not keep 71 rows" >&2; exit 1; }
python3 - "$ARTIFACTS/eval.json" "$ARTIFACTS/eval-resumed.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
keep = lambda r: {c: {m: v for m, v in ms.items() if m not in ("seconds_per_question", "tokens_per_s")} for c, ms in r["metrics"].items()}
assert keep(a) == keep(b), "the resumed run's summary differs"
print("resume: the torn row was answered again, the summary is unchanged")
PY
# Bad input is counted and reported: a malformed line, an unknown document, answers without a
# document; an empty index is a clear error.
BAD=$(mktemp -t damda-eval-bad.XXXXXX)
EMPTY=$(mktemp -d -t damda-eval-empty.XXXXXX)
trap 'rm -rf "$IDX" "$EMPTY" "$BAD"' EXIT
{ head -1 evals/sample-qa.jsonl; echo '{"question": "torn'; echo '{"id": "x1", "question": "없는 문서?", "answers": ["a"], "doc_id": "nowhere.md"}'
  echo '{"id": "x2", "question": "문서 없는 정답?", "answers": ["a"]}'; } >"$BAD"
$DAMDA eval --qa "$BAD" --index "$IDX" --config peft+rag --json "$ARTIFACTS/eval-bad.json" --out "$ARTIFACTS/eval-bad.rows.jsonl" \
  >/dev/null 2>"$ARTIFACTS/eval-bad.log"
for expected in "skipped 1 malformed lines" "1 questions name documents the index lacks" "1 questions have answers without doc_id"; do
  grep -q "$expected" "$ARTIFACTS/eval-bad.log" || { cat "$ARTIFACTS/eval-bad.log"; echo "missing note: $expected" >&2; exit 1; }
done
if $DAMDA eval --qa evals/sample-qa.jsonl --index "$EMPTY" --config rag >/dev/null 2>"$ARTIFACTS/eval-empty.log"; then
  echo "an empty index must be an error" >&2; exit 1
fi
grep -q "is empty" "$ARTIFACTS/eval-empty.log" || { cat "$ARTIFACTS/eval-empty.log"; exit 1; }
echo "bad input: counted and reported; an empty index is a clear error"
DAMDA_REPORT="$ARTIFACTS/eval.html" DAMDA_ARTIFACTS="$ARTIFACTS" python3 -m unittest -v Tests/server/test_report.py
