"""Where the committed copies of the published datasets lie (tests import these names)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TASKS = FIXTURES / "agents-learn-runtime-tasks"
TRAIN = FIXTURES / "agents-learn-runtime-train"
BENCHMARKS = FIXTURES / "agents-learn-runtime-benchmarks"
