"""params.yaml itself: a setting shared by every profile is written once (YAML anchors), the file
reads the same to PyYAML (params.py) and to DVC's parser (ruamel), and its comments hold no pilot results."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
import yaml

from helpers import REPO_ROOT
from runtime_semantics.params import PROFILES, Settings, load_settings

PARAMS = REPO_ROOT / "params.yaml"

# Leaf keys written out literally, with the same value, in profiles (`smoke`, `mini`, `paper`).
# Before the anchors: 34 in all three profiles and 53 in two or more. Now only the batch shape
# (train.micro_batch_size, train.processes) is written in all three: each profile's global batch
# reads off its own lines. Lower these when you share more; do not raise them: write a setting
# every profile shares once, in smoke's anchored block, and reuse it with `<<: *name`.
MAX_IN_ALL_PROFILES = 2
MAX_IN_TWO_OR_MORE = 21


def literal_leaves(text: str) -> dict[str, dict[str, object]]:
    """Profile -> {dotted key: value} for every leaf written out in that profile's text.

    Works on the composed YAML graph, before aliases and merge keys are resolved: an alias
    (`*name`, `<<: *name`) reuses a node written elsewhere and contributes nothing, while an
    anchored node counts where it is written (`<<: &name` merges its keys into the profile's).
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    seen: set[int] = set()
    out: dict[str, dict[str, object]] = {profile: {} for profile in PROFILES}

    def value(node):
        if isinstance(node, yaml.SequenceNode):
            return tuple(value(item) for item in node.value)
        if isinstance(node, yaml.MappingNode):
            return tuple((value(k), value(v)) for k, v in node.value)
        return (node.tag, node.value)

    def walk(node: yaml.MappingNode, path: tuple[str, ...], sink: dict | None) -> None:
        for key, child in node.value:
            if id(child) in seen:  # an alias of a node written earlier in the file
                continue
            seen.add(id(child))
            sub = path if key.value == "<<" else (*path, key.value)
            if isinstance(child, yaml.MappingNode):
                walk(child, sub, sink)
            elif sink is not None:
                sink[".".join(sub)] = value(child)

    for key, section in root.value:  # document order, so an anchor is seen before its aliases
        seen.add(id(section))
        if isinstance(section, yaml.MappingNode):
            walk(section, (), out.get(key.value))
    return out


def repeated(text: str) -> dict[int, list[str]]:
    """Number of profiles -> the dotted keys written out with the same value in that many profiles."""
    holders: dict[tuple[str, object], list[str]] = defaultdict(list)
    for profile, leaves in literal_leaves(text).items():
        for key, val in leaves.items():
            holders[(key, val)].append(profile)
    by_count: dict[int, list[str]] = defaultdict(list)
    for (key, _), profiles in holders.items():
        by_count[len(profiles)].append(key)
    return {count: sorted(keys) for count, keys in by_count.items()}


def test_the_counter_sees_copies_and_not_aliases():
    copied = """
smoke: {train: {seed: 1, lr: 1}, analyze: {alpha: 0.05}}
mini: {train: {seed: 1, lr: 2}, analyze: {alpha: 0.05}}
paper: {train: {seed: 1, lr: 3}, analyze: {alpha: 0.05}}
"""
    shared = """
smoke: {train: {<<: &train {seed: 1}, lr: 1}, analyze: &analyze {alpha: 0.05}}
mini: {train: {<<: *train, lr: 2}, analyze: *analyze}
paper: {train: {<<: *train, lr: 3}, analyze: *analyze}
"""
    assert yaml.safe_load(copied) == yaml.safe_load(shared)
    assert repeated(copied)[3] == ["analyze.alpha", "train.seed"]
    assert 3 not in repeated(shared) and 2 not in repeated(shared)
    assert literal_leaves(shared)["smoke"] == {"train.seed": ("tag:yaml.org,2002:int", "1"), "train.lr": ("tag:yaml.org,2002:int", "1"),
                                               "analyze.alpha": ("tag:yaml.org,2002:float", "0.05")}  # fmt: skip


def test_settings_shared_by_every_profile_are_written_once():
    counts = repeated(PARAMS.read_text(encoding="utf-8"))
    in_all = counts.get(3, [])
    in_two_or_more = sorted(counts.get(3, []) + counts.get(2, []))
    assert len(in_all) <= MAX_IN_ALL_PROFILES, f"written out in every profile (share them in smoke's anchors): {in_all}"
    assert len(in_two_or_more) <= MAX_IN_TWO_OR_MORE, f"written out in two or more profiles: {in_two_or_more}"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_parses_to_valid_settings(profile):
    settings = load_settings(profile, PARAMS)
    assert isinstance(settings, Settings) and settings.profile == profile


def test_the_anchors_resolve_as_written():
    paper = load_settings("paper", PARAMS).sections
    mini = load_settings("mini", PARAMS).sections
    smoke = load_settings("smoke", PARAMS).sections
    assert paper.analyze == mini.analyze == smoke.analyze
    assert (paper.tasks.eval_hard.difficulty, paper.tasks.eval_hard.seed, paper.tasks.eval_hard.n) == ("hard", 123456789, 100)
    assert (paper.train.lora.r, paper.train.lora.dropout, paper.train.quantization.load_in_4bit) == (64, 0.05, True)
    assert (mini.train.quantization.quant_type, mini.train.quantization.load_in_4bit) == ("nf4", False)
    assert (paper.runtime.wall_timeout_s, paper.runtime.memory_mb, smoke.runtime.wall_timeout_s) == (300, 1024, 30)
    family = load_settings("mini", PARAMS).task_family  # the paper's rules at mini's size
    assert (family.easy.n_classes, family.easy.max_attempts, family.hard.weight.max) == (6, 10000, 50)


def test_dvc_reads_the_same_values_as_params_py():
    ruamel = pytest.importorskip("ruamel.yaml")  # DVC's parser for params.yaml (typ="safe")
    text = PARAMS.read_text(encoding="utf-8")
    assert ruamel.YAML(typ="safe").load(text) == yaml.safe_load(text)


def test_every_reuse_is_a_merge_that_shares_no_mapping():
    """`<<: *name` only, never a bare `*name`, and what a merge brings in holds no mapping the
    profile does not write itself: then `dvc exp run -S mini.analyze.seed=1` (or any one key)
    writes that key into that profile only, instead of editing a mapping other profiles share."""
    root = yaml.compose(PARAMS.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    seen: set[int] = set()
    bare, shared_mappings = [], []

    def walk(node, path):
        own = {key.value for key, _ in node.value if key.value != "<<"}
        for key, child in node.value:
            where = ".".join((*path, key.value))
            if key.value == "<<" and isinstance(child, yaml.MappingNode):
                shared_mappings.extend(f"{'.'.join(path)}.{k.value}" for k, v in child.value
                                       if isinstance(v, yaml.MappingNode) and k.value not in own)  # fmt: skip
            if id(child) in seen:
                if key.value != "<<":
                    bare.append(where)
                continue
            seen.add(id(child))
            if isinstance(child, yaml.MappingNode):
                walk(child, path if key.value == "<<" else (*path, key.value))

    walk(root, ())
    assert not bare, f"reuse these with `<<: *name` (a bare alias shares one mapping between sections): {bare}"
    assert not shared_mappings, f"write these mappings in the merging section itself: {shared_mappings}"


@pytest.mark.parametrize("override", ["mini.analyze.seed=7", "smoke.train.epochs=7", "paper.student.tokenizer=x", "mini.tasks.eval_hard.seed=7"])
def test_a_dvc_set_param_changes_only_the_key_it_names(tmp_path, override):
    hydra = pytest.importorskip("dvc.utils.hydra")  # what `dvc exp run -S` runs on params.yaml
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS.read_text(encoding="utf-8"), encoding="utf-8")
    hydra.apply_overrides(str(path), [override])
    key, _, value = override.partition("=")
    expected = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    expected = yaml.safe_load(yaml.safe_dump(expected))  # no shared objects
    *parents, leaf = key.split(".")
    node = expected
    for part in parents:
        node = node[part]
    node[leaf] = yaml.safe_load(value)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == expected


def test_comments_say_what_a_setting_is_not_what_pilots_measured():
    comments = [line.partition("#")[2] for line in PARAMS.read_text(encoding="utf-8").splitlines() if "#" in line]
    pilot_results = [c for c in comments if re.search(r"tokens/s|held-out loss|side by side|overfit probe,|\d(\.\d+)?x the ", c)]
    assert not pilot_results, f"move these to docs/mini-pilots.md (Settings history): {pilot_results}"
