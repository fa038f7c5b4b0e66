#!/usr/bin/env python3
"""Independent NumPy reference of the Llama / Qwen 2 decoder read from a GGUF (weights via PyPI `gguf`).

Written from llama.cpp's src/models/llama.cpp and qwen2.cpp graphs: RMSNorm, Q/K/V (+bias on
Qwen 2), RoPE (llama: adjacent pairs "NORM" on the GGUF's permuted Q/K; qwen2: NEOX halves),
causal GQA softmax(QK^T/sqrt(d))V, SiLU-gated FFN, residuals, final RMSNorm, output (or tied
embedding). float64 throughout. It takes token ids, not text: the tokenizer is tested separately.

usage: python3 tools/llama_ref.py --model tiny.gguf --ids 1,5,9 --logits-out out.npy [--all-logits]
"""
import argparse
import numpy as np
import gguf
from gguf.quants import dequantize


class LlamaRef:
    def __init__(self, path):
        r = gguf.GGUFReader(path)
        f = {k: v for k, v in r.fields.items()}
        get = lambda k, d=None: f[k].contents() if k in f else d  # noqa: E731
        self.arch = get("general.architecture")
        p = self.arch + "."
        self.n_embd = int(get(p + "embedding_length"))
        self.n_layer = int(get(p + "block_count"))
        self.n_head = int(get(p + "attention.head_count"))
        self.n_head_kv = int(get(p + "attention.head_count_kv", self.n_head))
        self.head_dim = int(get(p + "attention.key_length", self.n_embd // self.n_head))
        self.n_rot = int(get(p + "rope.dimension_count", self.head_dim))
        self.eps = float(np.float32(get(p + "attention.layer_norm_rms_epsilon", 1e-5)))
        self.base = float(get(p + "rope.freq_base", 10000.0))
        self.neox = self.arch == "qwen2"
        self.t = {}
        for t in r.tensors:
            arr = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64)
            self.t[t.name] = arr.reshape(tuple(int(d) for d in reversed(t.shape)))
        self.out = self.t.get("output.weight", self.t["token_embd.weight"])

    def norm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):  # x: (T, H, D)
        half = self.n_rot // 2
        inv = self.base ** (-np.arange(half, dtype=np.float64) * 2.0 / self.n_rot)
        ang = pos[:, None].astype(np.float64) * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        out = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half:self.n_rot]
            out[..., :half], out[..., half:self.n_rot] = a * c - b * s, a * s + b * c
        else:
            a, b = x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2]
            out[..., 0:self.n_rot:2], out[..., 1:self.n_rot:2] = a * c - b * s, a * s + b * c
        return out

    def forward(self, ids):
        T = len(ids)
        H, Hkv, D = self.n_head, self.n_head_kv, self.head_dim
        pos = np.arange(T)
        h = self.t["token_embd.weight"][ids]
        mask = np.triu(np.ones((T, T), dtype=bool), 1)
        for il in range(self.n_layer):
            b = f"blk.{il}."
            g = lambda n: self.t.get(b + n)  # noqa: E731
            x = self.norm(h, g("attn_norm.weight"))
            q, k, v = x @ g("attn_q.weight").T, x @ g("attn_k.weight").T, x @ g("attn_v.weight").T
            if g("attn_q.bias") is not None:
                q, k, v = q + g("attn_q.bias"), k + g("attn_k.bias"), v + g("attn_v.bias")
            q = self.rope(q.reshape(T, H, D), pos)
            k = self.rope(k.reshape(T, Hkv, D), pos)
            v = v.reshape(T, Hkv, D)
            o = np.empty((T, H, D))
            for hh in range(H):
                kv = hh // (H // Hkv)
                s = q[:, hh] @ k[:, kv].T / np.sqrt(D)
                s = np.where(mask, -np.inf, s)
                e = np.exp(s - s.max(-1, keepdims=True))
                o[:, hh] = (e / e.sum(-1, keepdims=True)) @ v[:, kv]
            h = h + o.reshape(T, H * D) @ g("attn_output.weight").T
            x = self.norm(h, g("ffn_norm.weight"))
            gate = x @ g("ffn_gate.weight").T
            h = h + (gate / (1 + np.exp(-gate)) * (x @ g("ffn_up.weight").T)) @ g("ffn_down.weight").T
        return self.norm(h, self.t["output_norm.weight"]) @ self.out.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--logits-out", required=True)
    ap.add_argument("--all-logits", action="store_true")
    a = ap.parse_args()
    ids = [int(x) for x in a.ids.split(",") if x]
    logits = LlamaRef(a.model).forward(ids)
    np.save(a.logits_out, (logits if a.all_logits else logits[-1]).astype(np.float32))


if __name__ == "__main__":
    main()
