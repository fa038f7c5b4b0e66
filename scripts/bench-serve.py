#!/usr/bin/env python3
"""Load benchmark for `damda serve`: time to first token and tokens/s at 1, 4 and 8 concurrent
streaming clients (OpenAI /v1/completions with stream=true), printed as one JSON object.

    python3 scripts/bench-serve.py --url http://127.0.0.1:8080 [--key KEY] [--clients 1,4,8] [--max-tokens 32]

Every client sends the same-length prompt with a different seed, so the scheduler interleaves
real, distinct generations. Usage counts come from the server's final chunk (stream_options).
"""
import argparse, http.client, json, statistics, threading, time, urllib.parse

PROMPT = "다음은 보험 약관의 일부입니다. 회사는 피보험자가 질병 또는 상해로 입원한 경우 입원 1일당 5만원을 지급합니다. 이 조항을 쉽게 설명하면"


def one_stream(url, key, max_tokens, seed, out):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0.8, "seed": seed,
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


def run_level(url, key, clients, max_tokens):
    results = [dict() for _ in range(clients)]
    threads = [threading.Thread(target=one_stream, args=(url, key, max_tokens, 1000 + i, results[i])) for i in range(clients)]
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
        "clients": clients, "errors": errors, "wall_s": round(wall, 2),
        "ttft_s_p50": round(statistics.median(r["ttft"] for r in ok), 3) if ok else None,
        "ttft_s_max": round(max(r["ttft"] for r in ok), 3) if ok else None,
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
    a = ap.parse_args()
    run_level(a.url, a.key, 1, 4)  # warm-up
    levels = [run_level(a.url, a.key, int(c), a.max_tokens) for c in a.clients.split(",")]
    print(json.dumps({"endpoint": "/v1/completions (stream)", "max_tokens": a.max_tokens, "levels": levels}, ensure_ascii=False))


if __name__ == "__main__":
    main()
