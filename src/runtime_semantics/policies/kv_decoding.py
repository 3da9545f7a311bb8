"""Batched decoding that keeps each conversation's keys and values between its turns.

An agent's next prompt is its last prompt plus the reply and an observation, so a plain
`generate` call per turn re-reads the whole conversation and spends most of its time on
prefill. Here every conversation's KV cache stays in memory between turns (`KVStore`): a turn
prefills only the tokens after the longest prefix it shares with the cached ones (a reply
re-tokenized from its text may split differently, so the match is token by token), one
conversation at a time. Then the rows of a batch decode together in one preallocated cache,
each right-aligned with its own positions and padding mask, and a row leaves the batch (which
is compacted now and then) when it stops.

A row's tokens never depend on the rest of its batch: greedy rows take the argmax, sampled
rows draw from their own generator seeded from that row alone (`Row.seed`).

Long-context decoding on a CPU is bound by reading the cache: every step reads every row's
keys and values. With `cache_dtype` (bfloat16) the decode steps' attention reads a copy of the
batch cache in that dtype, half the bytes of float32; the queries are rounded to it too, and
the attention output is cast back. Everything else stays in the model's dtype: the weights,
the prefill, and the keys and values kept between turns, so only the decode steps' attention
differs from a float32 run (as it would under bfloat16 on a GPU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward


@dataclass(frozen=True)
class Row:
    """One prompt to continue: its conversation key, token ids, token budget and sampling seed (None: greedy)."""

    key: str
    ids: list[int]
    budget: int
    seed: int | None = None


@dataclass(frozen=True)
class Sampling:
    """How a sampled row draws its next token: plain temperature and nucleus sampling, no top-k."""

    temperature: float = 1.0
    top_p: float = 1.0


KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values, [kv_heads, tokens, head_dim]


class KVStore:
    """The cached conversations, least recently used dropped first beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[list[int], KV]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def prefix(self, key: str, ids: Sequence[int]) -> tuple[int, KV]:
        """How many leading tokens of `ids` are cached (always leaving one to prefill), and their KV."""
        if key not in self._entries:
            return 0, []
        cached, kv = self._entries[key]
        limit = min(len(cached), len(ids) - 1)
        shared = next((i for i in range(limit) if cached[i] != ids[i]), limit)
        return shared, [(k[:, :shared], v[:, :shared]) for k, v in kv]

    def put(self, key: str, ids: list[int], kv: KV) -> None:
        self._entries[key] = (ids, kv)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


class _BatchLayer(DynamicLayer):
    """One layer's cache for a decoding batch: written in place into preallocated tensors, read as views.

    `buffer_*` hold the model's dtype (what the store keeps); with a `read_dtype` attention
    reads a mirror in that dtype instead, written alongside.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int, read_dtype: torch.dtype | None = None,
                 mirror: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.buffer_keys, self.buffer_values, self.length = keys, values, length
        if mirror is None and read_dtype is not None and read_dtype != keys.dtype:
            mirror = keys.to(read_dtype), values.to(read_dtype)
        self.mirror = mirror
        read_keys, read_values = mirror or (keys, values)
        self.keys, self.values = read_keys[:, :, :length], read_values[:, :, :length]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_states.shape[-2]
        self.buffer_keys[:, :, self.length : end] = key_states
        self.buffer_values[:, :, self.length : end] = value_states
        read_keys, read_values = self.buffer_keys, self.buffer_values
        if self.mirror is not None:
            read_keys, read_values = self.mirror
            read_keys[:, :, self.length : end] = key_states
            read_values[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = read_keys[:, :, :end], read_values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def select(self, index: torch.Tensor) -> _BatchLayer:
        """The same layer for the rows at `index` only (a compacted batch)."""
        mirror = None if self.mirror is None else (self.mirror[0].index_select(0, index), self.mirror[1].index_select(0, index))
        return _BatchLayer(self.buffer_keys.index_select(0, index), self.buffer_values.index_select(0, index), self.length, mirror=mirror)


def _mixed_precision_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    """SDPA where the cache is read in a lower precision than the model computes in: the query is cast to the
    cache's dtype and the output back. Matching dtypes (prefill, an unmirrored cache) take plain SDPA."""
    if key.dtype == query.dtype:
        return sdpa_attention_forward(module, query, key, value, *args, **kwargs)
    output, weights = sdpa_attention_forward(module, query.to(key.dtype), key, value, *args, **kwargs)
    return output.to(query.dtype), weights


MIXED_PRECISION_ATTENTION = "sdpa_mixed_precision_cache"


def _use_mixed_precision_attention(model: Any) -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(MIXED_PRECISION_ATTENTION, _mixed_precision_attention)
    AttentionMaskInterface.register(MIXED_PRECISION_ATTENTION, sdpa_mask)
    model.set_attn_implementation(MIXED_PRECISION_ATTENTION)


