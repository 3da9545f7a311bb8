"""KV-cached batched decoding: it must give exactly what a fresh `generate` on the whole prompt gives.

The references here are transformers' own greedy `generate` over the full conversation (no
cache carried between turns), so a wrong cached prefix, position or padding mask shows up as
different tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from runtime_semantics.policies.base import Message, TurnRequest
from runtime_semantics.policies.kv_decoding import KVDecoder, KVStore, Row, Sampling
from runtime_semantics.policies.local_model import LocalModelPolicy, LocalModelSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STOP = 2  # <|im_end|> in the fixture tokenizer


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def reference(model: Any, ids: list[int], budget: int) -> list[int]:
    """transformers' greedy generate on the whole prompt, cut after the first stop token."""
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=budget, eos_token_id=[STOP], pad_token_id=0)
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), generation_config=config)
    return out[0, len(ids) :].tolist()


def prompt(seed: int, length: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, 300, (length,), generator=generator).tolist()


def test_a_conversation_continued_over_turns_matches_fresh_generation(model: Any) -> None:
    store = KVStore(capacity=4)
    decoder = KVDecoder(model, [STOP], store)
    ids = prompt(0, 40)
    for turn in range(3):
        tokens = decoder.generate([Row(key="episode", ids=ids, budget=12)])[0]
        assert tokens == reference(model, ids, 12)
        ids = ids + tokens + prompt(turn + 1, 15)  # the reply, then an observation
        assert store.prefix("episode", ids)[0] == len(ids) - 15 - 1  # all but the last reply token was cached


def test_an_edited_history_recomputes_from_the_first_changed_token(model: Any) -> None:
    store = KVStore(capacity=4)
    decoder = KVDecoder(model, [STOP], store)
    first = prompt(0, 40)
    decoder.generate([Row(key="episode", ids=first, budget=8)])
    edited = first[:20] + [7, 8, 9] + first[23:] + prompt(5, 10)
    assert store.prefix("episode", edited)[0] == 20
    assert decoder.generate([Row(key="episode", ids=edited, budget=8)])[0] == reference(model, edited, 8)


def test_rows_of_different_lengths_and_budgets_match_their_own_generation(model: Any) -> None:
    """Rows leave the batch at different steps (and the batch is compacted) without disturbing the others."""
    rows = [Row(key=f"e{i}", ids=prompt(i, 10 + 17 * i), budget=budget) for i, budget in enumerate([3, 20, 1, 9, 14, 2])]
    decoder = KVDecoder(model, [STOP], KVStore(capacity=8))
    batched = decoder.generate(rows)
    assert batched == [reference(model, row.ids, row.budget) for row in rows]
    assert [len(tokens) for tokens in batched] == [3, 20, 1, 9, 14, 2]  # random weights: no row stops early


def test_sampled_rows_do_not_depend_on_their_batch(model: Any) -> None:
    rows = [Row(key=f"e{i}", ids=prompt(i, 12 + 9 * i), budget=10, seed=100 + i) for i in range(4)]
    sampling = Sampling(temperature=1.0, top_p=0.9)
    batched = KVDecoder(model, [STOP], KVStore(capacity=8), sampling).generate(rows)
    alone = [KVDecoder(model, [STOP], KVStore(capacity=8), sampling).generate([row])[0] for row in rows]
    assert batched == alone
    reseeded = KVDecoder(model, [STOP], KVStore(capacity=8), sampling).generate([Row("e0", rows[0].ids, 10, seed=7)])[0]
    assert reseeded != batched[0]


def test_the_store_forgets_finished_and_least_recently_used_conversations(model: Any) -> None:
    store = KVStore(capacity=2)
    decoder = KVDecoder(model, [STOP], store)
    decoder.generate([Row(key=key, ids=prompt(i, 20), budget=2) for i, key in enumerate("abc")])
    assert len(store) == 2 and store.prefix("a", prompt(0, 20))[0] == 0  # "a" was dropped first
    store.forget("b")
    assert len(store) == 1 and store.prefix("c", prompt(2, 20))[0] == 19


def test_the_policy_keeps_an_episode_until_it_is_forgotten(tiny_model_dir: Path) -> None:
    policy = LocalModelPolicy(LocalModelSettings(model=str(tiny_model_dir), max_new_tokens=4, device="cpu"))
    request = TurnRequest(episode_key="task-1/r0", seed=0, messages=(Message(role="user", content="Inspect the items."),))
    first = policy.next_turns([request])[0].text
    assert policy.cached_episodes == 1
    policy.forget("task-1/r0")
    assert policy.cached_episodes == 0
    assert policy.next_turns([request])[0].text == first


