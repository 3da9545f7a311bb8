"""A shipped tiny base: rebuilt from its recipe, verified by digest, refused when tampered with or stale."""

from __future__ import annotations

import json

import pytest

from helpers import TINY_BASE
from runtime_semantics.errors import UserError
from runtime_semantics.training.base_model import BaseParams, pretrain_shipped_base, run_base_stage
from runtime_semantics.training.copy_documents import copy_documents


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, family):
    folder = tmp_path_factory.mktemp("shipped") / "tiny-base"
    params = BaseParams.model_validate(TINY_BASE | {"shipped": str(folder)})
    summary = pretrain_shipped_base(params, family.easy, folder)
    return params, folder, summary


def test_the_stage_copies_a_verified_shipped_base_and_records_its_digests(shipped, family, tmp_path):
    params, folder, summary = shipped
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert len(summary["stdlib_sha256"]) == 64 and summary["python_version"].count(".") == 2
    out = run_base_stage(params, family.easy, tmp_path / "base")
    assert out["files"] == manifest["files"] and out["steps"] == summary["steps"]
    assert (tmp_path / "base" / "model" / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert not (folder.parent / "tiny-base.partial").exists()


def test_a_changed_weight_file_is_refused_with_the_file_and_the_fix(shipped, family, tmp_path):
    params, folder, _ = shipped
    weights = folder / "model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(UserError, match=r"model\.safetensors: sha256 differs from .*manifest\.json \(files\.model\.safetensors\)"):
            run_base_stage(params, family.easy, tmp_path / "base")
    finally:
        weights.write_bytes(original)


def test_a_recipe_edited_in_params_is_refused_until_the_base_is_rebuilt(shipped, family, tmp_path):
    params, _, _ = shipped
    edited = params.model_copy(update={"pretraining": params.pretraining.model_copy(update={"steps": 3})})
    with pytest.raises(UserError, match="recipe differs from params.yaml.*base pretrain"):
        run_base_stage(edited, family.easy, tmp_path / "base")


def test_copy_documents_are_seeded_single_turn_chats_whose_code_copies_the_given_values():
    first, again, other = list(copy_documents(6, 1)), list(copy_documents(6, 1)), list(copy_documents(6, 2))
    assert first == again and first != other
    for user, assistant in first:
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        code = assistant["content"].split("```python\n")[1]
        numbers = [token for token in user["content"].replace(",", " ").replace(".", " ").split() if token.isdigit()]
        assert numbers and all(number in code for number in numbers)


DRILLS = [
    {"steps": 2, "seq_len": 64, "batch_size": 2, "learning_rate": 0.001, "max_run": 10, "gapped": False, "seed": 0},
    {"steps": 2, "seq_len": 128, "batch_size": 2, "learning_rate": 0.001, "max_run": 10, "gapped": True, "runs_per_row": 3, "text_share": 0.5, "seed": 1},
]


@pytest.fixture(scope="module")
def drilled(shipped, family, tmp_path_factory):
    """A base with drill phases whose corpus phase is the shipped fixture's."""
    _, folder, _ = shipped
    params = BaseParams.model_validate(TINY_BASE | {"pretraining": TINY_BASE["pretraining"] | {"drills": DRILLS}})
    out = tmp_path_factory.mktemp("drilled") / "resumed"
    return params, out, pretrain_shipped_base(params, family.easy, out, corpus_phase_from=folder)


def test_drill_phases_from_a_shipped_corpus_phase_give_the_weights_a_rebuild_from_scratch_gives(shipped, drilled, family, tmp_path):
    folder = shipped[1]
    params, out, resumed = drilled
    scratch = pretrain_shipped_base(params, family.easy, tmp_path / "scratch")
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "scratch" / "model.safetensors").read_bytes()
    assert [p["steps"] for p in resumed["drill_phases"]] == [2, 2] and set(resumed["copy_accuracy"]) == {"0", "100", "400", "1500"}
    assert resumed["losses"] == scratch["losses"] and resumed["corpus_phase_from"] == json.loads((folder / "manifest.json").read_text())["files"]["model.safetensors"]


def test_only_a_drill_free_base_of_the_same_recipe_stands_in_for_the_corpus_phase(shipped, drilled, family, tmp_path):
    folder = shipped[1]
    params, out, _ = drilled
    other = BaseParams.model_validate(TINY_BASE | {"pretraining": TINY_BASE["pretraining"] | {"seed": 2, "drills": DRILLS}})
    with pytest.raises(UserError, match=r"manifest\.json: recipe is not this profile's recipe without drills"):
        pretrain_shipped_base(other, family.easy, tmp_path / "other", corpus_phase_from=folder)
    with pytest.raises(UserError, match="recipe is not this profile's recipe without drills"):
        pretrain_shipped_base(params, family.easy, tmp_path / "again", corpus_phase_from=out)


def test_a_gapped_drill_phase_whose_runs_cannot_fit_its_rows_is_refused_with_the_sizes():
    with pytest.raises(ValueError, match=r"max_run x runs_per_row x 2 \(120\) exceeds seq_len \(64\)"):
        BaseParams.model_validate(TINY_BASE | {"pretraining": TINY_BASE["pretraining"] | {"drills": [DRILLS[1] | {"seq_len": 64, "max_run": 20}]}})
