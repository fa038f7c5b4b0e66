#!/usr/bin/env python3
"""Writes an HTML report (inline SVG plots, no dependencies) of a `damda train` run: training and
validation loss by step, and — when `bench answers` results sit beside the adapters — exact match,
F1 and refusal rate against examples trained.
Usage: scripts/training-report.py LORA_DIR [BASE_ANSWERS.json] [--title TEXT] [--note TEXT] > report.html"""
import argparse, glob, html, json, os, re, sys

ap = argparse.ArgumentParser()
ap.add_argument("run"); ap.add_argument("base", nargs="?")
ap.add_argument("--title"); ap.add_argument("--note", default="")
a = ap.parse_args()
run, base = a.run, a.base
log = [json.loads(l) for l in open(os.path.join(run, "train_log.jsonl")) if l.strip()]

def svg(series, xlabel, ylabel, w=560, h=300):
    pts = [p for _, ps, _ in series for p in ps]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = 0.0, max(p[1] for p in pts) * 1.05 or 1
    L, R, T, B = 50, 20, 20, 40
    sx = lambda x: L + (x - x0) / ((x1 - x0) or 1) * (w - L - R)
    sy = lambda y: h - B - (y - y0) / ((y1 - y0) or 1) * (h - T - B)
    out = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" style="font:12px sans-serif">',
           f'<line x1="{L}" y1="{h-B}" x2="{w-R}" y2="{h-B}" stroke="#444"/><line x1="{L}" y1="{T}" x2="{L}" y2="{h-B}" stroke="#444"/>']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{L-6}" y="{sy(y)+4}" text-anchor="end">{y:.2f}</text><line x1="{L}" x2="{w-R}" y1="{sy(y)}" y2="{sy(y)}" stroke="#eee"/>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{sx(x)}" y="{h-B+16}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{(w+L)/2}" y="{h-6}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text x="12" y="{T-6}">{html.escape(ylabel)}</text>')
    for j, (name, ps, color) in enumerate(series):
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{d}"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in ps] if len(ps) < 30 else []
        out.append(f'<text x="{w-R-4}" y="{T+14+14*j}" text-anchor="end" fill="{color}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)

parts = [f"<h1>{html.escape(a.title or 'LoRA training: ' + run)}</h1>"] + ([f"<p>{html.escape(a.note)}</p>"] if a.note else [])
parts.append(svg([("training loss (per answer token)", [(e["step"], e["loss"]) for e in log], "#1f77b4"),
                  ("validation loss", [(e["step"], e["val_loss"]) for e in log if e.get("val_loss") is not None], "#d62728")],
                 "update", "cross-entropy"))
evals = []
if base and os.path.exists(base):
    evals.append((0, json.load(open(base))))
per_step = len(log) and log[-1]["examples_seen"] / log[-1]["step"]
for f in glob.glob(os.path.join(run, "step-*.answers.json")):
    step = int(re.search(r"step-(\d+)", f).group(1))
    evals.append((int(step * per_step), json.load(open(f))))
final = run.rstrip("/") + ".answers.json"
if os.path.exists(final):
    evals.append((log[-1]["examples_seen"], json.load(open(final))))
evals.sort(key=lambda e: e[0])
if evals:
    # Plotted when the runs have them: refusals of hidden-article questions, or of off-domain ones.
    series = [("F1", "f1", "#2ca02c"), ("exact match", "exact_match", "#9467bd"), ("gold phrase in answer %", "gold_in_answer_pct", "#8c564b"),
              ("refused, unanswerable %", "refused_unanswerable_pct", "#ff7f0e"), ("refused, off-domain %", "refused_off_domain_pct", "#d62728")]
    series = [(name, key, color) for name, key, color in series if any(r.get(key) is not None for _, r in evals)]
    parts.append(svg([(name, [(x, r.get(key) or 0) for x, r in evals], color) for name, key, color in series], "examples trained", "score"))
    columns = [("EM", "exact_match"), ("F1", "f1"), ("gold phrase in answer %", "gold_in_answer_pct"),
               ("refused unanswerable %", "refused_unanswerable_pct"), ("refused off-domain %", "refused_off_domain_pct"),
               ("refused answerable %", "refused_answerable_pct"), ("echo only %", "echo_only_pct")]
    columns = [(h, k) for h, k in columns if any(r.get(k) is not None for _, r in evals)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in columns)
    rows = "".join(f"<tr><td>{x}</td>" + "".join(f"<td>{r.get(k)}</td>" for _, k in columns) + "</tr>" for x, r in evals)
    parts.append(f"<table border=1 cellpadding=4><tr><th>examples trained</th>{head}</tr>{rows}</table>")
print("<!doctype html><meta charset=utf-8><title>Damda LoRA training</title><body style='font-family:sans-serif'>" + "\n".join(parts))
