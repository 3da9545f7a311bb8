"""Start `train run` in `<profile>.train.processes` processes: the entry point scripts/run-stage uses.

`python -m runtime_semantics.launch launch train run ...` runs the command itself for one
process (pinned to the GPU preflight chose, when several are visible) or under `accelerate
launch` (configs/accelerate/ddp.yaml) with one process per device; `command ...` prints that
command; `worker ...` is one rank of it (what accelerate launch runs). It sits at the top,
beside the CLI it starts, so no stage module imports the command line (docs/scaling.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from .errors import UserError
from .training.settings import TrainParams
from .training.train_stage import process_rank

ACCELERATE_ENTRY = "runtime_semantics.launch"  # the module `accelerate launch -m` runs on every rank


# Launching: scripts/run-stage train ... -> `launch` -> plain python, or accelerate launch -> `worker` on every rank.


def _option(argv: list[str], names: tuple[str, ...], default: str) -> str:
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return default


def _profile_train(params_path: Path, profile: str) -> TrainParams:
    """`<profile>.train` of the params file; the CLI itself validates the whole file (params.py)."""
    import yaml
    from pydantic import ValidationError

    try:
        section = yaml.safe_load(params_path.read_text(encoding="utf-8"))[profile]["train"]
        return TrainParams.model_validate(section)
    except (OSError, KeyError, TypeError, yaml.YAMLError, ValidationError) as error:
        raise UserError(f"{params_path}: no valid {profile}.train section ({str(error).splitlines()[0]})") from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch_environment(argv: list[str], environ: dict[str, str]) -> dict[str, str]:
    """The environment the training command runs in: with train.processes 1 on a machine with several visible GPUs,
    only the one preflight chose (the most memory) stays visible. Otherwise transformers' Trainer would wrap the model
    in nn.DataParallel over all of them, which TRL refuses (and a 4-bit model cannot be split that way)."""
    if argv[:2] != ["train", "run"] or "--help" in argv:
        return dict(environ)
    profile = _option(argv, ("--profile", "-p"), "mini")
    if _profile_train(Path(_option(argv, ("--params",), "params.yaml")), profile).processes != 1:
        return dict(environ)  # accelerate launch gives each process its own device
    from .gpus import one_gpu_environment

    return one_gpu_environment(environ)


def launch_command(argv: list[str]) -> list[str]:
    """The command that runs `python -m runtime_semantics <argv>` (a `train run ...` command line) with
    the profile's `train.processes`: that command itself for 1, under `accelerate launch` otherwise."""
    profile = _option(argv, ("--profile", "-p"), "mini")  # the CLI's defaults
    params_path = Path(_option(argv, ("--params",), "params.yaml"))
    plain = [sys.executable, "-m", "runtime_semantics", *argv]
    if argv[:2] != ["train", "run"] or "--help" in argv:
        return plain
    train = _profile_train(params_path, profile)
    if train.processes == 1:
        return plain
    config = Path(train.accelerate_config)
    if not config.is_file():
        raise UserError(f"{config}: no such accelerate config ({profile}.train.accelerate_config in {params_path})")
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", str(train.processes),
        "--main_process_port", str(_free_port()), "-m", ACCELERATE_ENTRY, "worker", *argv,
    ]


def _worker(argv: list[str]) -> None:
    """One rank under `accelerate launch`: the CLI's command as it is; only the main process opens the
    MLflow run and prints the summary."""
    from . import cli

    if process_rank() != 0:  # tracking.tracked_run opens the MLflow run on rank 0 only
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    cli.app(args=argv, prog_name="runtime-semantics")


def main(argv: list[str]) -> int:
    """launch ARGS: run `runtime_semantics ARGS` in train.processes processes; command ARGS: print that
    command; worker ARGS: one rank of it (what accelerate launch runs)."""
    if not argv or argv[0] not in ("launch", "command", "worker"):
        print("usage: python -m runtime_semantics.launch launch|command|worker train run [--profile P] ...",
              file=sys.stderr)
        return 2
    if argv[0] == "worker":
        _worker(argv[1:])
        return 0
    try:
        command = launch_command(argv[1:])
        environment = launch_environment(argv[1:], dict(os.environ))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    pinned = {k: v for k, v in environment.items() if k == "CUDA_VISIBLE_DEVICES" and os.environ.get(k) != v}
    if argv[0] == "command":
        print(subprocess.list2cmdline([f"{k}={v}" for k, v in pinned.items()] + command))
        return 0
    if pinned:
        print(f"train: train.processes is 1 and several GPUs are visible: CUDA_VISIBLE_DEVICES={pinned['CUDA_VISIBLE_DEVICES']} "
              "(the one with the most memory)", file=sys.stderr, flush=True)
    if "accelerate.commands.launch" in command:
        print(f"train: {command[command.index('--num_processes') + 1]} processes: {subprocess.list2cmdline(command)}", file=sys.stderr,
              flush=True)
    os.execve(command[0], command, environment)
    return 0  # not reached: execve replaces this process


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
