"""Training scores only the positions that carry a loss: TRL's fused LM head, made compact on the CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch


def _model() -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=16, tie_word_embeddings=True)
    model = Qwen3ForCausalLM(config)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    return model


def test_the_lm_head_scores_only_labelled_positions_with_the_same_loss_and_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    import trl.trainer.utils as trl_utils

    from runtime_semantics.training.train_stage import score_only_labelled_tokens

    scored: list[int] = []
    kernel = trl_utils._ChunkedLogProbFunction

    class Spy(kernel):  # type: ignore[misc, valid-type]
        @staticmethod
        def apply(hidden: torch.Tensor, *args: Any) -> Any:
            scored.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # restored after the test
    ids = torch.randint(0, 64, (1, 40))
    labels = torch.full_like(ids, -100)
    labels[0, 25:33] = ids[0, 25:33]  # an assistant turn: 8 labelled tokens among 40

    def loss_and_grad() -> tuple[float, torch.Tensor]:
        model = _model()
        loss = model(input_ids=ids, labels=labels, fused_lm_head=True).loss
        loss.backward()
        return loss.item(), model.lm_head.weight.grad.clone()

    every_loss, every_grad = loss_and_grad()
    score_only_labelled_tokens()
    compact_loss, compact_grad = loss_and_grad()
    assert scored == [39, 8]  # every next-token position, then only the labelled ones
    assert compact_loss == pytest.approx(every_loss, rel=1e-6)
    assert torch.allclose(compact_grad, every_grad, atol=1e-7)
