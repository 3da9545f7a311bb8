"""LocalModelPolicy on a tiny random Qwen3 saved to disk: batching, adapters, limits, errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from runtime_semantics.policies.base import Message, PolicyError, TurnRequest
from runtime_semantics.policies.local_model import LocalModelPolicy, LocalModelSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def policy(model_dir: Path, **overrides: Any) -> LocalModelPolicy:
    return LocalModelPolicy(LocalModelSettings(**{"model": str(model_dir), "max_new_tokens": 10, "device": "cpu", **overrides}))


def request(i: int) -> TurnRequest:
    """Prompts of clearly different lengths, so batches need real left padding."""
    return TurnRequest(
        episode_key=f"task-{i}/r0",
        seed=i,
        messages=(
            Message(role="system", content="You are a helpful agent that writes Python code."),
            Message(role="user", content="Inspect the items, then take the best subset. " * (1 + 3 * i)),
        ),
    )


REQUESTS = [request(i) for i in (2, 0, 3, 1, 4)]


@pytest.fixture(scope="module")
def base_policy(tiny_model_dir: Path) -> LocalModelPolicy:
    return policy(tiny_model_dir, batch_size=3)


def test_greedy_batched_equals_one_at_a_time(base_policy: LocalModelPolicy) -> None:
    batched = base_policy.next_turns(REQUESTS)
    alone = [base_policy.next_turns([r])[0] for r in REQUESTS]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert [r.reported_usage for r in batched] == [r.reported_usage for r in alone]
    assert len({r.text for r in batched}) == len(REQUESTS)  # replies really belong to their own prompts


def test_usage_counts_prompt_and_new_tokens(base_policy: LocalModelPolicy, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    replies = base_policy.next_turns(REQUESTS[:2])
    for req, reply in zip(REQUESTS[:2], replies, strict=True):
        prompt = tokenizer.apply_chat_template(
            [m.model_dump() for m in req.messages], add_generation_prompt=True, enable_thinking=False, tokenize=False
        )
        assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # thinking off, as the paper runs Qwen3
        assert reply.reported_usage is not None
        assert reply.reported_usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert reply.reported_usage.completion_tokens == 10  # a random model does not stop by itself
        assert reply.finish_reason == "length" and not reply.cached


def test_stop_token_ends_the_turn_and_is_not_in_the_text(stopping_model_dir: Path) -> None:
    with policy(stopping_model_dir) as stopping:
        replies = stopping.next_turns(REQUESTS[:2])
    for reply in replies:
        assert (reply.text, reply.finish_reason) == ("", "stop")
        assert reply.reported_usage is not None and reply.reported_usage.completion_tokens == 1


def test_sampling_is_reproducible_and_follows_the_seed(tiny_model_dir: Path) -> None:
    with policy(tiny_model_dir, do_sample=True, temperature=1.0) as sampler:
        first = [r.text for r in sampler.next_turns(REQUESTS[:2])]
        again = [r.text for r in sampler.next_turns(REQUESTS[:2])]
        reseeded = [r.text for r in sampler.next_turns([r.model_copy(update={"seed": r.seed + 100}) for r in REQUESTS[:2]])]
    assert first == again
    assert first != reseeded


def test_checkpoint_generation_defaults_do_not_leak_in(tiny_model_dir: Path, tmp_path: Path, base_policy: LocalModelPolicy) -> None:
    """Checkpoints ship decoding defaults (Qwen2.5: repetition_penalty 1.05, top_k 20); only our settings may count."""
    from transformers import GenerationConfig

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    GenerationConfig(do_sample=True, top_k=1, repetition_penalty=5.0).save_pretrained(model_dir)
    greedy = [r.text for r in base_policy.next_turns(REQUESTS)]
    with policy(model_dir) as same_model:
        assert [r.text for r in same_model.next_turns(REQUESTS)] == greedy
    with policy(model_dir, do_sample=True, temperature=1.0) as sampler:
        assert [r.text for r in sampler.next_turns(REQUESTS)] != greedy  # top_k 1 would have made this greedy


def test_prompt_over_the_context_limit_gets_an_empty_reply(base_policy: LocalModelPolicy) -> None:
    short, long = request(0), request(4)
    lengths = [r.reported_usage.prompt_tokens for r in base_policy.next_turns([short, long]) if r.reported_usage]
    limit = lengths[0] + 4  # the short prompt fits with room for 4 new tokens, the long one does not fit
    with policy(Path(base_policy.settings.model), context_limit=limit) as limited:
        fits, too_long = limited.next_turns([short, long])
    assert (too_long.text, too_long.finish_reason) == ("", "context_limit")
    assert too_long.reported_usage is not None and too_long.reported_usage.completion_tokens == 0
    assert fits.finish_reason == "length" and fits.reported_usage is not None
    assert fits.reported_usage.completion_tokens == 4 and fits.reported_usage.total_tokens == limit


def test_adapter_is_loaded_and_changes_outputs(tiny_model_dir: Path, tiny_adapter_dir: Path, base_policy: LocalModelPolicy) -> None:
    with policy(tiny_model_dir, adapter=str(tiny_adapter_dir), batch_size=3) as adapted:
        tuned = adapted.next_turns(REQUESTS)
        assert str(tiny_adapter_dir) in adapted.name
        assert [r.text for r in tuned] == [adapted.next_turns([r])[0].text for r in REQUESTS]
    assert [r.text for r in tuned] != [r.text for r in base_policy.next_turns(REQUESTS)]


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(PolicyError, match=f"model folder not found: {missing}"):
        policy(missing)


def test_missing_adapter_folder_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-adapter"
    with pytest.raises(PolicyError, match=f"adapter folder not found: {missing}"):
        policy(tiny_model_dir, adapter=str(missing))


def test_folder_without_a_model_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=f"cannot load {tmp_path}"):
        policy(tmp_path)


def test_tokenizer_without_chat_template_is_a_policy_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "chat_template.jinja").unlink()
    with pytest.raises(PolicyError, match="has no chat template"):
        policy(model_dir)


def test_folder_without_an_adapter_is_a_policy_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=f"cannot load adapter {tmp_path}"):
        policy(tiny_model_dir, adapter=str(tmp_path))
