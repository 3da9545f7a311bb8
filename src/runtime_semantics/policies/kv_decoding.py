"""Batched decoding that keeps each conversation's keys and values between its turns.

An agent's next prompt is its last prompt plus the reply and an observation, so a plain
`generate` call per turn re-reads the whole conversation and spends most of its time on
prefill. Here every conversation's KV cache stays in memory between turns (`KVStore`): a turn
prefills only the tokens after the longest prefix it shares with the cached ones (a reply
re-tokenized from its text may split differently, so the match is token by token), one
conversation at a time. Then the rows decode together in one preallocated cache
(`DecodingBatch`), each left-aligned with its own positions and padding mask; a row joins the
batch between any two steps and leaves it when it stops, so a caller can keep the batch full.

A row's tokens are its own: greedy rows take the argmax, sampled rows draw from their own
generator seeded from that row alone (`Row.seed`), and a row attends only to its own cache
(only rounding can differ with the batch's shape; `local_model` says when that shows).

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
    """One layer's cache for a `DecodingBatch`: preallocated [rows, kv_heads, columns, head_dim], read as views.

    `buffers` hold the model's dtype (what the store keeps); with a `read_dtype` attention reads
    `mirrors` in that dtype instead, written alongside. Which columns a step writes, and how many
    it reads, is the batch's (`DecodingBatch.rows`, `.columns`, `.width`).
    """

    def __init__(self, batch: DecodingBatch, keys: torch.Tensor, values: torch.Tensor, read_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.batch = batch
        self.buffers = [keys, values]
        self.mirrors = None if read_dtype is None else [keys.to(read_dtype), values.to(read_dtype)]
        self.is_initialized = True

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor a row's keys and values are written to."""
        return self.buffers + (self.mirrors or [])

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Write each row's new keys and values at its own length; return every row's cache up to the longest row."""
        rows, columns, width = self.batch.rows, self.batch.columns, self.batch.width
        for tensor, new in zip(self.tensors(), (key_states, value_states) * 2, strict=False):
            tensor[rows, :, columns] = new[:, :, 0].to(tensor.dtype)
        read = self.mirrors or self.buffers
        n = len(rows)
        self.keys, self.values = read[0][:n, :, :width], read[1][:n, :, :width]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.batch.width - 1


@dataclass
class _Live:
    row: Row
    tokens: list[int]
    generator: torch.Generator | None


class DecodingBatch:
    """Rows decoding together: a row joins after its prefill and leaves when it stops, between any two steps.

    An agent's turns end at very different lengths, so a batch that only starts when all its
    prompts are ready and ends with its longest reply decodes mostly half empty; here an
    episode's next turn joins as soon as its block has run. Each row's cache is left-aligned in
    preallocated tensors: its i-th token's keys sit in column i, so its next token goes to
    column `length`, at position `length`. A step reads the columns up to the longest row, each
    row masked to its own. A leaving row's slot takes the last row (one row copied), so the live
    rows are always the first n. The tensors grow (copied once) when a joining row needs more
    rows or columns than they have.
    """

    def __init__(self, decoder: KVDecoder, rows: int = 1) -> None:
        """`rows`: how many rows to make room for at first (more grow the tensors)."""
        self.decoder = decoder
        self.room = rows
        self.live: list[_Live] = []
        self.lengths: list[int] = []  # tokens cached per live row
        self.done: list[tuple[Row, list[int]]] = []
        self.layers: list[_BatchLayer] = []
        self.cache: Cache | None = None
        self.rows = torch.zeros(0, dtype=torch.long)  # this step's live rows: 0..n-1
        self.columns = torch.zeros(0, dtype=torch.long)  # this step's write column (and position) per row
        self.width = 0  # this step's columns read

    def __len__(self) -> int:
        """Rows not yet handed back by `step`."""
        return len(self.live) + len(self.done)

    @torch.inference_mode()
    def add(self, row: Row) -> None:
        """Prefill the row and pick its first token; it decodes from the next step on (or is done at once)."""
        decoder = self.decoder
        generator = decoder._generator(row)
        logits, kv = decoder._prefill(row)
        tokens = [decoder._pick(logits[None], [generator])[0]]
        if decoder._finished(tokens, row.budget):
            decoder._keep(row, tokens, kv)
            self.done.append((row, tokens))
            return
        length, slot = len(row.ids), len(self.live)
        self._reserve(slot + 1, length + row.budget - 1, kv)
        for layer, (keys, values) in zip(self.layers, kv, strict=True):
            for tensor, new in zip(layer.tensors(), (keys, values) * 2, strict=False):
                tensor[slot, :, :length] = new
        self.live.append(_Live(row, tokens, generator))
        self.lengths.append(length)

    @torch.inference_mode()
    def step(self) -> list[tuple[Row, list[int]]]:
        """One decode step of every live row; the rows that stopped since the last call, with their new tokens."""
        if self.live:
            decoder = self.decoder
            self.rows = torch.arange(len(self.live), device=decoder.device)
            self.columns = torch.tensor(self.lengths, device=decoder.device)
            self.width = max(self.lengths) + 1
            mask = torch.arange(self.width, device=decoder.device)[None, :] <= self.columns[:, None]
            feed = torch.tensor([[live.tokens[-1]] for live in self.live], device=decoder.device)
            out = decoder.model(
                input_ids=feed, attention_mask={"full_attention": mask[:, None, None, :]}, position_ids=self.columns[:, None],
                cache=self.cache, use_cache=True,
            )
            picked = decoder._pick(out.logits[:, -1], [live.generator for live in self.live])
            stopped = []
            for slot, live in enumerate(self.live):
                live.tokens.append(picked[slot])
                self.lengths[slot] += 1
                if decoder._finished(live.tokens, live.row.budget):
                    stopped.append(slot)
                    layers = [(layer.buffers[0][slot], layer.buffers[1][slot]) for layer in self.layers]
                    decoder._keep(live.row, live.tokens, layers)
                    self.done.append((live.row, live.tokens))
            for slot in reversed(stopped):  # the last row, which takes the slot, is still live
                self._remove(slot)
        done, self.done = self.done, []
        return done

    def _remove(self, slot: int) -> None:
        last = len(self.live) - 1
        if slot != last:
            moved = self.lengths[last]
            for layer in self.layers:
                for tensor in layer.tensors():
                    tensor[slot, :, :moved] = tensor[last, :, :moved]
            self.live[slot], self.lengths[slot] = self.live[last], moved
        self.live.pop()
        self.lengths.pop()

    def _reserve(self, rows: int, columns: int, kv: KV) -> None:
        """Room for `rows` rows of `columns` columns: larger tensors, with the live rows copied over, when needed."""
        if self.layers:
            have_rows, _, have_columns, _ = self.layers[0].buffers[0].shape
            if rows <= have_rows and columns <= have_columns:
                return
            rows = have_rows if rows <= have_rows else max(rows, 2 * have_rows)
            columns = have_columns if columns <= have_columns else max(columns, have_columns + have_columns // 4)
        rows = max(rows, self.room)
        n, used = len(self.live), max(self.lengths, default=0)
        layers = []
        for index, (keys, values) in enumerate(kv):
            layer = _BatchLayer(
                self, keys.new_zeros((rows, keys.shape[0], columns, keys.shape[-1])),
                values.new_zeros((rows, values.shape[0], columns, values.shape[-1])), self.decoder.read_dtype,
            )
            if self.layers:
                for tensor, old in zip(layer.tensors(), self.layers[index].tensors(), strict=True):
                    tensor[:n, :, :used] = old[:n, :, :used]
            layers.append(layer)
        self.layers = layers
        self.cache = Cache(layers=layers)


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

    def batch(self, rows: int = 1) -> DecodingBatch:
        """An empty batch that rows can join and leave step by step (`rows`: room to make at first)."""
        return DecodingBatch(self, rows)

    def generate(self, rows: Sequence[Row]) -> list[list[int]]:
        """Each row's new tokens, up to and including its first stop token, or `budget` of them."""
        batch = self.batch(len(rows))
        for row in rows:
            batch.add(row)
        tokens: dict[int, list[int]] = {}
        while batch:
            tokens.update((id(row), new) for row, new in batch.step())
        return [tokens[id(row)] for row in rows]

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
