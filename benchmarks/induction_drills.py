"""Does a model copy from its context at all, and does training on repeated random tokens teach it?

    .venv/bin/python benchmarks/induction_drills.py [--model models/mini-base] [--steps 20000]
        [--lr 1e-3] [--seq-len 128] [--batch 4] [--every 200] [--probe-len 30] [--save DIR]

The probe: 8 sequences of 30 random tokens (--probe-len), each followed by the same tokens;
greedy next-token accuracy over the second copy (29 predictions each, for 30). A model that can copy (an
induction circuit: "A B ... A -> B") scores near 1; one that cannot scores 0, whatever its
loss on ordinary text. Copying numbers and ids from a prompt or a tool result into code needs
exactly this circuit, so a base that scores 0 here cannot read its task.

With --steps, the model is trained on drills (training/drills.py: runs of 5-30 random tokens, each
repeated once; the loss counts only the repeats) and probed every --every steps. Aoyama et al. (2025,
"Predicting the Formation of Induction Heads") fit the token count at which such circuits form
as about 10^5.7 x sqrt(batch x seq_len), so small batches of short sequences need the fewest
tokens (batch 4 x 128: about 11M tokens, 22k steps).
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from runtime_semantics.training.base_model import train_step
from runtime_semantics.training.drills import back_to_back_row, drill_vocab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/mini-base")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--probe-len", type=int, default=30, help="random tokens per probe run (the copying distance)")
    parser.add_argument("--save", help="write the trained model here")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True)
    torch.manual_seed(0)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    vocab = drill_vocab(tokenizer)
    rng = random.Random(0)

    def probe() -> float:
        probe_rng = random.Random(7)
        right = total = 0
        model.eval()
        n = args.probe_len
        for _ in range(8):
            run = [probe_rng.choice(vocab) for _ in range(n)]
            x = torch.tensor([run + run])
            with torch.no_grad():
                predicted = model(input_ids=x).logits[0, n : 2 * n - 1].argmax(-1)
            right += (predicted == x[0, n + 1 : 2 * n]).sum().item()
            total += n - 1
        model.train()
        return right / total

    print(f"step 0: copy accuracy {probe():.2f}", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = train_step(model, optimizer, [back_to_back_row(rng, vocab, eos, args.seq_len, 30) for _ in range(args.batch)])
        if step % args.every == 0 or step == args.steps:
            print(f"step {step}: loss {loss:.3f}, copy accuracy {probe():.2f}, "
                  f"{step * args.batch * args.seq_len / 1e6:.2f}M tokens, {time.perf_counter() - started:.0f} s", flush=True)
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)


if __name__ == "__main__":
    main()
