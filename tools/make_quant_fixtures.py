#!/usr/bin/env python3
"""Random quantized blocks and their dequantization by PyPI's `gguf` (an independent oracle).

usage: python3 tools/make_quant_fixtures.py [--out Tests/DamdaEngineTests/Fixtures/quant_blocks.json]
"""
import argparse, json
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf.quants import dequantize

# type: (ggml id, values per block, bytes per block, byte offsets of f16 scale fields)
LAYOUT = {
    "Q8_0": (QT.Q8_0, 32, 34, [0]),
    "Q5_0": (QT.Q5_0, 32, 22, [0]),
    "Q4_0": (QT.Q4_0, 32, 18, [0]),
    "Q4_K": (QT.Q4_K, 256, 144, [0, 2]),
    "Q5_K": (QT.Q5_K, 256, 176, [0, 2]),
    "Q6_K": (QT.Q6_K, 256, 210, [208]),
}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/DamdaEngineTests/Fixtures/quant_blocks.json")
    a = ap.parse_args()
    rng = np.random.RandomState(7)
    out = {"generator": "tools/make_quant_fixtures.py", "cases": []}
    blocks = 3
    for name, (qt, bs, nbytes, scale_offs) in LAYOUT.items():
        raw = rng.randint(0, 256, size=(blocks, nbytes)).astype(np.uint8)
        for off in scale_offs:  # keep scales finite and modest
            s = rng.uniform(0.001, 0.05, size=blocks).astype(np.float16).view(np.uint8).reshape(blocks, 2)
            raw[:, off:off + 2] = s
        vals = dequantize(raw.reshape(-1), qt).astype(np.float32).reshape(-1)
        out["cases"].append({"type": name, "count": blocks * bs, "bytes": raw.reshape(-1).tolist(),
                             "values": [float(v) for v in vals]})
    f16 = rng.standard_normal(64).astype(np.float16)
    out["cases"].append({"type": "F16", "count": 64, "bytes": f16.view(np.uint8).tolist(),
                         "values": [float(v) for v in f16.astype(np.float32)]})
    bf = (rng.standard_normal(64).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    out["cases"].append({"type": "BF16", "count": 64, "bytes": bf.view(np.uint8).tolist(),
                         "values": [float(v) for v in dequantize(bf.view(np.uint8), QT.BF16).astype(np.float32).reshape(-1)]})
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", a.out, len(out["cases"]), "cases")

if __name__ == "__main__":
    main()
