"""A runtime with a tool that guards hidden state in the parent: what every attack goes after."""

from __future__ import annotations

import pytest

from runtime_semantics.runtime import Runtime, RuntimeLimits

SECRET = "SECRET-7f3a9c"  # held only by the parent's tool; must never reach the worker
LIMITS = RuntimeLimits(wall_timeout_s=4, cpu_time_s=3, memory_mb=512, max_output_chars=2000)


class Vault:
    """Hidden state in the parent; agent code may only count calls."""

    def __init__(self) -> None:
        self.secret = SECRET
        self.calls = 0

    def ping(self) -> int:
        self.calls += 1
        return self.calls


@pytest.fixture()
def vault() -> Vault:
    return Vault()


@pytest.fixture()
def runtime(vault):
    with Runtime(persistent=True, tools={"ping": vault.ping}, limits=LIMITS) as rt:
        yield rt
