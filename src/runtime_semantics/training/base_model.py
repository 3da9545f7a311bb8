"""The `base` stage: the model every condition is fine-tuned from.

`tiny` (smoke, mini): a Qwen3-architecture model small enough for a CPU, with its own BPE
tokenizer, pretrained on real Python source (the standard library on the machine),
task-style text (goal prompts, tool results) and single-turn chats (a standard-library
function asked for and answered; given numbers, ids and records put into code), so that it
knows some Python and the turn format but has seen neither condition's traces or habits.
A base built on two machines is not the same base (the host's standard library differs
between Python releases; CPU float results differ with the thread count), so a profile may
name a `shipped` base: pretrained once with `base pretrain`, committed with a manifest of its
recipe and file digests, and only verified and copied here. `hub` (paper): a Hugging Face
id or local folder such as Qwen/Qwen3-8B; the stage only checks that its configuration and
tokenizer can be loaded and records the reference, failing early with a clear message when
they cannot.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import math
import platform
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import UserError
from ..files import atomic_write_text
from ..progress import ProgressLog
from ..section import Section
from ..tasks import DifficultySettings, iter_set
from .copy_documents import copy_documents
from .drills import back_to_back_row, copy_accuracy, drill_vocab, gapped_row
from .tiny_tokenizer import stdlib_sources, train_tokenizer

log = logging.getLogger(__name__)


class TinyArchitecture(Section):
    """Qwen3Config sizes of the tiny model."""

    hidden_size: int = Field(ge=8)
    intermediate_size: int = Field(ge=8)
    num_hidden_layers: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_key_value_heads: int = Field(ge=1)
    head_dim: int = Field(ge=4)
    max_position_embeddings: int = Field(ge=128)


class DrillPhase(Section):
    """One phase of copying drills after the corpus phase (drills.py): constant learning rate, AdamW."""

    steps: int = Field(ge=1)
    seq_len: int = Field(ge=16)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    max_run: int = Field(ge=5, description="random tokens per run, at most (at least 5)")
    gapped: bool = Field(description="false: runs repeated at once, in rows of random tokens; true: repeated later inside corpus text")
    runs_per_row: int = Field(1, ge=1, description="gapped: runs written over each drill row")
    text_share: float = Field(0.0, ge=0, lt=1, description="gapped: rows of plain corpus text, every token counted, so the text is not forgotten")
    seed: int = Field(description="seeds the phase's rows; when the circuit forms depends on it (see docs/mini.md)")

    @model_validator(mode="after")
    def _fits(self) -> DrillPhase:
        if self.gapped and 2 * self.max_run * self.runs_per_row > self.seq_len:
            raise ValueError(f"max_run x runs_per_row x 2 ({2 * self.max_run * self.runs_per_row}) exceeds seq_len ({self.seq_len})")
        return self


class Pretraining(Section):
    """A short causal-LM pretraining on packed text (the corpus phase), then copying drills."""

    steps: int = Field(ge=1)
    seq_len: int = Field(ge=16)
    batch_size: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    warmup_steps: int = Field(ge=0)
    seed: int
    task_documents: int = Field(ge=0, description="task-style documents (goal, summary of its numbers, item data) in the corpus")
    chat_share: float = Field(
        ge=0, le=1, description="chat-formatted function requests, as a fraction of the plain corpus's characters (0: none)"
    )
    copy_documents: int = Field(0, ge=0, description="chats asking to copy given numbers, ids and records into code (copy_documents.py)")
    drills: list[DrillPhase] = Field(default_factory=list, description="phases of copying drills after the corpus phase, in order")


class BaseParams(Section):
    """`<profile>.base`: which model the conditions start from."""

    kind: Literal["tiny", "hub"]
    model: str | None = Field(None, description="hub: a Hugging Face id or local folder, e.g. Qwen/Qwen3-8B")
    vocab_size: int | None = Field(None, ge=512, description="tiny: BPE vocabulary size, Qwen3 specials included")
    corpus_max_bytes: int | None = Field(None, ge=10_000, description="tiny: how much standard-library source to read")
    architecture: TinyArchitecture | None = None
    pretraining: Pretraining | None = None
    shipped: str | None = Field(
        None, description="tiny: a folder holding this recipe's pretrained base (made by `base pretrain`); the stage verifies and uses it"
    )

    @model_validator(mode="after")
    def _complete(self) -> BaseParams:
        if self.kind == "hub" and not self.model:
            raise ValueError("kind 'hub' needs model (a Hugging Face id or a local folder)")
        if self.kind == "tiny" and None in (self.vocab_size, self.corpus_max_bytes, self.architecture, self.pretraining):
            raise ValueError("kind 'tiny' needs vocab_size, corpus_max_bytes, architecture and pretraining")
        return self


def task_text(settings: DifficultySettings, n: int, seed: int) -> Iterator[str]:
    """Task-style text without any trace: goal statements, a one-line summary of their numbers
    (so that the model learns to read a number off its prompt, as any real LLM can), and tool
    results of fresh instances."""
    from ..agent.prompts import PromptBuilder, PromptStyle

    prompts = PromptBuilder(style=PromptStyle.MATCHED, persistent=False, max_tool_calls=25)
    for task in iter_set(settings, split="pretraining", difficulty="easy", base_seed=seed, n=n):
        public = task.public
        items = {i: {"weight": it.weight, "value": it.value, "class": it.item_class} for i, it in task.hidden.items.items()}
        summary = (f"In short: {len(public.item_ids)} items, at most {public.inspect_budget} inspections, "
                   f"capacity {public.capacity}, classes {', '.join(public.classes)}.")
        yield prompts.goal(public.model_dump()) + "\n" + summary + "\n" + json.dumps(items)


def chat_documents(sources: list[str], max_chars: int) -> Iterator[list[dict[str, str]]]:
    """Conversations asking for a top-level function of `sources` and answering with its code."""
    total = 0
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            code = ast.get_source_segment(source, node)
            if not code or total + len(code) > max_chars:
                continue
            total += len(code)
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            ask = f"Write a Python function `{node.name}`" + (f": {doc[0]}" if doc else ".")
            yield [{"role": "user", "content": ask}, {"role": "assistant", "content": f"Here is `{node.name}`.\n\n```python\n{code}\n```"}]


def _packed_batches(token_stream: list[int], params: Pretraining) -> Iterator[list[tuple[list[int], list[int]]]]:
    """Random windows of `seq_len` tokens from the concatenated corpus, seeded, as (ids, labels) rows: every token counted."""
    rng = random.Random(params.seed)
    limit = len(token_stream) - params.seq_len - 1
    if limit <= 0:
        raise UserError(f"base.pretraining.seq_len: {params.seq_len} is longer than the whole corpus ({len(token_stream)} tokens)")
    while True:
        starts = [rng.randrange(limit) for _ in range(params.batch_size)]
        yield [(window, window) for window in (token_stream[s : s + params.seq_len] for s in starts)]


def train_step(model: Any, optimizer: Any, rows: list[tuple[list[int], list[int]]]) -> float:
    """One clipped AdamW step of causal-LM loss on (ids, labels) rows; returns the loss."""
    import torch

    loss = model(input_ids=torch.tensor([r[0] for r in rows]), labels=torch.tensor([r[1] for r in rows]), use_cache=False).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def build_tiny_base(
    params: BaseParams, family_easy: DifficultySettings, out_dir: Path, corpus_phase_from: Path | None = None
) -> dict[str, Any]:
    """Train the tokenizer, pretrain the tiny model (corpus phase, then drill phases), save both to
    `out_dir`; returns the summary. `corpus_phase_from`: a drill-free base of the same recipe
    whose tokenizer and weights stand in for the tokenizer training and the corpus phase."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    assert params.architecture is not None and params.pretraining is not None and params.vocab_size and params.corpus_max_bytes
    pre = params.pretraining
    sources = list(stdlib_sources(params.corpus_max_bytes))
    corpus_digest = hashlib.sha256("\0".join(sources).encode()).hexdigest()
    corpus = sources + list(task_text(family_easy, pre.task_documents, pre.seed))
    copies = list(copy_documents(pre.copy_documents, pre.seed))
    tokenizer_dir = out_dir / "model"
    loaded = _load_corpus_phase(params, family_easy, corpus_phase_from, tokenizer_dir) if corpus_phase_from else None
    if loaded is None:  # the tokenizer learns the copy chats' text too (ids, JSON records), without chat markup
        train_tokenizer(corpus + [m["content"] for chat in copies for m in chat], vocab_size=params.vocab_size, out_dir=tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    chats = [
        tokenizer.apply_chat_template(messages, tokenize=False)
        for messages in chat_documents(sources, int(pre.chat_share * sum(map(len, corpus))))
    ]
    chats += [tokenizer.apply_chat_template(messages, tokenize=False) for messages in copies]
    corpus += chats
    stream: list[int] = []
    for text in corpus:
        stream.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] + [eos])  # whole files: no length warning

    torch.manual_seed(pre.seed)
    if loaded is None:
        config = Qwen3Config(
            vocab_size=len(tokenizer), tie_word_embeddings=True, bos_token_id=eos, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=eos, **params.architecture.model_dump(),
        )
        model = Qwen3ForCausalLM(config)
        started = time.perf_counter()
        losses = _corpus_phase(model, stream, pre)
        corpus_phase = {"tokens_per_second": pre.steps * pre.batch_size * pre.seq_len / (time.perf_counter() - started)}
    else:
        model = Qwen3ForCausalLM.from_pretrained(str(tokenizer_dir), local_files_only=True)
        losses = loaded["summary"]["losses"]
        corpus_phase = {"tokens_per_second": loaded["summary"]["tokens_per_second"], "corpus_phase_from": loaded["weights_sha256"]}
    vocab = drill_vocab(tokenizer)
    drill_phases = [_drill_phase(model, phase, index, stream, vocab, eos) for index, phase in enumerate(pre.drills)]
    model.save_pretrained(str(tokenizer_dir))
    summary = {
        "kind": "tiny",
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "corpus_documents": len(corpus),
        "stdlib_sha256": corpus_digest,
        "python_version": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "chat_documents": len(chats),
        "corpus_tokens": len(stream),
        "steps": pre.steps,
        **corpus_phase,
        "first_loss": losses[0],
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "drill_phases": drill_phases,
        "copy_accuracy": drill_phases[-1]["copy_accuracy"] if drill_phases else _copy_accuracies(model, vocab, stream),
        "losses": losses,
    }
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _corpus_phase(model: Any, stream: list[int], pre: Pretraining) -> list[float]:
    """Causal-LM training on random windows of the corpus: warmup, then cosine decay to zero; returns the losses."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=pre.learning_rate, weight_decay=0.01)

    def lr_factor(step: int) -> float:  # linear warmup, then cosine decay to zero
        if step < pre.warmup_steps:
            return (step + 1) / pre.warmup_steps
        progress = (step - pre.warmup_steps) / max(1, pre.steps - pre.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    losses: list[float] = []
    model.train()
    batches = _packed_batches(stream, pre)
    with _step_progress("base pretraining", pre.steps) as progress:
        for _ in range(pre.steps):
            losses.append(train_step(model, optimizer, next(batches)))
            scheduler.step()
            progress(losses[-1])
    return losses


def _drill_phase(model: Any, phase: DrillPhase, index: int, stream: list[int], vocab: list[int], eos: int) -> dict[str, Any]:
    """Train on one phase's drill rows (drills.py); returns its losses' summary and the copy accuracy after it."""
    import torch

    rng = random.Random(phase.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=phase.learning_rate, weight_decay=0.01)

    def row() -> tuple[list[int], list[int]]:
        if not phase.gapped:
            return back_to_back_row(rng, vocab, eos, phase.seq_len, phase.max_run)
        start = rng.randrange(len(stream) - phase.seq_len)
        window = stream[start : start + phase.seq_len]
        if phase.text_share and rng.random() < phase.text_share:
            return window, list(window)
        return gapped_row(rng, window, vocab, phase.runs_per_row, phase.max_run)

    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    with _step_progress(f"base drills {index + 1}", phase.steps) as progress:
        for _ in range(phase.steps):
            losses.append(train_step(model, optimizer, [row() for _ in range(phase.batch_size)]))
            progress(losses[-1])
    return {
        "steps": phase.steps,
        "seconds": round(time.perf_counter() - started, 1),
        "first_loss": losses[0],
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "copy_accuracy": _copy_accuracies(model, vocab, stream),
    }


COPY_DISTANCES = (0, 100, 400, 1500)


def _copy_accuracies(model: Any, vocab: list[int], stream: list[int]) -> dict[str, float]:
    """drills.copy_accuracy at the distances a prompt's values lie back: the base's reading skill, in the summary."""
    return {str(distance): round(copy_accuracy(model, vocab, stream, distance), 3) for distance in COPY_DISTANCES}


@contextmanager
def _step_progress(label: str, total: int) -> Iterator[Callable[[float], None]]:
    """A bar on a terminal, and a line once a minute in the log (ProgressLog) where no bar is seen; yields step(loss)."""
    lines = ProgressLog(label, total, unit="steps")
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
    ) as progress:
        bar = progress.add_task("steps", total=total, loss="-")

        def step(loss: float) -> None:
            progress.update(bar, advance=1, loss=f"{loss:.3f}")
            lines.update(loss=f"{loss:.3f}")

        yield step


def _load_corpus_phase(params: BaseParams, family_easy: DifficultySettings, source: Path, model_dir: Path) -> dict[str, Any]:
    """Copy a drill-free base's tokenizer and weights in place of the tokenizer training and the corpus phase, after
    checking that its manifest's recipe is this one without drills and that its files match their digests."""
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{source / MANIFEST}: no readable manifest ({exc.__class__.__name__})") from None
    recipe = json.loads(json.dumps(_recipe(params, family_easy)))
    recipe["base"]["pretraining"]["drills"] = []
    theirs = manifest.get("recipe", {})
    theirs.get("base", {}).get("pretraining", {}).setdefault("drills", [])
    if theirs != recipe:
        raise UserError(f"{source / MANIFEST}: recipe is not this profile's recipe without drills; it cannot stand in for the corpus phase")
    model_dir.mkdir(parents=True, exist_ok=True)
    for name, digest in manifest.get("files", {}).items():
        if _sha256(source / name) != digest:
            raise UserError(f"{source / name}: sha256 differs from {source / MANIFEST} (files.{name})")
        shutil.copyfile(source / name, model_dir / name)
    return {"summary": manifest["summary"], "weights_sha256": manifest["files"]["model.safetensors"]}


