#!/usr/bin/env bash
# Command-line checks on real files: `damda guard check --json` reports personal data by type and
# span and leaves look-alikes alone; `damda ingest --redact-pii` leaves no raw personal data in any
# file of the index; `damda data clean` masks it in training data. Assumes `swift build -c release`.
set -euo pipefail
cd "$(dirname "$0")/.."
DAMDA=.build/release/damda
work=$(mktemp -d -t damda-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== damda guard check --json"
$DAMDA guard check --json "제 주민번호는 900101-1234568이고 010-1234-5678로 연락주세요. 민법 제593조제1항, 고객센터 1588-1234" >"$work/guard.json"
python3 - "$work/guard.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
text = "제 주민번호는 900101-1234568이고 010-1234-5678로 연락주세요. 민법 제593조제1항, 고객센터 1588-1234"
assert [(f["type"], text[f["start"]:f["end"]]) for f in r["pii"]] == [
    ("resident_registration_number", "900101-1234568"), ("mobile_phone", "010-1234-5678")], r
assert r["masked"] == "제 주민번호는 [주민등록번호]이고 [휴대폰번호]로 연락주세요. 민법 제593조제1항, 고객센터 1588-1234", r
print("guard check: spans index the text as Python does; article numbers and call-centre numbers left alone")
PY

echo "== damda ingest --redact-pii"
printf '고객 홍길동(주민번호 900101-1234568, 010-9876-5432)의 계좌로 110-123-456789 입금 예정입니다. 보험금은 입원 1일당 5만원입니다.\n' >"$work/doc.txt"
$DAMDA ingest "$work/doc.txt" --index "$work/index" --redact-pii --no-embeddings 2>"$work/ingest.err" >/dev/null
grep -q "masked 1 bank_account, 1 mobile_phone, 1 resident_registration_number" "$work/ingest.err" || { cat "$work/ingest.err"; exit 1; }
if grep -rqaE "900101|1234568|9876-5432|456789" "$work/index"; then echo "raw personal data reached the index" >&2; exit 1; fi
$DAMDA search "입원 보험금" --index "$work/index" --mode bm25 | grep -q "\[주민등록번호\]" || { echo "the masked text is not what was indexed" >&2; exit 1; }
echo "ingest --redact-pii: no raw personal data in any index file"

echo "== damda data clean (personal data masked)"
printf '%s\n' '{"id":"1","question":"제 번호 010-1234-5678로 입원 보험금 문의드려요","answers":["5만원"],"doc_id":"d"}' >"$work/qa.jsonl"
$DAMDA data clean --in "$work/qa.jsonl" --out "$work/clean.jsonl" >"$work/clean.json"
grep -q '\[휴대폰번호\]' "$work/clean.jsonl" && ! grep -q "1234-5678" "$work/clean.jsonl" || { cat "$work/clean.jsonl"; exit 1; }
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["clean"]; assert s["pii_masked"] == 1 and s["pii_by_type"] == {"mobile_phone": 1}, s' "$work/clean.json"
echo "data clean: masked and counted"

echo "== damda data synthesize --docs (a temporary index; bad input counted; a rerun resumes)"
mkdir -p "$work/docs" "$work/empty"
cp samples/insurance/*.md "$work/docs/"
printf 'Hello world. This page has no Korean at all.\n' >"$work/docs/english.txt"
: >"$work/docs/blank.txt"
$DAMDA data synthesize --docs "$work/docs" --out "$work/syn.jsonl" >"$work/syn.json" 2>"$work/syn.err"
python3 - "$work/syn.json" "$work/syn.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
assert s["kept"] == len(rows) > 3 and s["chunks_without_span"] >= 1, s   # the English page has no span
assert all(set(r) >= {"id", "question", "answers", "doc_id", "chunk_id", "evidence", "generator"} for r in rows)
print("synthesize --docs:", {k: s[k] for k in ("chunks", "chunks_without_span", "candidates", "kept")})
PY
$DAMDA data synthesize --docs "$work/docs" --out "$work/syn.jsonl" >"$work/syn-again.json" 2>>"$work/syn.err"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["chunks"] == 0 and s["kept"] == 0, s' "$work/syn-again.json"
grep -q "resuming:" "$work/syn.err" || { cat "$work/syn.err"; exit 1; }
if $DAMDA data synthesize --docs "$work/empty" --out "$work/none.jsonl" 2>"$work/none.err"; then echo "an empty folder must fail" >&2; exit 1; fi
grep -q "no readable documents" "$work/none.err" || { cat "$work/none.err"; exit 1; }
echo "synthesize --docs: resumes; an empty folder is a clear error"

echo "== damda bench pii (labelled set in evals/)"
$DAMDA bench pii >"$work/pii.json"
python3 - "$work/pii.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["false_alarms_on_lines_without_pii"] == 0, r["false_alarms"]
assert r["micro_precision"] >= 0.98 and r["micro_recall"] >= 0.98, (r["micro_precision"], r["micro_recall"], r["missed"])
print("bench pii:", {k: r[k] for k in ("values", "micro_precision", "micro_recall")})
PY

echo "== damda bench cache (semantic cache: no near miss may be served another question's answer)"
$DAMDA bench cache --entries 200 >"$work/cache.json"
python3 - "$work/cache.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["chosen"]["near_miss_false_hits"] == 0, r["near_misses_above_threshold"]
assert r["chosen"]["paraphrase_hit_rate"] > 0.5, r["paraphrases_missed"]
print("bench cache:", r["chosen"])
PY
echo "== damda bench cache with a malformed pair file"
printf '{"a": "질문"}\nnot json\n' >"$work/bad-pairs.jsonl"
if $DAMDA bench cache --paraphrases "$work/bad-pairs.jsonl" >/dev/null 2>"$work/bad.err"; then echo "a malformed pair file must fail" >&2; exit 1; fi
grep -q "bad-pairs.jsonl:1" "$work/bad.err" || { cat "$work/bad.err"; exit 1; }
echo "bench cache: a malformed line is named"
