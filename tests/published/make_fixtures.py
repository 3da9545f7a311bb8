"""Regenerate tests/published/fixtures/: small copies of the three published datasets, in the authors' formats.

    .venv/bin/python tests/published/make_fixtures.py

The tasks are instances of our own generator written in the authors' task format (both key
spellings, plus fields our format has no place for). The traces come from scripted agents run
in a small in-process re-creation of the authors' harness (their exec-based interpreter with
`json` pre-imported, print captured to a buffer, their tool return values and exceptions,
their event log and result files), so a replay in our sandbox compares two independent
implementations. The layout and formats are the real ones (the authors' benchmark runner,
JSON trace logger, training-data converter and generator CLI; docs/published-data.md):
result status "completed" | "timeout" | "error"; files `knapsack-knapsack-<n>.json`, `.trace.json`,
`.trace.html` and a per-cell `summary_<agent>-knapsack.json` computed as their runner does; no
`globals` in a logged step; teacher conversations cut at 57,344 characters. Deliberate oddities,
each exercised by a test:
  - persistent_stateless_easy: a persistent-style agent in the stateless runtime hits NameErrors
    for variables it defined earlier, recovers, and repeats the mistake (missing variables,
    recovery loops);
  - base_persistent_hard: a turn with two code blocks, a cut-off model call (a harness message
    and no step), a turn without code, and an `import numpy` their interpreter allowed and our
    sandbox refuses (an explained divergence);
  - stateless_persistent_hard: episode 0 has no result file (its score comes from a replay);
    episode 1's recorded output of turn 1 was altered (an unexplained divergence);
  - base_persistent_hard episode 1: status error: the harness failed after a model call, which
    has ModelCall/ModelResponse events but no step, and is counted in the summary's token_usage;
  - stateless_stateless_easy episode 1: status timeout: the trace stops without a FinishEvent;
  - train/persistent line 3: a teacher conversation their converter cut at 57,344 characters,
    losing its finish() call;
  - tasks: easy 0001 uses the dataset card's key spelling and carries unknown fields; easy is in
    the generator CLI's layout (easy/tasks/knapsack/ + manifest.json), hard in hard/knapsack/.
"""

from __future__ import annotations

import builtins
import io
import json
import shutil
import statistics
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from runtime_semantics.tasks import TaskInstance, generate_instance  # noqa: E402
from runtime_semantics.tasks.settings import TaskFamily  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SYSTEM_PROMPT = "You are a CodeAct-style autonomous agent. Reason briefly, then write one ```python block per turn."
RUNTIME_NOTES = {
    True: "Runtime state: PERMANENT. Globals persist between code blocks.",
    False: "Runtime state: Python variables DO NOT persist across code blocks; each code block runs in a fresh environment.",
}
TOOL_PROMPT = "Available tools:\ndef list_items() -> str\ndef inspect(item_id: str) -> str\ndef take_item(item_id: str) -> None\ndef finish() -> None"
LENGTH_CUT = "LLM ended unexpectedly (reason: length). Please continue."
CRASH_AFTER_CALL = "the harness raises after this model call"  # a turn marker: status error
CONVERTER_MAX_CHARS = int(16384 * 3.5)  # their training-data converter's cut


# -- the authors' harness, re-created in-process (fixture code is ours, so exec is fine here) --
class ToolRuntimeException(Exception):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def __str__(self) -> str:
        return f"ToolRuntimeException: {self.message}"


ToolRuntimeException.__module__ = "pythonformer.codeact.tool"


class ToolCallLimitError(RuntimeError):
    pass


