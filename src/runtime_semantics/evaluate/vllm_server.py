"""Serve the base model and both LoRA adapters with vLLM (the paper's engine) for one stage run.

One `vllm serve` process holds the base weights once; each adapter is a LoRA module served
under its own model name (`trained-persistent`, `trained-stateless`), so every cell talks
to the same OpenAI-compatible server. The server's context length is the agent's context
limit (paper: 40,960) and `max_num_seqs` bounds the concurrent sequences (paper: 4).

Two flags keep evaluation what training saw and what params.yaml says:
`--chat-template` serves the training template (src/runtime_semantics/chat_template.jinja: an
empty think block on every assistant turn; Qwen3's own template drops it from earlier turns, so
every prompt from turn 2 on would differ from its training prefix), and `--generation-config vllm`
keeps vLLM from applying the model's generation_config.json (Qwen3's sets top_k, top_p and
temperature) to every field a request does not send.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..tokenizer import CHAT_TEMPLATE_PATH
from .settings import EvaluateParams

log = logging.getLogger(__name__)
BASE_NAME = "base"
VLLM_PYTHON_ENV = "RUNTIME_SEMANTICS_VLLM_PYTHON"  # vLLM's own environment (the Docker image: /opt/vllm/bin/python)


def vllm_python() -> str:
    return os.environ.get(VLLM_PYTHON_ENV) or sys.executable


def vllm_available() -> bool:
    if os.environ.get(VLLM_PYTHON_ENV):
        return os.access(os.environ[VLLM_PYTHON_ENV], os.X_OK)
    return importlib.util.find_spec("vllm") is not None


@dataclass(frozen=True)
class ServedModels:
    base_url: str

    @staticmethod
    def name(model: str) -> str:
        """The served model name of a matrix model (the adapters keep their matrix names)."""
        return model


def serve_command(base_model: str, adapters: Mapping[str, Path | None], params: EvaluateParams, context_limit: int) -> list[str]:
    """The `vllm serve` command line for the base model plus every adapter."""
    assert params.vllm is not None
    command = [
        vllm_python(), "-m", "vllm.entrypoints.cli.main", "serve", base_model,
        "--served-model-name", BASE_NAME, "--host", "127.0.0.1", "--port", str(params.vllm.port),
        "--max-model-len", str(context_limit), "--max-num-seqs", str(params.vllm.max_num_seqs),
        "--gpu-memory-utilization", str(params.vllm.gpu_memory_utilization), "--dtype", "bfloat16", "--seed", "0",
        "--tensor-parallel-size", str(params.vllm.tensor_parallel_size), "--data-parallel-size", str(params.vllm.data_parallel_size),
        "--chat-template", str(CHAT_TEMPLATE_PATH), "--generation-config", "vllm",
    ]
    modules = [f"{name}={path}" for name, path in adapters.items() if path is not None]
    if modules:
        command += ["--enable-lora", "--max-lora-rank", str(params.vllm.max_lora_rank), "--max-loras", str(len(modules)),
                    "--lora-modules", *modules]
    return command


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, timeout_s: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
            raise UserError(f"vLLM server exited with code {process.returncode} while starting (log: {log_file}):\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    raise UserError(f"vLLM server not ready after {timeout_s:.0f} s (evaluate.vllm.startup_timeout_s; log: {log_file})")


@contextmanager
def serve_models(
    base_model: str, adapters: Mapping[str, Path | None], params: EvaluateParams, context_limit: int, log_file: Path
) -> Iterator[ServedModels]:
    """Start the server, wait for /health, yield its address, stop it at the end."""
    assert params.vllm is not None
    if shutil.which("nvidia-smi") is None:
        log.warning("no nvidia-smi on PATH: vLLM needs a CUDA GPU")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = serve_command(base_model, adapters, params, context_limit)
    log.info("starting vLLM: %s", " ".join(command))
    with log_file.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            root = f"http://127.0.0.1:{params.vllm.port}"
            _wait_until_healthy(process, f"{root}/health", params.vllm.startup_timeout_s, log_file)
            yield ServedModels(base_url=f"{root}/v1")
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
