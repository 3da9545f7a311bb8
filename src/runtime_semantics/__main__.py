"""`python -m runtime_semantics` runs the CLI."""

from .cli import app

app(prog_name="runtime-semantics")
