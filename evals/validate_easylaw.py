#!/usr/bin/env python3
"""Validate the hand-written easylaw eval sets against the shared documents.

Checks: every line parses, ids are unique, required fields are present,
every doc_id exists, topic matches the doc, every gold phrase is a literal
substring of its doc's text (2-15 chars). Prints per-topic counts and, for
each gold phrase, in how many documents of the corpus it occurs.

Usage: python3 evals/validate_easylaw.py [--docs PATH]
Exit status 1 on any error. Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
DEFAULT_DOCS = os.path.join(SHARED, "data", "domain", "easylaw_finance_docs.jsonl")
NATURAL = os.path.join(REPO, "evals", "easylaw-natural.jsonl")
OFFDOMAIN = os.path.join(REPO, "evals", "easylaw-offdomain.jsonl")


def read_jsonl(path, errors):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                errors.append(f"{os.path.basename(path)}:{n}: bad JSON ({e})")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", default=os.environ.get("DAMDA_EASYLAW_DOCS", DEFAULT_DOCS))
    args = ap.parse_args()

    errors: list[str] = []
    docs = {d["id"]: d for d in read_jsonl(args.docs, errors)}
    texts = [d["text"] for d in docs.values()]
    nat = read_jsonl(NATURAL, errors)
    off = read_jsonl(OFFDOMAIN, errors)

    ids = [r.get("id") for r in nat + off]
    for i, c in collections.Counter(ids).items():
        if c > 1:
            errors.append(f"duplicate id {i}")

    per_topic = collections.Counter()
    print(f"docs: {len(docs)}  natural: {len(nat)}  offdomain: {len(off)}")
    print("\n# gold phrase -> number of corpus docs containing it")
    for r in nat:
        rid = r.get("id")
        for k in ("id", "question", "answers", "doc_id", "topic"):
            if k not in r:
                errors.append(f"{rid}: missing field {k}")
        doc = docs.get(r.get("doc_id"))
        if doc is None:
            errors.append(f"{rid}: unknown doc_id {r.get('doc_id')}")
            continue
        if r.get("topic") != doc["topic"]:
            errors.append(f"{rid}: topic {r.get('topic')} != doc topic {doc['topic']}")
        per_topic[doc["topic"]] += 1
        answers = r.get("answers") or []
        if not 1 <= len(answers) <= 3:
            errors.append(f"{rid}: expected 1-3 answers, got {len(answers)}")
        cells = []
        for p in answers:
            if p not in doc["text"]:
                errors.append(f"{rid}: answer {p!r} not in {doc['id']}")
            if not 2 <= len(p) <= 15:
                errors.append(f"{rid}: answer {p!r} length {len(p)} outside 2-15")
            cells.append(f"{p}={sum(p in t for t in texts)}")
        print(f"{rid} {doc['id']}  " + "  ".join(cells))

    kinds = collections.Counter()
    for r in off:
        for k in ("id", "question", "kind"):
            if k not in r:
                errors.append(f"{r.get('id')}: missing field {k}")
        if r.get("kind") not in ("off_domain", "finance_not_covered"):
            errors.append(f"{r.get('id')}: bad kind {r.get('kind')}")
        kinds[r.get("kind")] += 1

    print("\n# natural questions per topic")
    for t in sorted({d["topic"] for d in docs.values()}):
        print(f"{per_topic[t]:3d}  {t}")
    print("\n# offdomain kinds")
    for k, c in sorted(kinds.items()):
        print(f"{c:3d}  {k}")

    if errors:
        print("\nERRORS:")
        for e in errors:
            print("  " + e)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
