"""Can a model copy values from its context into code? The skill both runtimes' students need.

    .venv/bin/python benchmarks/copy_skill.py [MODEL_DIR] [--chats 24]

Greedy answers to held-out copy chats (training/copy_documents.py, a seed no pretraining
used): half ask for constants stated in prose, half for records printed as JSON. A chat
counts as copied when the first two code lines (constants) or the first three record lines
equal the reference exactly. MODEL_DIR defaults to the shipped mini base.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from runtime_semantics.training.copy_documents import copy_documents

HELD_OUT_SEED = 99_999


def code_lines(text: str, skip: int, count: int) -> list[str]:
    body = text.split("```python\n", 1)[1] if "```python\n" in text else ""
    return body.splitlines()[skip : skip + count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="models/mini-base")
    parser.add_argument("--chats", type=int, default=24)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True).eval()
    copied = {"constants": [0, 0], "records": [0, 0]}
    for index, chat in enumerate(copy_documents(args.chats, HELD_OUT_SEED)):
        kind, skip, count = ("constants", 0, 2) if index % 2 == 0 else ("records", 1, 3)
        prompt = tokenizer.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=40 * count, do_sample=False)
        answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        copied[kind][0] += code_lines(answer, skip, count) == code_lines(chat[1]["content"], skip, count)
        copied[kind][1] += 1
    for kind, (ok, n) in copied.items():
        print(f"{kind:<10} copied exactly: {ok}/{n}")


if __name__ == "__main__":
    main()
