"""Copying drills: the pretraining that gives a tiny base an induction circuit.

Reading a task means copying: the budget and capacity from the prompt into code, ids and
fields from a tool's output into the next block. Any such copy needs an induction circuit
("A B ... A -> B"). A tiny model pretrained on a few million tokens of text never forms one
(Aoyama et al. 2025, "Predicting the Formation of Induction Heads", fit the token count at
which it forms as about 10^5.7 x sqrt(batch x seq_len): about 45M tokens for 8 x 1,024
windows). Short rows of random runs, each repeated at once, form it within 2M tokens; the
circuit then copies only across the distances it practised, so a later phase repeats runs
hundreds of tokens apart inside corpus text, the distances a prompt's values lie back.

Drills are random tokens: they carry no task, trace or runtime habit, so they favour neither
the persistent nor the stateless style. Seeded: the same rng gives the same rows everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

IGNORED = -100  # label of a position the loss skips


def drill_vocab(tokenizer) -> list[int]:
    """The ids a drill's random runs are drawn from: every token but the special ones (chat markup, end of text)."""
    special = set(tokenizer.all_special_ids)
    return [i for i in range(len(tokenizer)) if i not in special]


def back_to_back_row(rng: random.Random, vocab: Sequence[int], eos: int, seq_len: int, max_run: int) -> tuple[list[int], list[int]]:
    """`seq_len` tokens of runs of 5 to `max_run` random tokens, each followed by itself and an
    end-of-text token; the labels count only the repeats (and the end-of-text)."""
    ids: list[int] = []
    labels: list[int] = []
    while len(ids) < seq_len:
        run = [rng.choice(vocab) for _ in range(rng.randint(5, max_run))]
        ids += run + run + [eos]
        labels += [IGNORED] * len(run) + run + [eos]
    return ids[:seq_len], labels[:seq_len]


def gapped_row(
    rng: random.Random, window: Sequence[int], vocab: Sequence[int], runs: int, max_run: int
) -> tuple[list[int], list[int]]:
    """A corpus `window` with `runs` runs of 5 to `max_run` random tokens written over it, each
    written again at a random later place (so the copy lies 0 to len(window) tokens back); no
    two copies overlap. The labels count only the second copies, after their first token
    (which nothing could predict)."""
    ids = list(window)
    labels = [IGNORED] * len(ids)
    taken = [False] * len(ids)
    for _ in range(runs):
        n = rng.randint(5, max_run)
        for _attempt in range(20):  # a free place for both copies; a crowded row gets fewer runs
            first = rng.randrange(0, len(ids) - 2 * n + 1)
            second = rng.randrange(first + n, len(ids) - n + 1)
            if not any(taken[first : first + n]) and not any(taken[second : second + n]):
                break
        else:
            continue
        run = [rng.choice(vocab) for _ in range(n)]
        ids[first : first + n] = ids[second : second + n] = run
        taken[first : first + n] = taken[second : second + n] = [True] * n
        labels[second : second + n] = [IGNORED] + run[1:]
    return ids, labels


def copy_accuracy(model, vocab: Sequence[int], filler: Sequence[int], distance: int, *, run: int = 12, rows: int = 8, seed: int = 7) -> float:
    """Greedy next-token accuracy over a run of `run` random tokens repeated after `distance`
    tokens of `filler` (corpus text): near 1 for a model that copies from that far back, 0 for
    one that cannot."""
    import torch

    rng = random.Random(seed)
    right = total = 0
    was_training = model.training
    model.eval()
    for _ in range(rows):
        tokens = [rng.choice(vocab) for _ in range(run)]
        start = rng.randrange(len(filler) - distance)
        x = torch.tensor([tokens + list(filler[start : start + distance]) + tokens])
        second = run + distance
        with torch.no_grad():
            predicted = model(input_ids=x).logits[0, second : second + run - 1].argmax(-1)
        right += (predicted == x[0, second + 1 :]).sum().item()
        total += run - 1
    model.train(was_training)
    return right / total
