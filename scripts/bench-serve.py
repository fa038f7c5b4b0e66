#!/usr/bin/env python3
"""Load benchmark for `damda serve`: time to first token and tokens/s at 1, 4 and 8 concurrent
streaming clients (OpenAI /v1/completions with stream=true), printed as one JSON object.

    python3 scripts/bench-serve.py --url http://127.0.0.1:8080 [--key KEY] [--clients 1,4,8] [--max-tokens 32]
                                   [--rag-prompt] [--stagger 0.25] [--temperature 0.8] [--distinct-prompts] [--requests 1]

Every client sends the same short prompt with a different seed (temperature 0.8 by default), so
the scheduler interleaves real, distinct generations, and a server that caches prompts (both
`damda serve` and llama-server do) answers it from its cache after the first time;
--distinct-prompts puts a different number in front of each request's prompt, so every prompt is
run. Usage counts come from the server's final chunk (stream_options).
--rag-prompt sends a RAG-sized prompt (~480 tokens: the field's instruction over retrieved
insurance clauses, different for each client so no prefix is shared); --stagger starts client i
i·S seconds after the first, so long prompts arrive while earlier streams decode. Works against
`damda serve` and llama.cpp's `llama-server` alike (both speak /v1/completions).
--requests N has each client send N requests one after another (a new seed each), so a level runs
N times longer, sequences join and leave the batch as they finish, and a noisy machine's hiccups
weigh less; TTFT and per-stream figures are then over all N·clients requests.
"""
import argparse, http.client, json, statistics, threading, time, urllib.parse

PROMPT = "다음은 보험 약관의 일부입니다. 회사는 피보험자가 질병 또는 상해로 입원한 경우 입원 1일당 5만원을 지급합니다. 이 조항을 쉽게 설명하면"


CLAUSES = ["회사는 피보험자가 보험기간 중 질병 또는 상해로 입원한 경우 입원 1일당 5만원을 입원급여금으로 지급합니다.",
           "보험계약자는 계약 후 알릴 의무에 따라 직업이나 직무가 바뀐 경우 지체 없이 회사에 알려야 합니다.",
           "보험금 청구 시에는 청구서, 사고증명서, 신분증과 회사가 요구하는 그 밖의 서류를 제출해야 합니다.",
           "계약자는 청약을 한 날부터 30일 이내에 그 청약을 철회할 수 있으며, 회사는 보험료를 돌려드립니다.",
           "회사는 보험금 청구서류를 접수한 날부터 3영업일 이내에 보험금을 지급합니다.",
           "피보험자가 고의로 자신을 해친 경우에는 보험금을 지급하지 않습니다. 다만 심신상실 상태는 예외입니다."]


def rag_prompt(i):
    """The field's RAG prompt over ~500 tokens of clauses, rotated per client (no shared prefix)."""
    clauses = [CLAUSES[(i + k) % len(CLAUSES)] for k in range(len(CLAUSES))] * 2
    context = "\n".join(f"[{n + 1}] {c}" for n, c in enumerate(clauses))
    return (f"{i}번 상담. 아래 [내용]을 참고해서 [질문]에 대해 답변해주세요. 만약 질문에 답변할 수 없으면 "
            f"\"답변을 찾을 수 없습니다.\"로 대답하세요.\n[질문] 입원하면 하루에 얼마를 받나요?\n[내용]\n{context}\n[답변]")


def one_stream(url, key, max_tokens, seed, out, prompt=PROMPT, delay=0.0, temperature=0.8):
    time.sleep(delay)
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "seed": seed,
                       "stream": True, "stream_options": {"include_usage": True}})
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        out.update(error=f"HTTP {resp.status}: {resp.read()[:200]!r}")
        return
    first = None
    tokens = None
    buf = b""
    while True:
        chunk = resp.read1(4096)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event.decode().removeprefix("data: ")
            if data == "[DONE]":
                continue
            obj = json.loads(data)
            if obj.get("usage"):
                tokens = obj["usage"]["completion_tokens"]
            if first is None and obj.get("choices") and obj["choices"][0].get("text"):
                first = time.perf_counter()
    end = time.perf_counter()
    out.update(ttft=(first or end) - start, seconds=end - start, tokens=tokens or 0)


def run_level(url, key, clients, max_tokens, rag=False, stagger=0.0, first=0, temperature=0.8, distinct=False, requests=1):
    results = [dict() for _ in range(clients * requests)]
    def prompt(i):
        if rag:
            return rag_prompt(first + i)
        # --distinct-prompts: a number in front, so no server has this prompt cached from before.
        return f"{first + i + 1}. {PROMPT}" if distinct else PROMPT
    def client(i):
        # Request k of client i: its own seed, and with --distinct-prompts or --rag-prompt its own prompt.
        for k in range(requests):
            n = k * clients + i
            one_stream(url, key, max_tokens, 1000 + n, results[n], prompt(n), i * stagger if k == 0 else 0.0, temperature)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    total = sum(r["tokens"] for r in ok)
    return {
        "clients": clients, "requests": len(results), "errors": errors, "wall_s": round(wall, 2),
        "ttft_s_p50": round(statistics.median(r["ttft"] for r in ok), 3) if ok else None,
        "ttft_s_max": round(max(r["ttft"] for r in ok), 3) if ok else None,
        "ttft_s_p99": round(sorted(r["ttft"] for r in ok)[min(len(ok) - 1, int(0.99 * len(ok)))], 3) if ok else None,
        "per_stream_tokens_per_s": round(statistics.median(r["tokens"] / max(r["seconds"] - r["ttft"], 1e-9) for r in ok), 2) if ok else None,
        "aggregate_tokens_per_s": round(total / wall, 2),
        "completion_tokens": total,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key", default="")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--rag-prompt", action="store_true", help="~500-token RAG prompts, one per client")
    ap.add_argument("--stagger", type=float, default=0.0, help="seconds between client starts")
    ap.add_argument("--temperature", type=float, default=0.8, help="0 decodes greedily")
    ap.add_argument("--distinct-prompts", action="store_true",
                    help="short prompts that differ per request (no prompt cache can answer them)")
    ap.add_argument("--requests", type=int, default=1, help="requests each client sends one after another")
    a = ap.parse_args()
    if a.requests < 1:
        ap.error("--requests must be at least 1")
    # Warm-up. Without --distinct-prompts or --rag-prompt every request, the warm-up's too, sends the
    # same short prompt, which a server's prompt cache answers after the first time; with them the
    # warm-up's prompt is one no level sends.
    run_level(a.url, a.key, 1, 4, a.rag_prompt, first=1000, temperature=a.temperature, distinct=a.distinct_prompts)
    # Each level's RAG or distinct prompts are new to the server (no cached prefix from an earlier level).
    levels, first = [], 0
    for c in a.clients.split(","):
        levels.append(run_level(a.url, a.key, int(c), a.max_tokens, a.rag_prompt, a.stagger, first, a.temperature, a.distinct_prompts,
                                a.requests))
        first += int(c) * a.requests
    print(json.dumps({"endpoint": "/v1/completions (stream)", "max_tokens": a.max_tokens, "rag_prompt": a.rag_prompt,
                      "stagger_s": a.stagger, "temperature": a.temperature, "distinct_prompts": a.distinct_prompts, "requests": a.requests,
                      "levels": levels}, ensure_ascii=False))


if __name__ == "__main__":
    main()