class Env:
    """Their KnapsackEnv: state, tool results and refusals as pythonformer raises them."""

    def __init__(self, task: TaskInstance) -> None:
        self.task = task
        self.taken: list[str] = []
        self.weight = self.value = 0
        self.inspected: dict[str, str] = {}
        self.finished = False

    def list_items(self) -> str:  # their env listed private.items, which their task files store sorted by id
        return json.dumps(sorted(self.task.hidden.items))

    def inspect(self, item_id: str) -> str:
        items = self.task.hidden.items
        if item_id not in items:
            raise ToolRuntimeException(f"Unknown item_id: {item_id}")
        if item_id not in self.inspected:
            if len(self.inspected) >= self.task.public.inspect_budget:
                raise ToolRuntimeException(f"Inspect budget exceeded (budget={self.task.public.inspect_budget}, used={len(self.inspected)})")
            it = items[item_id]
            self.inspected[item_id] = json.dumps({"weight": it.weight, "value": it.value, "class": it.item_class}, separators=(",", ":"), sort_keys=True)
        return self.inspected[item_id]

    def take_item(self, item_id: str) -> None:
        items = self.task.hidden.items
        if item_id not in items:
            raise ToolRuntimeException(f"Unknown item_id: {item_id}")
        if item_id in self.taken:
            raise ToolRuntimeException(f"Item already taken: {item_id}")
        it = items[item_id]
        if it.item_class not in self.task.hidden.allowed_classes:
            raise ToolRuntimeException(f"Item class '{it.item_class}' not allowed.")
        if self.weight + it.weight > self.task.public.capacity:
            raise ToolRuntimeException(f"Capacity exceeded: current={self.weight}, item={it.weight}, capacity={self.task.public.capacity}")
        self.taken.append(item_id)
        self.weight += it.weight
        self.value += it.value

    def finish(self) -> None:
        self.finished = True

    def evaluate(self) -> dict[str, Any]:
        optimum = self.task.reference.optimal_value
        return {
            "is_solved": self.value == optimum,
            "score": self.value / optimum,
            "metrics": {
                "agent_value": self.value, "optimal_value": optimum, "optimality_gap": max(0, optimum - self.value),
                "weight_used": self.weight, "capacity": self.task.public.capacity, "items_taken_count": len(self.taken),
                "inspected_count": len(self.inspected),
            },
        }  # fmt: skip


