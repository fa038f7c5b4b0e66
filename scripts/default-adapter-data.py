#!/usr/bin/env python3
"""The default adapter's training mix: KorQuAD questions of the training articles (every index % 3 != 2
of split/train.jsonl; index % 3 == 2 is kept apart for refusal calibration) plus 600 of the easylaw
extractive synthetic questions (`damda data synthesize --docs`), so the adapter also sees the domain's
register. Writes WORK/split/mix.jsonl and WORK/split/calibration.jsonl, and
WORK/split/calibration-mixed.jsonl for the refusal probe (`damda adapter calibrate`): 400 questions of
calibration.jsonl spread evenly, then 300 of the synthetic easylaw questions that were not trained on,
so the probe also sees the domain's documents; and WORK/split/calibration-natural.jsonl, the probe the
adapter ships: the same 400, then the natural-style questions in models/ko-rag/calibration/ (written
for calibration in people's own words over the calibration paragraphs and over easylaw sections that
no evaluation question is about), so the probe does not read paraphrase as "unanswerable"; and
WORK/split/natural-mix.jsonl, the second training stage: the layperson questions of
models/ko-rag/training/easylaw-natural.jsonl (over the easylaw sections that neither an evaluation nor a calibration question
is about) with as many questions of mix.jsonl replayed beside them, shuffled.
Usage: default-adapter-data.py WORK"""
import glob, json, os, random, sys

work = sys.argv[1]
rows = open(f"{work}/split/train.jsonl", encoding="utf-8").readlines()
korquad = [json.loads(r) for i, r in enumerate(rows) if i % 3 != 2]
open(f"{work}/split/calibration.jsonl", "w", encoding="utf-8").writelines(r for i, r in enumerate(rows) if i % 3 == 2)
synthetic = [json.loads(l) for l in open(f"{work}/easylaw-syn.jsonl", encoding="utf-8") if l.strip()]
random.seed(0)
trained = random.sample(synthetic, min(600, len(synthetic)))
trained_ids = {q["id"] for q in trained}
unused = [q for q in synthetic if q["id"] not in trained_ids]
synthetic = trained
mix = [{k: q[k] for k in ("id", "question", "answers", "doc_id")} for q in korquad + synthetic]
random.shuffle(mix)
with open(f"{work}/split/mix.jsonl", "w", encoding="utf-8") as f:
    for q in mix:
        f.write(json.dumps(q, ensure_ascii=False) + "\n")
calibration = [json.loads(r) for i, r in enumerate(rows) if i % 3 == 2]
probe_set = [calibration[i * len(calibration) // 400] for i in range(min(400, len(calibration)))]
probe_set += [unused[i * len(unused) // 300] for i in range(min(300, len(unused)))]
with open(f"{work}/split/calibration-mixed.jsonl", "w", encoding="utf-8") as f:
    for q in probe_set:
        f.write(json.dumps({k: q[k] for k in ("id", "question", "answers", "doc_id")}, ensure_ascii=False) + "\n")
natural = []
for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "ko-rag", "calibration", "*.jsonl"))):
    natural += [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
with open(f"{work}/split/calibration-natural.jsonl", "w", encoding="utf-8") as f:
    for q in probe_set[:400] + natural:
        f.write(json.dumps({k: q[k] for k in ("id", "question", "answers", "doc_id")}, ensure_ascii=False) + "\n")
# Named, not globbed: another file in training/ must not silently change this stage's mix.
training_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "ko-rag", "training", "easylaw-natural.jsonl")
training = [json.loads(l) for l in open(training_path, encoding="utf-8") if l.strip()]
stage2 = random.Random(1)
natural_mix = training + stage2.sample(mix, min(len(training), len(mix)))
stage2.shuffle(natural_mix)
with open(f"{work}/split/natural-mix.jsonl", "w", encoding="utf-8") as f:
    for q in natural_mix:
        f.write(json.dumps({k: q[k] for k in ("id", "question", "answers", "doc_id")}, ensure_ascii=False) + "\n")
print(json.dumps({"korquad": len(korquad), "synthetic": len(synthetic), "mix": len(mix), "calibration": len(rows) - len(korquad),
                  "natural_mix": len(natural_mix)}))
