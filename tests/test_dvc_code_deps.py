"""Every dvc.yaml stage lists the code it runs as deps, so editing that code marks the stage changed.

A stage's code is the import closure (runtime_semantics.code_closure, the same function the
resumable stages' code fingerprints use) of the modules its CLI command imports: the stage's
`cmd` names a command (`scripts/run-stage evaluate ...`), cli.py's function for it imports its
stage modules inside its body. cli.py's own module-level imports (params, files, errors) are
shared by every command and not counted; `tracking` only records the run in MLflow
(artifacts/mlflow/, no stage's output). A dep that is a folder covers every file in it.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT
from runtime_semantics.code_closure import DATA_FILES, NOT_READ, PACKAGE, PACKAGE_ROOT, code_files

CLI = PACKAGE_ROOT / "cli.py"
NOT_STAGE_CODE = {f"{PACKAGE}.tracking"}


def _cli_commands() -> dict[tuple[str, ...], ast.FunctionDef]:
    """(group, command) or (command,) -> the cli.py function that runs it."""
    tree = ast.parse(CLI.read_text(encoding="utf-8"))
    groups = {"app": ()}
    for node in ast.walk(tree):  # app.add_typer(tasks_app, name="tasks")
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "app.add_typer":
            name = next(k.value.value for k in node.keywords if k.arg == "name")
            groups[node.args[0].id] = (name,)
    commands = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute) and decorator.func.attr == "command":
                commands[groups[decorator.func.value.id] + (decorator.args[0].value,)] = node
    return commands


def _entry_modules(function: ast.FunctionDef) -> tuple[str, ...]:
    modules = set()
    for node in ast.walk(function):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            modules.add(f"{PACKAGE}.{node.module}")
    return tuple(sorted(modules - NOT_STAGE_CODE))


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _command_words(cmd: str) -> tuple[str, ...]:
    words = shlex.split(cmd)
    assert words[0] == "scripts/run-stage", cmd
    return tuple(w for w in words[1:3] if not w.startswith("-"))[: 2]


def _stage_code(name: str, stage: dict) -> tuple[str, ...]:
    body = stage.get("do", stage)
    commands = _cli_commands()
    words = _command_words(body["cmd"])
    function = commands.get(words) or commands.get(words[:1])
    assert function is not None, f"{name}: no cli.py command for `{body['cmd']}`"
    return code_files(*_entry_modules(function))


def missing_deps(name: str, stage: dict) -> list[str]:
    """One line per code file the stage runs that none of its deps covers."""
    body = stage.get("do", stage)
    deps = [d.rstrip("/") for d in body.get("deps", []) if isinstance(d, str)]
    lines = []
    for relative in _stage_code(name, stage):
        path = f"src/{relative}"
        if not any(path == dep or path.startswith(dep + "/") for dep in deps):
            lines.append(f"dvc.yaml stage {name!r}: deps miss {path} (its command `{body['cmd']}` runs it)")
    return lines


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_deps_cover_the_code_it_runs(name):
    lines = missing_deps(name, _stages()[name])
    assert not lines, "\n".join(lines)


def test_every_file_the_package_reads_is_claimed_by_a_module():
    """A new template must be named in code_closure.DATA_FILES, or it would be in no stage's deps or fingerprint."""
    claimed = {p for patterns in DATA_FILES.values() for pattern in patterns for p in PACKAGE_ROOT.glob(pattern)}
    claimed |= {PACKAGE_ROOT / p for p in NOT_READ}
    unclaimed = [p.relative_to(PACKAGE_ROOT).as_posix() for p in sorted(PACKAGE_ROOT.rglob("*"))
                 if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts and p not in claimed]
    assert not unclaimed, f"{unclaimed[0]}: a file in the package no module claims (add it to code_closure.DATA_FILES)"


def test_a_removed_dep_is_named():
    stage = _stages()["evaluate"]  # a matrix stage: its body is the stage itself
    without = {**stage, "deps": [d for d in stage["deps"] if d != "src/runtime_semantics/tasks"]}
    lines = sorted(set(missing_deps("evaluate", without)) - set(missing_deps("evaluate", stage)))
    assert lines and all("src/runtime_semantics/tasks/" in line for line in lines)
    assert lines[0].startswith("dvc.yaml stage 'evaluate': deps miss src/runtime_semantics/tasks/")


def test_the_closure_follows_lazy_and_spawned_modules():
    files = code_files(f"{PACKAGE}.runtime.runtime")
    assert f"{PACKAGE}/runtime/zygote.py" in files  # started as `python -m runtime_semantics.runtime.zygote`
    assert f"{PACKAGE}/runtime/worker.py" in files
    prompts = code_files(f"{PACKAGE}.agent.prompts")
    assert f"{PACKAGE}/agent/prompts/system.j2" in prompts and f"{PACKAGE}/chat_template.jinja" not in prompts