def test_closing_the_policy_frees_its_model(tiny_model_dir: Path) -> None:
    import gc
    import weakref

    policy = LocalModelPolicy(LocalModelSettings(model=str(tiny_model_dir), max_new_tokens=2, device="cpu"))
    model = weakref.ref(policy._model)
    policy.close()
    gc.collect()
    assert model() is None


def test_a_bfloat16_cache_read_keeps_every_row_independent_of_its_batch(model: Any) -> None:
    """The mirror is compacted with the batch: rows leaving early disturb no other row's tokens."""
    rows = [Row(key=f"e{i}", ids=prompt(i, 10 + 17 * i), budget=budget) for i, budget in enumerate([3, 20, 1, 9, 14, 2])]
    batched = KVDecoder(model, [STOP], KVStore(capacity=8), cache_dtype=torch.bfloat16).generate(rows)
    alone = [KVDecoder(model, [STOP], KVStore(capacity=8), cache_dtype=torch.bfloat16).generate([row])[0] for row in rows]
    assert batched == alone
    assert [len(tokens) for tokens in batched] == [3, 20, 1, 9, 14, 2]


def test_a_bfloat16_cache_read_changes_only_the_decode_steps_attention(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decode steps read bfloat16 keys and values; the prefill and the conversation kept for the next turn stay float32."""
    from transformers import AutoModelForCausalLM

    from runtime_semantics.policies import kv_decoding

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()  # its attention is switched
    read: list[tuple[torch.dtype, torch.dtype, int]] = []
    mixed = kv_decoding._mixed_precision_attention

    def spy(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        read.append((query.dtype, key.dtype, query.shape[2]))
        return mixed(module, query, key, value, *args, **kwargs)

    monkeypatch.setattr(kv_decoding, "_mixed_precision_attention", spy)
    store = KVStore(capacity=4)
    decoder = KVDecoder(model, [STOP], store, cache_dtype=torch.bfloat16)
    ids = prompt(3, 30)
    tokens = decoder.generate([Row(key="episode", ids=ids, budget=6)])[0]
    assert tokens[0] == reference(model, ids, 1)[0]  # the first token comes from the float32 prefill
    assert {(q, k) for q, k, length in read if length > 1} == {(torch.float32, torch.float32)}  # prefill
    assert {(q, k) for q, k, length in read if length == 1} == {(torch.float32, torch.bfloat16)}  # decode steps
    _, kept = store.prefix("episode", ids + tokens)
    assert {k.dtype for pair in kept for k in pair} == {torch.float32}


def test_a_conversation_continued_over_turns_with_a_bfloat16_cache_read_matches_a_fresh_start(model: Any) -> None:
    ids = prompt(0, 40)
    decoder = KVDecoder(model, [STOP], KVStore(capacity=4), cache_dtype=torch.bfloat16)
    for turn in range(3):
        tokens = decoder.generate([Row(key="episode", ids=ids, budget=12)])[0]
        fresh = KVDecoder(model, [STOP], KVStore(capacity=4), cache_dtype=torch.bfloat16).generate([Row(key="new", ids=ids, budget=12)])[0]
        assert tokens == fresh
        ids = ids + tokens + prompt(turn + 1, 15)


@pytest.mark.parametrize("cache_dtype", [None, torch.bfloat16], ids=["float32", "bfloat16-read"])
def test_rows_joining_a_running_batch_match_their_own_generation(model: Any, cache_dtype: torch.dtype | None) -> None:
    """Rows join between steps, past the room made at first and longer than its columns (the cache grows), and leave."""
    rows = [Row(key=f"e{i}", ids=prompt(i, 10 + 23 * i), budget=budget) for i, budget in enumerate([12, 5, 16, 9])]
    batch = KVDecoder(model, [STOP], KVStore(capacity=8), cache_dtype=cache_dtype).batch(rows=1)
    joins = {0: rows[0], 2: rows[1], 4: rows[2], 7: rows[3]}
    got: dict[str, list[int]] = {}
    for step in range(40):
        if step in joins:
            batch.add(joins[step])
        got.update((row.key, tokens) for row, tokens in batch.step())
    assert not batch and len(got) == 4
    rows_room, _, columns, _ = batch.layers[0].buffers[0].shape
    needed = max(len(row.ids) + row.budget - 1 for row in rows)
    assert rows_room == 4 and needed <= columns <= 1.25 * needed  # grown by what the rows needed, one dimension at a time
    alone = {row.key: KVDecoder(model, [STOP], KVStore(capacity=2), cache_dtype=cache_dtype).generate([row])[0] for row in rows}
    assert got == alone
    if cache_dtype is None:
        assert got == {row.key: reference(model, row.ids, row.budget) for row in rows}
    assert [len(got[row.key]) for row in rows] == [12, 5, 16, 9]
