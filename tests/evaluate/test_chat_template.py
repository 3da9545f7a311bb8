"""Evaluation sees what training saw: at every turn k of a multi-turn conversation, the prompt's
token ids, as each evaluation engine renders them, equal the training example's prefix.

The base model here is a random tiny Qwen3 with the real Qwen3 tokenizer, saved with Qwen3's
own (Hub) chat template, as a downloaded Qwen3-8B has it: that template drops the empty think
block from earlier assistant turns, the training template (chat_template.jinja) keeps it.
transformers engine: the evaluate stage's own policy factory loads the model and encodes the
request. vLLM engine (not installed here): the exact command line the stage would start, with the
template file it names rendered as vLLM renders a chat request (the served tokenizer's
apply_chat_template with that template and the request's chat_template_kwargs, then tokenized
without special tokens), and the request body the endpoint policy sends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO_ROOT
from runtime_semantics.evaluate import vllm_server
from runtime_semantics.evaluate.stage import EvaluationInputs, policy_factory
from runtime_semantics.params import load_settings
from runtime_semantics.policies.base import Message, TurnRequest
from runtime_semantics.policies.endpoint import EndpointPolicy, request_body
from runtime_semantics.training.base_model import BaseParams
from runtime_semantics.training.train_stage import load_tokenizer_with_template

CONVERSATION = [
    {"role": "system", "content": "You are a CodeAct agent. Write one ```python block per turn."},
    {"role": "user", "content": "Capacity 10, budget 3 inspections. Items: a, b, c."},
    {"role": "assistant", "content": "```python\nprint(inspect('a'))\n```"},
    {"role": "user", "content": "Output:\n{'weight': 4, 'value': 7}"},
    {"role": "assistant", "content": "```python\nw = inspect('b')\nprint(w)\n```"},
    {"role": "user", "content": "Output:\n{'weight': 5, 'value': 3}"},
    {"role": "assistant", "content": "```python\nfinish(['a'])\n```"},
]
TURNS = [i for i, m in enumerate(CONVERSATION) if m["role"] == "assistant"]  # the prompt of turn k is CONVERSATION[:TURNS[k]]


def _hub_template() -> str:
    """Qwen3's own chat template (as on the Hub for Qwen/Qwen3-8B), as TRL ships it for identity checks."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def qwen3_base(tmp_path_factory) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from runtime_semantics.tokenizer import builtin_qwen3_path

    folder = tmp_path_factory.mktemp("qwen3-hub-template")
    tokenizer = AutoTokenizer.from_pretrained(str(builtin_qwen3_path()))
    tokenizer.chat_template = _hub_template()
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=8, tie_word_embeddings=True)
    Qwen3ForCausalLM(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def training_ids(qwen3_base) -> list[int]:
    """The training example's token ids, as the train stage's tokenizer renders the whole conversation."""
    tokenizer = load_tokenizer_with_template(str(qwen3_base))
    return tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]


def _inputs(base: Path, engine: str) -> EvaluationInputs:
    sections = load_settings("paper", REPO_ROOT / "params.yaml").sections
    return EvaluationInputs(profile_dir=base.parent / "profile", params=sections.evaluate.model_copy(update={"engine": engine}),
                            agent=sections.agent, limits=sections.runtime, base=BaseParams(kind="hub", model=str(base)),
                            tokenizer="builtin:qwen3", seed=None, out_dir=base.parent / "profile" / "evaluation" / "base")


def _request(k: int) -> TurnRequest:
    return TurnRequest(episode_key="cell/task", seed=0, messages=tuple(Message(**m) for m in CONVERSATION[: TURNS[k]]))


def _assert_prefixes(prompts: list[list[int]], training: list[int]) -> None:
    for k, prompt in enumerate(prompts):
        assert prompt == training[: len(prompt)], f"turn {k + 1}: the prompt differs from the training prefix"
        assert len(prompt) < len(training)


def test_the_hub_template_alone_would_differ_from_training_from_turn_2(qwen3_base, training_ids):
    from transformers import AutoTokenizer

    hub = AutoTokenizer.from_pretrained(str(qwen3_base))
    prompt = hub.apply_chat_template(CONVERSATION[: TURNS[1]], add_generation_prompt=True, enable_thinking=False, tokenize=True,
                                     return_dict=True)["input_ids"]
    assert prompt != training_ids[: len(prompt)]  # what both engines served before they were given the training template


def test_transformers_engine_prompts_equal_the_training_prefixes(qwen3_base, training_ids, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with policy_factory(_inputs(qwen3_base, "transformers")) as make_policy:
        policy = make_policy("base")
        try:
            prompts = [policy._encode(_request(k)) for k in range(len(TURNS))]
        finally:
            policy.close()
    _assert_prefixes(prompts, training_ids)


def test_vllm_engine_prompts_equal_the_training_prefixes(qwen3_base, training_ids):
    from transformers import AutoTokenizer

    inputs = _inputs(qwen3_base, "vllm")
    command = vllm_server.serve_command(inputs.base_model(), {}, inputs.params, inputs.agent.context_limit_tokens)
    template = Path(command[command.index("--chat-template") + 1]).read_text(encoding="utf-8")
    served = AutoTokenizer.from_pretrained(command[command.index("serve") + 1])  # what vLLM loads: the Hub template
    settings = inputs.params.endpoint("http://127.0.0.1:8765/v1", "base")
    prompts = []
    for k in range(len(TURNS)):
        body = request_body(settings, _request(k))
        text = served.apply_chat_template(body["messages"], chat_template=template, add_generation_prompt=True, tokenize=False,
                                          **body["chat_template_kwargs"])
        prompts.append(served(text, add_special_tokens=False)["input_ids"])
    _assert_prefixes(prompts, training_ids)
    # the endpoint policy counts a prompt (to clamp max_tokens) exactly as the server renders it
    counting = settings.model_copy(update={"context_limit": 40960, "tokenizer": str(qwen3_base), "chat_template": command[command.index("--chat-template") + 1]})
    with EndpointPolicy(counting) as policy:
        assert [policy.prompt_tokens(_request(k)) for k in range(len(TURNS))] == [len(p) for p in prompts]
