"""The preflight: before any work, each thing a profile needs is reported as there or missing,
with how to supply it; everything is read from disk (no network)."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import pytest
import yaml

from runtime_semantics import preflight
from runtime_semantics.preflight import find_model, run_checks

from helpers import REPO_ROOT, run_cli

MODEL = "Qwen/Qwen3-8B"


def params_with(tmp_path: Path, **paper_sections) -> Path:
    """params.yaml with some of the paper profile's sections replaced."""
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for section, value in paper_sections.items():
        raw["paper"][section] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def cached_model(cache: Path, repo_id: str = MODEL, shards: int = 2, present: int | None = None) -> Path:
    """A Hugging Face cache entry as `hf download` leaves it: refs/main -> snapshots/<commit>/."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    (snapshot / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {f"w{i}": n for i, n in enumerate(names)}}))
    for name in names[: shards if present is None else present]:
        (snapshot / name).write_bytes(b"\0" * 1024)
    return snapshot


@pytest.fixture
def no_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def fake_gpu(monkeypatch, total_gib: float) -> None:
    import torch

    props = namedtuple("Props", "name total_memory")("Fake GPU", int(total_gib * 2**30))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_a_cached_model_is_found_offline_and_an_incomplete_one_is_not(tmp_path):
    cache = tmp_path / "hub"
    snapshot = cached_model(cache)
    assert find_model(MODEL, cache) == (snapshot, "")
    folder, why = find_model("Qwen/Qwen3-0.6B", cache)
    assert folder is None and "neither a local folder nor in the Hugging Face cache" in why
    partial = tmp_path / "partial"
    cached_model(partial, shards=3, present=1)
    folder, why = find_model(MODEL, partial)
    assert folder is None and "2 of 3 weight shards missing" in why


def test_a_local_model_folder_counts_when_it_holds_config_and_weights(tmp_path):
    folder = tmp_path / "qwen"
    folder.mkdir()
    assert find_model(str(folder))[0] is None
    (folder / "config.json").write_text("{}")
    assert "no weight files" in find_model(str(folder))[1]
    (folder / "model.safetensors").write_bytes(b"\0")
    assert find_model(str(folder)) == (folder, "")


def test_paper_profile_on_a_cpu_machine_names_each_missing_thing_and_its_remedy(tmp_path, monkeypatch, no_gpu):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    checks = by_name(run_checks("paper", REPO_ROOT / "params.yaml", tmp_path / "artifacts", hf_cache=tmp_path / "empty"))
    assert not checks["gpu"].ok and "--profile mini" in checks["gpu"].fix
    assert not checks["model"].ok and f"hf download {MODEL}" in checks["model"].fix and "paper.base.model" in checks["model"].fix
    teacher = checks["teacher"]
    assert not teacher.ok and "GEMINI_API_KEY is not set" in teacher.detail
    assert "export GEMINI_API_KEY=" in teacher.fix and "data fetch-published" in teacher.fix and "paper.traces.teacher: published" in teacher.fix
    assert "disk" in checks  # reported either way; its threshold is tested below


def test_paper_profile_is_ready_with_gpu_model_and_key(tmp_path, monkeypatch):
    fake_gpu(monkeypatch, 24.0 * 0.98)
    monkeypatch.setenv("GEMINI_API_KEY", "secret-value")
    cache = tmp_path / "hub"
    cached_model(cache)
    checks = run_checks("paper", REPO_ROOT / "params.yaml", tmp_path / "artifacts", hf_cache=cache)
    missing = [c for c in checks if not c.ok and c.name != "disk"]
    assert missing == [], missing
    assert "secret-value" not in " ".join(c.detail + c.fix for c in checks)  # the key's value is never printed


def test_too_little_vram_is_reported(tmp_path, monkeypatch):
    fake_gpu(monkeypatch, 16.0)
    checks = by_name(run_checks("paper", REPO_ROOT / "params.yaml", tmp_path, only=("gpu", "vram")))
    assert checks["gpu"].ok and not checks["vram"].ok and "16.0 GiB" in checks["vram"].detail


def test_teacher_traces_already_made_need_no_key(tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    for runtime in ("persistent", "stateless"):
        (tmp_path / "paper" / "traces" / runtime).mkdir(parents=True)
        (tmp_path / "paper" / "traces" / runtime / "summary.json").write_text("{}")
    (teacher,) = run_checks("paper", REPO_ROOT / "params.yaml", tmp_path, only=("teacher",))
    assert teacher.ok and "already" in teacher.detail


def test_published_teacher_needs_its_folder(tmp_path):
    traces = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["paper"]["traces"]
    traces |= {"teacher": "published", "published_dir": str(tmp_path / "train-data")}
    params = params_with(tmp_path, traces=traces)
    (teacher,) = run_checks("paper", params, tmp_path / "artifacts", only=("teacher",))
    assert not teacher.ok and "data fetch-published" in teacher.fix
    (tmp_path / "train-data").mkdir()
    (teacher,) = run_checks("paper", params, tmp_path / "artifacts", only=("teacher",))
    assert teacher.ok


def test_disk_space_below_the_need_is_reported(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage(0, 0, 5 * 2**30))
    check = preflight.check_disk(tmp_path / "artifacts", model_missing=True, hf_cache=tmp_path / "hub")
    assert not check.ok and "5 GiB free" in check.detail
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage(0, 0, 500 * 2**30))
    assert preflight.check_disk(tmp_path / "artifacts", model_missing=True, hf_cache=tmp_path / "hub").ok


def test_cpu_profiles_need_nothing_from_the_machine(tmp_path):
    for profile in ("smoke", "mini"):
        assert [c.name for c in run_checks(profile, REPO_ROOT / "params.yaml", tmp_path)] == ["teacher"]
        assert all(c.ok for c in run_checks(profile, REPO_ROOT / "params.yaml", tmp_path))


def test_cli_exit_codes(tmp_path):
    ready = run_cli("preflight", "--profile", "mini", "--artifacts", str(tmp_path))
    assert ready.returncode == 0 and "mini: ready" in ready.stdout
    missing = run_cli("preflight", "--profile", "paper", "--check", "model", "--quiet", "--artifacts", str(tmp_path),
                      env={"HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"})
    assert missing.returncode == 3 and missing.stdout.startswith("model: ")
    unknown = run_cli("preflight", "--check", "gpus")
    assert unknown.returncode == 2 and "unknown check 'gpus'" in unknown.stderr
