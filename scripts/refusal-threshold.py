#!/usr/bin/env python3
"""Chooses an adapter's refusal threshold from `damda eval` rows run with refusal-threshold=1 (the
model never refuses at the first token, and each row records the probability it gave its refusal
there). A threshold T then refuses exactly the rows with probability >= T, so one run prices every
T: answerable F1 (a refusal scores 0), answerable questions refused, unanswerable questions
refused (rows the relevance gate refused stay refused). The chosen T maximises answerable F1
while refusing at least --min-unanswerable of the unanswerable questions; it is written to the
adapter's assistant.json, which the assistant reads (`--refusal-threshold auto`).

Usage: refusal-threshold.py ROWS.jsonl CONFIG [--min-unanswerable 0.75] [--write ADAPTER_DIR] [--note TEXT]"""
import argparse, json

ap = argparse.ArgumentParser()
ap.add_argument("rows"); ap.add_argument("config")
ap.add_argument("--min-unanswerable", type=float, default=0.75)
ap.add_argument("--write"); ap.add_argument("--note", default="")
a = ap.parse_args()
rows = [json.loads(l) for l in open(a.rows, encoding="utf-8") if l.strip()]
rows = [r for r in rows if r["config"] == a.config]
ans = [r for r in rows if r["kind"] == "answerable"]
una = [r for r in rows if r["kind"] == "unanswerable"]
assert ans and una, "need answerable and unanswerable rows of the configuration"
missing = [r for r in rows if r.get("refusal_probability") is None and not r["refused"]]
assert not missing, f"{len(missing)} rows have no refusal_probability: run the configuration with refusal-threshold=1"

def refused(r, t):
    if r.get("refusal_probability") is None: return r["refused"]      # the relevance gate refused before the model
    return r["refusal_probability"] >= t or r["refused"]

sweep = []
for t in [x / 100 for x in range(5, 100, 5)] + [0.97, 0.99, 1.0]:
    f1 = sum(0 if refused(r, t) else r["f1"] for r in ans) / len(ans)
    sweep.append({"threshold": t, "answerable_f1": round(f1, 2),
                  "answerable_refused_pct": round(100 * sum(refused(r, t) for r in ans) / len(ans), 1),
                  "unanswerable_refused_pct": round(100 * sum(refused(r, t) for r in una) / len(una), 1)})
ok = [s for s in sweep if s["unanswerable_refused_pct"] >= 100 * a.min_unanswerable]
best = max(ok or sweep, key=lambda s: (s["answerable_f1"], -s["threshold"]))
print(f"{'threshold':>9} {'F1':>6} {'refused answerable %':>21} {'refused unanswerable %':>23}")
for s in sweep:
    mark = "  <- chosen" if s is best else ""
    print(f"{s['threshold']:>9.2f} {s['answerable_f1']:>6.1f} {s['answerable_refused_pct']:>21.1f} {s['unanswerable_refused_pct']:>23.1f}{mark}")
print(json.dumps({"chosen": best, "answerable": len(ans), "unanswerable": len(una)}))
if a.write:
    settings = {"refusal_threshold": best["threshold"],
                "calibrated_on": (a.note + "; " if a.note else "") + f"{len(ans)} answerable + {len(una)} unanswerable questions: "
                f"highest answerable F1 ({best['answerable_f1']}) refusing >= {a.min_unanswerable:.0%} of unanswerable "
                f"({best['unanswerable_refused_pct']}%), {best['answerable_refused_pct']}% of answerable refused"}
    with open(f"{a.write}/assistant.json", "w", encoding="utf-8") as f:
        json.dump(settings, f, ensure_ascii=False, indent=1); f.write("\n")
    print(f"wrote {a.write}/assistant.json")
