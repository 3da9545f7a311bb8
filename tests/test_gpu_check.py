"""benchmarks/gpu_check.sh, the paper profile's first GPU check: its CPU dry run (the Qwen3-8B config, the
estimate it prints beside the measured peak, the plan, the trimmed bitsandbytes wheel's checksum), and the trimmed
wheel itself (CUDA 13 libraries only, installable without an index). The GPU run itself needs a GPU; its code is
run on the CPU on a tiny shape by the slow test."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile

import pytest

from helpers import REPO_ROOT

WHEELS = REPO_ROOT / "benchmarks" / "wheels"
WHEEL = WHEELS / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run([str(REPO_ROOT / "benchmarks" / "gpu_check.sh"), *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_dry_run_builds_the_config_prints_the_estimate_and_the_plan():
    result = _run("--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "hidden_size=4096" in out and "num_key_value_heads=8" in out and "vocab_size=151936" in out
    assert "8.19 B parameters" in out and "16384 tokens" in out and "prepare_kbit_model_keeping_dtypes" in out
    assert "TOTAL at the peak" in out and "18.17" in out and "(sha256 OK)" in out and "nothing run on a GPU" in out


def test_the_trimmed_wheel_holds_only_the_cpu_and_cuda_13_libraries_and_matches_its_checksum():
    assert WHEEL.stat().st_size < 20 * 2**20
    digest = hashlib.sha256(WHEEL.read_bytes()).hexdigest()
    assert (WHEELS / "SHA256SUMS").read_text().split() == [digest, WHEEL.name]
    with zipfile.ZipFile(WHEEL) as wheel:
        libraries = sorted(n.rsplit("/", 1)[-1] for n in wheel.namelist() if n.endswith(".so"))
        record = wheel.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
        assert wheel.testzip() is None
    assert libraries == ["libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so", "libbitsandbytes_cuda132.so"]
    assert "cuda128" not in record and "libbitsandbytes_cuda130.so" in record


@pytest.mark.slow
def test_the_gpu_code_runs_on_a_tiny_shape_on_the_cpu(tmp_path):
    """The QLoRA step and the generation of gpu_check.py, on a tiny Qwen3 on the CPU (about 30 s)."""
    import json

    result = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "gpu_check.py"), "--cpu-tiny", "--out", str(tmp_path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    losses = report["qlora_step"]["losses"]
    assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)
    assert report["qlora_step"]["parameter_dtypes"] == {"torch.bfloat16": report["qlora_step"]["parameter_dtypes"]["torch.bfloat16"]}
    assert all(1 <= n <= 32 for turn in report["generation"]["turns"] for n in turn["new_tokens"])
