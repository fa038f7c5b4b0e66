#!/usr/bin/env python3
"""The PyTorch + PEFT baseline for `damda bench train` (issue 11's "bar to beat").

Loads the same GGUF through transformers (weights dequantized to fp32), puts LoRA
(r 16, alpha 32) on q,k,v,o,gate,up,down with PEFT and times forward + backward +
AdamW at the given sequence length, printing one JSON object like Damda's bench.
Run each configuration in its own process so peak RSS is that configuration's:

  python3 scripts/peft-baseline.py --model ~/.cache/damda/models/gemma-3-270m-q4_k_m.gguf --seq 512
  python3 scripts/peft-baseline.py --model ... --seq 512 --answer-tokens 32   # LM head at answers only

Needs torch, transformers, peft and gguf (pip); not part of the test suite.
"""
import argparse, json, os, resource, time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--answer-tokens", type=int, default=0,
                   help="loss (and the LM head) on the last N tokens only; 0 = every position")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    path = os.path.expanduser(a.model)
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, config)
    model.train()
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    optimizer = torch.optim.AdamW([t for t in model.parameters() if t.requires_grad], lr=2e-4)
    vocab = model.config.vocab_size
    ids = torch.randint(10, vocab, (a.batch, a.seq))

    def step():
        if a.answer_tokens > 0:
            n = a.answer_tokens
            hidden = model.base_model.model.model(input_ids=ids).last_hidden_state
            logits = model.base_model.model.lm_head(hidden[:, -n - 1:-1, :])
            loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, -n:].reshape(-1))
        else:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = (time.perf_counter() - start) / a.steps
    print(json.dumps({
        "framework": f"torch {torch.__version__}",
        "seq": a.seq, "micro_batch": a.batch, "threads": a.threads,
        "loss_positions": a.answer_tokens or a.seq,
        "trainable_parameters": trainable,
        "seconds_per_step": round(seconds, 3),
        "tokens_per_s": round(a.seq * a.batch / seconds, 1),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
