"""Can a model copy values from its context into code? The skill both runtimes' students need.

    .venv/bin/python benchmarks/copy_skill.py [MODEL_DIR] [--chats 24] [--train-steps N --every 100 --lr 1e-3]
        [--drill-share 0.5 --drill-max-run 200]

Greedy answers to held-out copy chats (training/copy_documents.py, a seed no pretraining
used): half ask for constants stated in prose, half for records printed as JSON. A chat
counts as copied when the first two code lines (constants) or the first three record lines
equal the reference exactly. MODEL_DIR defaults to the shipped mini base. With
--train-steps, the model is first trained further on copy chats only (another seed; batches
of 8 x 512 tokens), measuring every --every steps: does more copy data alone teach it? With
--drill-share, that share of the rows are drills instead (runs of 5 to --drill-max-run random
tokens, each repeated once, training/drills.py), so copying is practised at
the distances a chat needs.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from runtime_semantics.training.base_model import train_step
from runtime_semantics.training.copy_documents import copy_documents
from runtime_semantics.training.drills import back_to_back_row, drill_vocab

HELD_OUT_SEED = 99_999
TRAINING_SEED = 4_242


def code_lines(text: str, skip: int, count: int) -> list[str]:
    body = text.split("```python\n", 1)[1] if "```python\n" in text else ""
    return body.splitlines()[skip : skip + count]


def measure(model, tokenizer, chats: int) -> dict[str, tuple[int, int]]:
    model.eval()
    copied = {"constants": [0, 0], "records": [0, 0]}
    for index, chat in enumerate(copy_documents(chats, HELD_OUT_SEED)):
        kind, skip, count = ("constants", 0, 2) if index % 2 == 0 else ("records", 1, 3)
        prompt = tokenizer.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=40 * count, do_sample=False)
        answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        copied[kind][0] += code_lines(answer, skip, count) == code_lines(chat[1]["content"], skip, count)
        copied[kind][1] += 1
    model.train()
    return {kind: (ok, n) for kind, (ok, n) in copied.items()}


def report(step: int, copied: dict[str, tuple[int, int]], extra: str = "") -> None:
    print(f"step {step:>5}: " + ", ".join(f"{kind} copied exactly {ok}/{n}" for kind, (ok, n) in copied.items()) + extra, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="models/mini-base")
    parser.add_argument("--chats", type=int, default=24)
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--drill-share", type=float, default=0.0)
    parser.add_argument("--drill-max-run", type=int, default=200)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True)
    report(0, measure(model, tokenizer, args.chats))
    if not args.train_steps:
        return
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    stream: list[int] = []
    for chat in copy_documents(max(1000, args.train_steps * 20), TRAINING_SEED):
        stream += tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"] + [eos]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng, seq_len, batch_size = random.Random(0), 512, 8
    vocab = drill_vocab(tokenizer)

    def row() -> tuple[list[int], list[int]]:
        if not args.drill_share or rng.random() >= args.drill_share:  # 0: the same draws as copy chats alone
            start = rng.randrange(len(stream) - seq_len - 1)
            return stream[start : start + seq_len], stream[start : start + seq_len]
        return back_to_back_row(rng, vocab, eos, seq_len, args.drill_max_run)

    started = time.perf_counter()
    for step in range(1, args.train_steps + 1):
        loss = train_step(model, optimizer, [row() for _ in range(batch_size)])
        if step % args.every == 0 or step == args.train_steps:
            report(step, measure(model, tokenizer, args.chats), f" (loss {loss:.3f}, {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
