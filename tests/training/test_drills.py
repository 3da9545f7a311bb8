"""Copying drills: rows whose labels count only what can be copied, and the probe that tells a copying model from one that cannot."""

from __future__ import annotations

import random

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from runtime_semantics.training.drills import IGNORED, back_to_back_row, copy_accuracy, gapped_row

VOCAB = list(range(10, 500))


def test_back_to_back_rows_repeat_each_run_at_once_and_count_only_the_repeats():
    ids, labels = back_to_back_row(random.Random(1), VOCAB, eos=2, seq_len=300, max_run=30)
    assert len(ids) == len(labels) == 300
    position = 0
    while position + 1 < 300 and ids[position] != 2:
        end = ids.index(2, position) if 2 in ids[position:] else 300
        half = (end - position) // 2
        if end < 300:  # a whole run: 5-30 tokens, then itself, then eos
            assert 5 <= half <= 30 and ids[position : position + half] == ids[position + half : end]
            assert labels[position : position + half] == [IGNORED] * half and labels[position + half : end + 1] == ids[position + half : end + 1]
        position = end + 1


def test_gapped_rows_repeat_each_run_later_over_the_text_and_count_only_the_predictable_repeat():
    rng = random.Random(3)
    window = list(range(1000, 1512))
    for _ in range(50):
        ids, labels = gapped_row(rng, window, VOCAB, runs=4, max_run=20)
        assert len(ids) == len(labels) == 512
        counted = [i for i, label in enumerate(labels) if label != IGNORED]
        assert counted and all(labels[i] == ids[i] and ids[i] in VOCAB for i in counted)
        for i in counted:  # every counted token continues a run seen earlier in the row: it is copyable
            assert any(ids[j - 1] == ids[i - 1] and ids[j] == ids[i] for j in range(1, i - 1))
        untouched = [i for i in range(512) if ids[i] >= 1000]
        assert all(ids[i] == window[i] and labels[i] == IGNORED for i in untouched) and len(untouched) > 300


class _Induction(torch.nn.Module):
    """A hand-built copier: predicts the token that followed the current token's latest earlier occurrence."""

    training = False

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, 600)
        row = input_ids[0].tolist()
        for i, token in enumerate(row):
            earlier = [j for j in range(i) if row[j] == token]
            logits[0, i, row[earlier[-1] + 1] if earlier else 0] = 1.0
        return type("Out", (), {"logits": logits})()

    def train(self, mode=True):
        return self


def test_the_copy_probe_scores_a_copier_one_and_an_untrained_model_zero():
    rng = random.Random(5)
    filler = [rng.randrange(500, 600) for _ in range(2000)]  # text the runs cannot be confused with
    assert copy_accuracy(_Induction(), VOCAB, filler, 400) > 0.95  # not 1: a run may repeat a token of its own
    config = Qwen3Config(vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=16, max_position_embeddings=2048)
    torch.manual_seed(0)
    assert copy_accuracy(Qwen3ForCausalLM(config), VOCAB, filler, 400) < 0.2
