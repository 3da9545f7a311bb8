"""The code a stage runs: the import closure of its module within this package, and its data files.

One source for two things: the code fingerprints that guard a resumable stage folder (traces,
train, evaluate) and the check that every dvc.yaml stage lists its code as deps
(tests/test_dvc_code_deps.py). The closure is found by reading the source (ast), not by
importing it: every `import`/`from ... import` of a runtime_semantics module anywhere in a
file (also inside functions; not under `if TYPE_CHECKING:`), the `__init__.py` of each package
on the way, a module named by a string such as `"runtime_semantics.runtime.zygote"` (started
with `python -m`), every module of a package whose `__init__` imports its modules by computed
name (`import_module(f".{name}", __name__)`), and the non-Python files a module reads at run
time (DATA_FILES).
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE = "runtime_semantics"
PACKAGE_ROOT = Path(__file__).resolve().parent
SRC_ROOT = PACKAGE_ROOT.parent

# Non-Python files read at run time, per module (paths relative to the package, globs allowed).
# tests/test_dvc_code_deps.py fails on a file in the package that no module claims.
DATA_FILES: dict[str, tuple[str, ...]] = {
    "runtime_semantics.tokenizer": ("chat_template.jinja",),
    "runtime_semantics.agent.prompts": ("agent/prompts/*.j2",),
}
# Files in the package that no code reads (documentation).
NOT_READ = ("runtime/THREAT_MODEL.md",)
# The command line calls the stages; a stage module that imports it back (to run a command in
# a launched process) does not make the whole CLI, and every other stage, its code.
ENTRY_POINTS = frozenset({f"{PACKAGE}.cli", f"{PACKAGE}.__main__"})

_MODULE_STRING = re.compile(rf"^{PACKAGE}(\.\w+)+$")


def module_path(module: str) -> Path | None:
    """The file of a runtime_semantics module (a package's `__init__.py`), or None."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = SRC_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    if base.is_dir():  # a namespace package (no __init__.py)
        return base
    return None


def _is_package(module: str) -> bool:
    path = module_path(module)
    return path is not None and (path.is_dir() or path.name == "__init__.py")


def _resolve(module: str, level: int, name: str | None) -> str:
    """The absolute name of `from <level dots><name> import ...` inside `module`."""
    if level == 0:
        return name or ""
    parts = module.split(".")
    package = parts if _is_package(module) else parts[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return skipped


@lru_cache(maxsize=None)
def _direct_imports(module: str) -> frozenset[str]:
    path = module_path(module)
    if path is None or path.is_dir():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_blocks(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node.level, node.module)
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names if module_path(f"{target}.{alias.name}") is not None}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            found.add(node.value)
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and len(node.args) == 2
              and not isinstance(node.args[0], ast.Constant)):
            # import_module(<computed>, __name__): any module of this package
            package_dir = path.parent
            found |= {_resolve(module, 1, p.stem) for p in package_dir.glob("*.py") if p.name != "__init__.py"}
    found = {name for name in found if module_path(name) is not None and name not in ENTRY_POINTS}
    for name in list(found):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
        parts = name.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return frozenset(found - {module})


@lru_cache(maxsize=None)
def module_closure(*entries: str) -> tuple[str, ...]:
    """The runtime_semantics modules that running `entries` imports, themselves included, sorted."""
    seen: set[str] = set()
    todo = [e for e in entries]
    for entry in todo:
        if module_path(entry) is None:
            raise ValueError(f"{entry}: not a module of {PACKAGE}")
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_direct_imports(module) - seen)
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def code_files(*entries: str) -> tuple[str, ...]:
    """The files (relative to src/, posix) that running `entries` reads as code or templates, sorted."""
    files: set[str] = set()
    for module in module_closure(*entries):
        path = module_path(module)
        assert path is not None
        if path.is_file():
            files.add(path.relative_to(SRC_ROOT).as_posix())
        for pattern in DATA_FILES.get(module, ()):
            matched = sorted(PACKAGE_ROOT.glob(pattern))
            if not matched:
                raise FileNotFoundError(f"{PACKAGE_ROOT / pattern}: data file of {module} not found (code_closure.DATA_FILES)")
            files |= {p.relative_to(SRC_ROOT).as_posix() for p in matched}
    return tuple(sorted(files))


def digest_code(digest: Any, *entries: str) -> None:
    """Feed the code and data files of `entries`' closure (path and bytes, in path order) into a fingerprint.

    Deterministic and machine-independent: paths are relative to src/ and sorted."""
    for relative in code_files(*entries):
        digest.update(relative.encode() + b"\0" + (SRC_ROOT / relative).read_bytes())


def code_fingerprint(*entries: str) -> str:
    digest = hashlib.sha256()
    digest_code(digest, *entries)
    return digest.hexdigest()
