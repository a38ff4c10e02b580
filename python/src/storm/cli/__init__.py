"""The `storm` command: one subcommand per pipeline step, a module per group of them. Each is thin:
it parses options, calls the library and writes files. Input errors print one `error: ...` line
and exit 2."""

from . import cloud, data, evaluation, loaders, models, plan, results, split  # noqa: F401 (they register)
from .base import cli, main

__all__ = ["cli", "main"]