class KVDecoder:
    """Continue many prompts at once with a causal LM, reusing each conversation's cached prefix."""

    def __init__(
        self, model: Any, stop_ids: Sequence[int], store: KVStore, sampling: Sampling | None = None, cache_dtype: torch.dtype | None = None
    ) -> None:
        """`cache_dtype`: the dtype decode steps read the cache in (None: the model's own); see the module docstring."""
        self.model = model
        self.stop_ids = set(stop_ids)
        self.store = store
        self.sampling = sampling or Sampling()
        self.device = next(model.parameters()).device
        self.read_dtype = None if cache_dtype in (None, model.dtype) else cache_dtype
        if self.read_dtype is not None:
            _use_mixed_precision_attention(model)

    @torch.inference_mode()
    def generate(self, rows: Sequence[Row]) -> list[list[int]]:
        """Each row's new tokens, up to and including its first stop token, or `budget` of them."""
        generators = [self._generator(row) for row in rows]
        prefilled = [self._prefill(row) for row in rows]
        tokens = [[self._pick(logits[None], [gen])[0]] for (logits, _), gen in zip(prefilled, generators, strict=True)]
        live = [i for i, row in enumerate(rows) if not self._finished(tokens[i], row.budget)]
        for i in set(range(len(rows))) - set(live):
            self._keep(rows[i], tokens[i], prefilled[i][1])
        if live:
            self._decode([rows[i] for i in live], [prefilled[i][1] for i in live], [tokens[i] for i in live], [generators[i] for i in live])
        return tokens

    def _generator(self, row: Row) -> torch.Generator | None:
        if row.seed is None:
            return None
        generator = torch.Generator(device=self.device)
        generator.manual_seed(row.seed)
        return generator

    def _finished(self, tokens: list[int], budget: int) -> bool:
        return tokens[-1] in self.stop_ids or len(tokens) >= budget

    def _prefill(self, row: Row) -> tuple[torch.Tensor, KV]:
        """Logits after the prompt and the prompt's KV, computing only what the store does not hold."""
        shared, past = self.store.prefix(row.key, row.ids)
        cache = DynamicCache()
        for index, (keys, values) in enumerate(past):
            cache.update(keys[None], values[None], index)
        new = torch.tensor([row.ids[shared:]], device=self.device)
        positions = torch.arange(shared, len(row.ids), device=self.device)[None]
        out = self.model(input_ids=new, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1], [(layer.keys[0], layer.values[0]) for layer in cache.layers]

    def _pick(self, logits: torch.Tensor, generators: Sequence[torch.Generator | None]) -> list[int]:
        """Next token per row: argmax for greedy rows, a draw from the row's own generator otherwise."""
        picked = logits.argmax(-1).tolist()
        for i, generator in enumerate(generators):
            if generator is None:
                continue
            probs = torch.softmax(logits[i].float() / self.sampling.temperature, -1)
            if self.sampling.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                outside = sorted_probs.cumsum(-1) - sorted_probs >= self.sampling.top_p  # keep the smallest set reaching top_p
                probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
            picked[i] = int(torch.multinomial(probs, 1, generator=generator))
        return picked

    def _keep(self, row: Row, tokens: list[int], kv: KV) -> None:
        """Store the conversation as far as its KV goes: the prompt and every new token but the last."""
        seen = len(row.ids) + len(tokens) - 1
        self.store.put(row.key, row.ids + tokens[:-1], [(k[:, :seen].clone(), v[:, :seen].clone()) for k, v in kv])

    def _decode(self, rows: list[Row], prompts: list[KV], tokens: list[list[int]], generators: list[torch.Generator | None]) -> None:
        """Advance the rows together until each stops or spends its budget; `tokens` grow in place."""
        lengths = [len(row.ids) for row in rows]
        width = max(lengths)
        steps = max(row.budget for row in rows) - 1
        layers = []
        for layer, (keys, values) in enumerate(prompts[0]):
            shape = (len(rows), keys.shape[0], width + steps, keys.shape[-1])
            batch_keys = keys.new_zeros(shape)
            batch_values = values.new_zeros(shape[:-1] + (values.shape[-1],))
            for i, kv in enumerate(prompts):
                batch_keys[i, :, width - lengths[i] : width] = kv[layer][0]
                batch_values[i, :, width - lengths[i] : width] = kv[layer][1]
            layers.append(_BatchLayer(batch_keys, batch_values, width, self.read_dtype))
        cache = Cache(layers=layers)
        mask = torch.zeros(len(rows), width + steps, dtype=torch.bool, device=self.device)
        for i, length in enumerate(lengths):
            mask[i, width - length :] = True
        batch = list(range(len(rows)))  # which row each batch position holds
        live = set(batch)
        for step in range(steps):
            feed = torch.tensor([[tokens[i][-1]] for i in batch], device=self.device)
            positions = torch.tensor([[lengths[i] + step] for i in batch], device=self.device)
            attend = {"full_attention": mask[:, None, None, : width + step + 1]}
            out = self.model(input_ids=feed, attention_mask=attend, position_ids=positions, cache=cache, use_cache=True)
            picked = self._pick(out.logits[:, -1], [generators[i] for i in batch])
            for position, i in enumerate(batch):
                if i not in live:
                    continue
                tokens[i].append(picked[position])
                if self._finished(tokens[i], rows[i].budget):
                    live.discard(i)
                    start = width - lengths[i]
                    self._keep(rows[i], tokens[i], [(layer.buffer_keys[position, :, start:], layer.buffer_values[position, :, start:]) for layer in layers])
            if not live:
                return
            if len(live) <= 3 * len(batch) // 4:  # drop finished rows once a quarter of the batch is idle
                kept = [position for position, i in enumerate(batch) if i in live]
                index = torch.tensor(kept, device=self.device)
                layers = [layer.select(index) for layer in layers]
                cache = Cache(layers=layers)
                mask = mask.index_select(0, index)
                batch = [batch[position] for position in kept]
