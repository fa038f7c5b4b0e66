#!/usr/bin/env python3
"""Splits the shared KorQuAD questions by article: every 5th article is held back for evaluation,
so no evaluation paragraph was seen in training. Writes train.jsonl and test.jsonl into OUT, and
with EVERY also train-sample.jsonl (every EVERY-th training question).
Usage: korquad-split.py [QA.jsonl] [OUT] [EVERY]"""
import json, os, sys

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/korquad/dev_qa.jsonl"
out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/damda-korquad-split"
every = int(sys.argv[3]) if len(sys.argv) > 3 else 0
os.makedirs(out, exist_ok=True)
rows = [json.loads(l) for l in open(src, encoding="utf-8") if l.strip()]
articles = sorted({r["doc_id"].rsplit("-", 1)[0] for r in rows})
held = {a for i, a in enumerate(articles) if i % 5 == 4}
with open(os.path.join(out, "train.jsonl"), "w", encoding="utf-8") as tr, open(os.path.join(out, "test.jsonl"), "w", encoding="utf-8") as te:
    for r in rows:
        (te if r["doc_id"].rsplit("-", 1)[0] in held else tr).write(json.dumps(r, ensure_ascii=False) + "\n")
print(json.dumps({"articles": len(articles), "held_out_articles": len(held),
                  "train": sum(1 for _ in open(os.path.join(out, "train.jsonl"))), "test": sum(1 for _ in open(os.path.join(out, "test.jsonl")))}))
if every > 0:
    rows = open(os.path.join(out, "train.jsonl"), encoding="utf-8").readlines()
    open(os.path.join(out, "train-sample.jsonl"), "w", encoding="utf-8").writelines(rows[::every])
