"""Evaluation on several GPUs (issue 21, point 3): params.yaml's vLLM tensor- and data-parallel sizes
reach the `vllm serve` command line the evaluate stage starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runtime_semantics.evaluate import vllm_server
from runtime_semantics.params import load_settings

from helpers import REPO_ROOT


def _option(command: list[str], flag: str) -> str:
    assert command.count(flag) == 1, f"{flag} once in {command}"
    return command[command.index(flag) + 1]


def test_the_paper_profile_serves_on_one_gpu():
    sections = load_settings("paper", REPO_ROOT / "params.yaml").sections
    command = vllm_server.serve_command("Qwen/Qwen3-8B", {}, sections.evaluate, sections.agent.context_limit_tokens)
    assert _option(command, "--tensor-parallel-size") == "1" and _option(command, "--data-parallel-size") == "1"


@pytest.mark.parametrize(("tensor", "data"), [(2, 1), (1, 4), (2, 2)])
def test_parallel_sizes_from_params_reach_the_serve_command(tmp_path, tensor, data):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["paper"]["evaluate"]["vllm"] |= {"tensor_parallel_size": tensor, "data_parallel_size": data}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    sections = load_settings("paper", tmp_path / "params.yaml").sections
    adapters = {"trained-persistent": Path("a/p"), "trained-stateless": Path("a/s")}
    command = vllm_server.serve_command("Qwen/Qwen3-8B", adapters, sections.evaluate, sections.agent.context_limit_tokens)
    assert _option(command, "--tensor-parallel-size") == str(tensor)
    assert _option(command, "--data-parallel-size") == str(data)
    assert command[-2:] == ["trained-persistent=a/p", "trained-stateless=a/s"], "the LoRA modules stay last"


def test_a_parallel_size_below_one_names_the_key(tmp_path):
    from runtime_semantics.errors import UserError

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["paper"]["evaluate"]["vllm"]["data_parallel_size"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(UserError, match="data_parallel_size"):
        load_settings("paper", tmp_path / "params.yaml")