def check_hub_base(params: BaseParams, out_dir: Path) -> dict[str, Any]:
    """Make sure the named model's configuration and tokenizer load; record the reference."""
    from transformers import AutoConfig

    from ..hub import load_tokenizer

    assert params.model is not None
    try:
        config = AutoConfig.from_pretrained(params.model)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"base.model: {params.model} cannot be loaded ({str(exc).splitlines()[0]}). Download it first "
            f"(`hf download {params.model}` after `hf auth login`), or set base.model to a local folder"
        ) from None
    load_tokenizer(params.model)
    summary = {"kind": "hub", "model": params.model, "architecture": config.model_type, "hidden_size": config.hidden_size}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


MANIFEST = "manifest.json"


def _recipe(params: BaseParams, family_easy: DifficultySettings) -> dict[str, Any]:
    """Everything that decides a tiny base's weights, as recorded beside a shipped one."""
    return {"base": params.model_dump(exclude={"shipped"}), "family_easy": family_easy.model_dump()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrain_shipped_base(
    params: BaseParams, family_easy: DifficultySettings, shipped_dir: Path, corpus_phase_from: Path | None = None
) -> dict[str, Any]:
    """Pretrain the tiny base and write it, with its recipe and file digests, to `shipped_dir` (committed)."""
    scratch = shipped_dir.with_name(shipped_dir.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    summary = build_tiny_base(params, family_easy, scratch, corpus_phase_from)
    files = {p.name: _sha256(p) for p in sorted((scratch / "model").iterdir())}
    manifest = {"recipe": _recipe(params, family_easy), "files": files, "summary": summary}
    atomic_write_text(scratch / "model" / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(shipped_dir, ignore_errors=True)
    (scratch / "model").rename(shipped_dir)
    shutil.rmtree(scratch, ignore_errors=True)
    return summary


def use_shipped_base(params: BaseParams, family_easy: DifficultySettings, out_dir: Path) -> dict[str, Any]:
    """Check the shipped base against params.yaml's recipe and its recorded digests, then copy it in."""
    assert params.shipped is not None
    shipped = Path(params.shipped)
    rebuild = "rebuild it with `runtime-semantics base pretrain --profile <profile>`"
    try:
        manifest = json.loads((shipped / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{shipped / MANIFEST}: no readable manifest ({exc.__class__.__name__}); {rebuild}") from None
    if manifest.get("recipe") != json.loads(json.dumps(_recipe(params, family_easy))):
        raise UserError(
            f"{shipped / MANIFEST}: recipe differs from params.yaml (base, tasks.family.easy); {rebuild}, or restore the settings"
        )
    for name, digest in manifest.get("files", {}).items():
        path = shipped / name
        if not path.exists() or _sha256(path) != digest:
            raise UserError(f"{path}: sha256 differs from {shipped / MANIFEST} (files.{name}); `git checkout -- {shipped}` or {rebuild}")
    model_dir = out_dir / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    model_dir.mkdir(parents=True)
    for name in manifest["files"]:
        shutil.copyfile(shipped / name, model_dir / name)
    summary = manifest["summary"] | {"shipped": str(shipped), "files": manifest["files"]}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def run_base_stage(params: BaseParams, family_easy: DifficultySettings, out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if params.kind == "hub":
        return check_hub_base(params, out_dir)
    if params.shipped:
        return use_shipped_base(params, family_easy, out_dir)
    return build_tiny_base(params, family_easy, out_dir)


def base_model_source(base: BaseParams, base_dir: Path) -> str:
    """Where the base weights are: the base stage's folder (tiny) or the Hub id / local path (hub)."""
    if base.kind == "hub":
        assert base.model is not None
        return base.model
    model_dir = Path(base_dir) / "model"
    if not (model_dir / "config.json").exists():
        raise UserError(f"{model_dir}: no base model here (run the base stage first: `dvc repro base@<profile>`)")
    return str(model_dir)