class Interpreter:
    """Their AsyncInterpreter's semantics: shared or fresh dict env, json pre-bound, print to a buffer."""

    def __init__(self, env: Env, persistent: bool, max_tool_calls: int = 25) -> None:
        self.persistent = persistent
        self.max_tool_calls = max_tool_calls
        self.calls = 0
        self.base: dict[str, Any] = {"__builtins__": builtins, "json": json}
        for name in ("list_items", "inspect", "take_item", "finish"):
            self.base[name] = self._wrap(getattr(env, name))
        self.env = dict(self.base) if persistent else None

    def _wrap(self, tool: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.calls >= self.max_tool_calls:
                raise ToolCallLimitError(f"Tool call limit exceeded: allowed {self.max_tool_calls} per run.")
            self.calls += 1
            return tool(*args, **kwargs)

        return call

    def run(self, code: str) -> dict[str, Any]:
        env = self.env if self.persistent else dict(self.base)
        self.calls = 0
        out = io.StringIO()

        def safe_print(*args: Any, sep: str = " ", end: str = "\n", file: Any = None, flush: bool = False) -> None:
            builtins.print(*args, sep=sep, end=end, file=out if file is None or file is sys.stdout else file, flush=flush)

        env["print"] = safe_print
        try:
            exec(code, env)  # noqa: S102 - fixture code written in this file
            result = {"output": out.getvalue(), "success": True, "error": None}
        except ToolCallLimitError as exc:
            result = {"output": out.getvalue(), "success": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<string>"]
            clean = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) if frames else ""
            details = "".join(traceback.format_exception_only(type(exc), exc))
            result = {"output": out.getvalue(), "success": False, "error": f"{clean}{details}".strip()}
        if self.persistent:
            for key in [k for k in env if k not in self.base and k in dir(builtins)]:
                del env[key]
        names = [k for k in (env if self.persistent else {}) if k not in self.base and not k.startswith("__") and type(env[k]).__name__ != "module"]
        return {"success": result["success"], "result": None, "output": result["output"], "error": result["error"], "globals": names}


def blocks(text: str) -> list[str]:
    import re

    return [b.strip() for b in re.findall(r"```(?:[a-zA-Z0-9_+-]+)?\n(.*?)```", text, re.DOTALL)]


def run_episode(task: TaskInstance, persistent: bool, turns: list[Any], clock: float = 1000.0, timeout_after: int | None = None) -> dict[str, Any]:
    """Drive the harness with scripted turns (text, a callable of the last output, LENGTH_CUT or
    CRASH_AFTER_CALL); `timeout_after` steps ends the run as their runner's timeout does (no FinishEvent)."""
    env = Env(task)
    interp = Interpreter(env, persistent)
    prompts = [SYSTEM_PROMPT, RUNTIME_NOTES[persistent], TOOL_PROMPT]
    goal = (f"Goal\n- Knapsack: maximise value under capacity {task.public.capacity}; inspect at most "
            f"{task.public.inspect_budget} distinct items; classes: {sorted(set(i.item_class for i in task.hidden.items.values()))}.")  # fmt: skip
    events: list[dict[str, Any]] = []
    stamp = [0]

    def emit(kind: str, data: dict[str, Any]) -> None:
        stamp[0] += 1
        events.append({"type": kind, "data": data, "timestamp": f"2026-01-15T10:{stamp[0] // 60:02d}:{stamp[0] % 60:02d}.000000"})

    emit("StartEvent", {"task": goal})
    emit("SystemPromptEvent", {"prompts": prompts})
    usage_total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    last_output = ""
    steps = 0
    reason: str | None = "max_turns"
    status, error = "completed", None
    for turn_idx, turn in enumerate(turns):
        if env.finished:
            reason = "finish_tool"
            break
        if timeout_after is not None and steps >= timeout_after:  # wait_for cancelled the agent: no FinishEvent
            reason, status, error = None, "timeout", ""
            break
        if turn == LENGTH_CUT:
            emit("ErrorEvent", {"error": LENGTH_CUT})
            continue
        text = "I will run it.\n```python\nprint(1)\n```" if turn == CRASH_AFTER_CALL else turn(last_output) if callable(turn) else turn
        usage = {"prompt_tokens": 900 + 250 * turn_idx, "completion_tokens": max(20, len(text) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        for key in usage_total:
            usage_total[key] += usage[key]
        emit("ModelCallEvent", {"timestamp": f"2026-01-15T09:00:{turn_idx:02d}.000000+00:00", "prompt_tokens": usage["prompt_tokens"]})
        emit("ModelResponseEvent", {"timestamp": f"2026-01-15T09:00:{turn_idx:02d}.500000+00:00",
                                    "completion_tokens": usage["completion_tokens"], "total_tokens": usage["total_tokens"]})  # fmt: skip
        if turn == CRASH_AFTER_CALL:  # an exception after the call: ErrorEvent, FinishEvent(error), runner status error
            error = "Interpreter worker died unexpectedly"
            emit("ErrorEvent", {"error": error})
            emit("FinishEvent", {"reason": "error", "token_usage": dict(usage_total)})
            reason, status = "error", "error"
            break
        found = blocks(text)
        code = None
        result = None
        if len(found) > 1:
            result = {"error": "Error: You emitted multiple code blocks. Please provide only one executable code block per turn."}
            emit("ErrorEvent", {"error": result["error"]})
        elif found:
            code = found[0]
            result = interp.run(code)
            if not result["success"]:
                emit("ErrorEvent", {"error": result["error"]})
            result.pop("globals")
            last_output = result["output"]
        emit("StepEvent", {"turn": turn_idx, "assistant_text": text, "code": code, "interpreter_result": result, "token_usage": usage})
        steps += 1
    else:
        if env.finished:
            reason = "finish_tool"
    if status == "completed":
        emit("FinishEvent", {"reason": reason, "token_usage": usage_total})
    trace = {
        "started_at": "2026-01-15T10:00:00.000000",
        "finished_at": f"2026-01-15T10:{stamp[0] // 60:02d}:{stamp[0] % 60:02d}.500000",
        "summary": {"task": goal, "system_prompts": prompts, "num_steps": steps, "finish_reason": reason,
                    "errors": [e["data"]["error"] for e in events if e["type"] == "ErrorEvent"], "token_usage": usage_total},
        "events": events,
    }  # fmt: skip
    result_file = {"status": status, "error": error, "result": env.evaluate(), "finished_at": clock + 2.5 * steps + 0.125, "started_at": clock}
    return {"trace": trace, "result": result_file}


# -- scripted agents ------------------------------------------------------------------------
def greedy_block(source: str, capacity: int) -> str:
    return f"""{source}
total = 0
taken = []
for item_id in sorted(info, key=lambda i: info[i]["value"] / info[i]["weight"], reverse=True):
    if total + info[item_id]["weight"] > {capacity}:
        continue
    try:
        take_item(item_id)
        total += info[item_id]["weight"]
        taken.append(item_id)
    except Exception as e:
        print("refused:", e)
print("weight", total, "items", len(taken))"""


def persistent_style(task: TaskInstance) -> list[Any]:
    n = min(20, task.public.inspect_budget)
    return [
        "I will list the items and keep them in a global.\n```python\nitems = json.loads(list_items())\nprint(len(items), items[:2])\n```",
        f"Now inspect the first {n} items into a dict I can reuse.\n```python\ninfo = {{}}\nfor item_id in items[:{n}]:\n    info[item_id] = json.loads(inspect(item_id))\nprint(len(info))\n```",
        "Take the best value per weight that fits.\n```python\n" + greedy_block("", task.public.capacity).strip() + "\n```",
        "Done.\n```python\nfinish()\n```",
    ]


def persistent_style_in_reset(task: TaskInstance) -> list[Any]:
    """A persistent-trained agent in the reset runtime: reuses names, fails, recovers, repeats the mistake."""
    first = persistent_style(task)
    n = min(10, task.public.inspect_budget)
    return [
        first[0],
        first[1],  # NameError: items (defined by the first block)
        f"`items` is gone; list again and inspect.\n```python\nitems = json.loads(list_items())\ninfo = {{}}\nfor item_id in items[:{n}]:\n    info[item_id] = json.loads(inspect(item_id))\nprint(len(info))\n```",
        first[2],  # NameError: info again
        "The interpreter forgets everything: do it all in one block.\n```python\n" + greedy_block(
            f"items = json.loads(list_items())\ninfo = {{i: json.loads(inspect(i)) for i in items[:{n}]}}", task.public.capacity) + "\n```",
        first[3],
    ]  # fmt: skip


def stateless_style(task: TaskInstance) -> list[Any]:
    n = min(20, task.public.inspect_budget)
    return [
        f"Inspect {n} items and print them all so I can paste them later.\n```python\nitems = json.loads(list_items())\ninfo = {{i: json.loads(inspect(i)) for i in items[:{n}]}}\nprint(json.dumps(info, sort_keys=True))\n```",
        lambda output: "Paste what I saw and take greedily.\n```python\n" + greedy_block(f"info = json.loads({output.strip()!r})", task.public.capacity) + "\n```",
        "Done.\n```python\nfinish()\n```",
    ]


def base_model_style(task: TaskInstance) -> list[Any]:
    n = min(15, task.public.inspect_budget)
    return [
        "Let me look.\n```python\nprint(1)\n```\nand also\n```python\nprint(2)\n```",
        LENGTH_CUT,
        "I think I should inspect the items first, then decide.",
        "Use numpy for the sums.\n```python\nimport numpy as np\nprint(np.zeros(2).sum())\n```",
        "All in one block.\n```python\n" + greedy_block(f"items = json.loads(list_items())\ninfo = {{i: json.loads(inspect(i)) for i in items[:{n}]}}", task.public.capacity) + "\n```",
        "Done.\n```python\nfinish()\n```",
    ]


# -- the authors' file formats -------------------------------------------------------------
def task_file(task: TaskInstance, number: int, *, card_spelling: bool = False, unknown: bool = False) -> dict[str, Any]:
    items = {i: {"weight": it.weight, "value": it.value, "class": it.item_class} for i, it in task.hidden.items.items()}
    optimum = task.reference
    n_items = len(items)
    public: dict[str, Any] = (
        {"capacity": task.public.capacity, "budget": task.public.inspect_budget, "valid_classes": task.hidden.allowed_classes}
        if card_spelling else
        {"item_ids": task.public.item_ids, "capacity": task.public.capacity, "allowed_classes": task.hidden.allowed_classes,
         "inspect_budget": task.public.inspect_budget}
    )  # fmt: skip
    data: dict[str, Any] = {
        "task_id": None if card_spelling else f"knapsack-{number:010d}",
        "family": "knapsack",
        "seed": task.seed,
        "difficulty": {
            "n_items": n_items, "optimal_set_size": len(optimum.optimal_item_ids), "capacity": task.public.capacity,
            "p_valid": round(len(task.hidden.allowed_classes) / len(task.public.classes), 2),
            "budget_coverage": round(task.public.inspect_budget / n_items, 2),
            "max_item_dominance": round(max(items[i]["value"] for i in optimum.optimal_item_ids) / optimum.optimal_value, 2),
        },
        "public": public,
        "private": {"items": items},
        "reference": {"optimal_item_ids": optimum.optimal_item_ids, "optimal_value": optimum.optimal_value, "optimal_weight": optimum.optimal_weight},
        "schema_version": "pythonformer.task.v1",
        "run_name": "eval-fixture",
        "generated_at": "2026-01-10T12:00:00",
        "nl": None,
    }  # fmt: skip
    if unknown:
        data["curriculum_note"] = "kept under unknown"
        data["public"]["note"] = "card spelling"
    return data


def dump(path: Path, data: Any, **kwargs: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, **kwargs) + "\n", encoding="utf-8")


def teacher_messages(episode: dict[str, Any]) -> list[dict[str, str]]:
    """Their training loader (train/dataloader.py, codeact format): system joined, task, steps, JSON observations."""
    trace = episode["trace"]
    steps = [e["data"] for e in trace["events"] if e["type"] == "StepEvent"]
    messages = [{"role": "system", "content": "\n\n".join(trace["summary"]["system_prompts"])}, {"role": "user", "content": trace["summary"]["task"]}]
    for index, step in enumerate(steps):
        messages.append({"role": "assistant", "content": step["assistant_text"]})
        result = step["interpreter_result"] or {}
        if index < len(steps) - 1:
            if result.get("error"):
                messages.append({"role": "user", "content": json.dumps({"error": result["error"]})})
            elif result.get("output"):
                messages.append({"role": "user", "content": json.dumps({"output": result["output"]})})
    return messages


def converter_cut(messages: list[dict[str, str]], max_chars: int = CONVERTER_MAX_CHARS) -> list[dict[str, str]]:
    """Their converter's length cut: keep the system prompt and the task, then turns while they fit,
    then drop trailing non-assistant messages (so a long conversation loses its finish() turn)."""
    if sum(len(m["content"]) for m in messages) <= max_chars:
        return messages
    kept, used = messages[:2], sum(len(m["content"]) for m in messages[:2])
    for message in messages[2:]:
        if used + len(message["content"]) > max_chars:
            break
        kept.append(message)
        used += len(message["content"])
    while kept and kept[-1]["role"] != "assistant":
        kept.pop()
    return kept


def verbose_teacher(task: TaskInstance) -> list[Any]:
    """A teacher that prints a lot every turn: its conversation is longer than the converter keeps."""
    noisy = [f"Turn {i}: print the listing again, padded.\n```python\nprint(list_items() + '.' * 6000)\n```" for i in range(11)]
    return [*noisy, "Done.\n```python\nfinish()\n```"]


def runner_summary(folder: Path, task_ids: list[str]) -> dict[str, Any]:
    """The benchmark runner's summary_<agent>-knapsack.json: over the tasks that have a result file,
    steps and tokens from the trace summary, runtime from the result file, metrics aggregated."""
    runtimes, steps, tokens, metrics = [], [], [], {}
    solved = executed = 0
    for task_id in task_ids:
        result_path = folder / f"knapsack-{task_id}.json"
        if not result_path.exists():
            continue
        executed += 1
        payload = json.loads(result_path.read_text())
        body = payload.get("result") or {}
        solved += body.get("is_solved") is True
        values = {**(body.get("metrics") or {}), "score": body["score"]}
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.setdefault(key, []).append(float(value))
        runtimes.append(payload["finished_at"] - payload["started_at"])
        summary = json.loads((folder / f"knapsack-{task_id}.trace.json").read_text())["summary"]
        if isinstance((summary.get("token_usage") or {}).get("total_tokens"), int):
            tokens.append(summary["token_usage"]["total_tokens"])
        if isinstance(summary.get("num_steps"), int):
            steps.append(summary["num_steps"])

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    return {
        "average_is_solved": solved / executed if executed else 0.0,
        "average_runtime": mean(runtimes), "average_steps": mean(steps), "average_total_tokens": mean(tokens),
        "metrics": {k: {"mean": mean(v), "median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in metrics.items()},
        "num_tasks_executed": executed, "num_tasks_solved": solved,
    }  # fmt: skip


AGENT_NAMES = {"base": "qwen3-8b-base", "persistent": "qwen3-8b-persistent-lora", "stateless": "qwen3-8b-stateless-lora"}


def main() -> None:
    family = TaskFamily.model_validate(yaml.safe_load((REPO / "params.yaml").read_text())["task_family"])
    easy = [generate_instance(family.easy, 9100 + i, task_id=f"fixture-easy-{i}", difficulty="easy") for i in range(3)]
    hard = [generate_instance(family.hard, 9200 + i, task_id=f"fixture-hard-{i}", difficulty="hard") for i in range(2)]
    shutil.rmtree(FIXTURES, ignore_errors=True)
    tasks_root = FIXTURES / "agents-learn-runtime-tasks"
    for number, task in enumerate(easy):  # the generator CLI's layout, with its manifest
        dump(tasks_root / "easy" / "tasks" / "knapsack" / f"knapsack-{number:010d}.json", task_file(task, number, card_spelling=number == 1, unknown=number == 1), sort_keys=True)
    dump(tasks_root / "easy" / "manifest.json", {"schema_version": "pythonformer.taskgen.manifest.v1", "families": {"knapsack": len(easy)}, "run_name": "eval-fixture"}, sort_keys=True)
    for number, task in enumerate(hard):  # the flattened layout
        dump(tasks_root / "hard" / "knapsack" / f"knapsack-{number:010d}.json", task_file(task, number), sort_keys=True)
    (tasks_root / "README.md").write_text("Fixture copy of the tasks dataset (tests/published/make_fixtures.py).\n")

    bench = FIXTURES / "agents-learn-runtime-benchmarks"
    episodes = {
        "persistent_persistent_easy": [(0, run_episode(easy[0], True, persistent_style(easy[0]))), (1, run_episode(easy[1], True, persistent_style(easy[1])))],
        "persistent_stateless_easy": [(0, run_episode(easy[0], False, persistent_style_in_reset(easy[0]))), (1, run_episode(easy[1], False, persistent_style_in_reset(easy[1])))],
        "stateless_stateless_easy": [(0, run_episode(easy[0], False, stateless_style(easy[0]))), (1, run_episode(easy[1], False, stateless_style(easy[1]), timeout_after=2))],
        "base_persistent_hard": [(0, run_episode(hard[0], True, base_model_style(hard[0]))),
                                 (1, run_episode(hard[1], True, base_model_style(hard[1])[:1] + [CRASH_AFTER_CALL]))],
        "stateless_persistent_hard": [(0, run_episode(hard[0], True, stateless_style(hard[0]))), (1, run_episode(hard[1], True, stateless_style(hard[1])))],
    }  # fmt: skip
    for folder, runs in episodes.items():
        knapsack = bench / folder / "knapsack"
        for number, episode in runs:
            stem = knapsack / f"knapsack-knapsack-{number:010d}"
            if folder == "stateless_persistent_hard" and number == 1:  # the deliberately divergent trace
                step = next(e for e in episode["trace"]["events"] if e["type"] == "StepEvent")
                step["data"]["interpreter_result"]["output"] = step["data"]["interpreter_result"]["output"].replace('"weight": ', '"weight": 1', 1)
            dump(stem.with_name(stem.name + ".trace.json"), episode["trace"])
            stem.with_name(stem.name + ".trace.html").write_text("<html><body>trace view (fixture)</body></html>\n")
            if not (folder == "stateless_persistent_hard" and number == 0):  # no result file: scored by replay
                dump(stem.with_name(stem.name + ".json"), episode["result"])
        agent = AGENT_NAMES[folder.split("_")[0]]
        dump(bench / folder / f"summary_{agent}-knapsack.json", runner_summary(knapsack, [f"knapsack-{n:010d}" for n, _ in runs]))
    (bench / "README.md").write_text("Fixture copy of the benchmarks dataset (tests/published/make_fixtures.py).\n")

    train = FIXTURES / "agents-learn-runtime-train"
    persistent_run = run_episode(easy[2], True, persistent_style(easy[2]))
    stateless_run = run_episode(easy[2], False, stateless_style(easy[2]))
    long_run = teacher_messages(run_episode(easy[0], True, verbose_teacher(easy[0])))
    persistent_lines = [
        {"messages": converter_cut(teacher_messages(persistent_run)), "source": "outs/train/persistent/knapsack-knapsack-0000000002.trace.json"},
        {"conversations": [{"from": {"system": "system", "user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                           for m in teacher_messages(run_episode(easy[1], True, persistent_style(easy[1])))],
         "task_id": "knapsack-0000000001", "teacher_meta": {"model": "gemini-3-flash"}},
        {"messages": converter_cut(long_run), "source": "outs/train/persistent/knapsack-knapsack-0000000000.trace.json"},
    ]  # fmt: skip
    assert converter_cut(long_run) != long_run and "finish()" in long_run[-1]["content"], "the long teacher run must be cut"
    stateless_lines = [
        {"messages": teacher_messages(stateless_run), "source": "outs/train/reset/knapsack-knapsack-0000000002.trace.json"},
        {**run_episode(easy[0], False, stateless_style(easy[0]))["trace"], "task_id": "knapsack-0000000000"},
    ]
    for runtime_folder, lines in (("persistent", persistent_lines), ("reset", stateless_lines)):
        path = train / runtime_folder / "traces.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    (train / "README.md").write_text("Fixture copy of the train dataset (tests/published/make_fixtures.py).\n")
    print(f"wrote fixtures under {FIXTURES}")


if __name__ == "__main__":
    main()
