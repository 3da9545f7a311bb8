"""The paper profile's engine: the vLLM command serves the base and both adapters under the
matrix's model names, with the agent's context limit; a failed start is a clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime_semantics.errors import UserError
from runtime_semantics.evaluate import vllm_server
from runtime_semantics.params import load_settings

from helpers import REPO_ROOT


def test_serve_command_carries_the_paper_settings():
    sections = load_settings("paper", REPO_ROOT / "params.yaml").sections
    adapters = {"trained-persistent": Path("a/p"), "trained-stateless": Path("a/s")}
    command = vllm_server.serve_command("Qwen/Qwen3-8B", adapters, sections.evaluate, sections.agent.context_limit_tokens)
    joined = " ".join(command)
    assert "serve Qwen/Qwen3-8B" in joined and "--served-model-name base" in joined
    assert "--max-model-len 40960" in joined and "--max-num-seqs 4" in joined and "--max-lora-rank 64" in joined
    assert command[-2:] == ["trained-persistent=a/p", "trained-stateless=a/s"]
    endpoint = sections.evaluate.endpoint("http://127.0.0.1:8765/v1", "trained-stateless")
    assert endpoint.model == "trained-stateless" and endpoint.api_key_env is None and endpoint.temperature == 0.2


def test_a_server_that_dies_while_starting_is_a_clear_error(tmp_path, monkeypatch):
    sections = load_settings("paper", REPO_ROOT / "params.yaml").sections
    monkeypatch.setattr(vllm_server, "serve_command", lambda *a: [sys.executable, "-c", "print('CUDA out of memory'); raise SystemExit(3)"])
    with pytest.raises(UserError, match="exited with code 3(.|\n)*CUDA out of memory"):
        with vllm_server.serve_models("m", {}, sections.evaluate, 40960, tmp_path / "vllm.log"):
            pass


def test_the_server_ignores_the_models_generation_config_and_requests_send_every_sampling_field():
    """vLLM's default (--generation-config auto) would apply Qwen3's generation_config.json (top_k 20, top_p 0.95,
    temperature 0.6) to every field a request leaves out; params.yaml's decoding must be all that applies."""
    sections = load_settings("paper", REPO_ROOT / "params.yaml").sections
    command = vllm_server.serve_command("Qwen/Qwen3-8B", {}, sections.evaluate, sections.agent.context_limit_tokens)
    assert command[command.index("--generation-config") + 1] == "vllm"
    from runtime_semantics.policies.base import Message, TurnRequest
    from runtime_semantics.policies.endpoint import request_body

    decoding = sections.evaluate.decoding
    body = request_body(sections.evaluate.endpoint("http://127.0.0.1:8765/v1", "base"),
                        TurnRequest(episode_key="e", seed=3, messages=(Message(role="user", content="hi"),)))
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (decoding.temperature, decoding.top_p,
                                                                                      decoding.max_new_tokens, 3)
