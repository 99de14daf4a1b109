"""What every management command shares, in both apps: one-line errors and the progress bar.

A top-level module (neither app's): `bagtracker` (the domain) and `snapshots` (built on it) both
use it, and dependencies point one way (docs/architecture.md).
"""

import argparse
import os
import sys
import time
from collections.abc import Iterable
from contextlib import nullcontext
from typing import IO, Any, NoReturn

from django.core.management.base import BaseCommand as DjangoBaseCommand
from django.core.management.base import CommandError, CommandParser
from django.db import InterfaceError, OperationalError

from bagtracker.numbers import NotANumber, parse_integer
from read_replica import replica_reads


def integer(text: str) -> int:
    """argparse type: an int in ASCII digits (int() would also take '١', '７' and '1_000')."""
    try:
        return parse_integer(text.strip(" "))
    except NotANumber:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (ASCII digits)") from None


class OneLineParser(CommandParser):
    """Django's parser, whose errors are one line: no usage block before them (--help shows it)."""

    def print_usage(self, file: object = None) -> None:
        pass

    def error(self, message: str) -> NoReturn:
        super().error(f"{message} (see --help)" if self.called_from_command_line else message)
        raise AssertionError("unreachable: CommandParser.error exits or raises")  # for the type checker


class BaseCommand(DjangoBaseCommand):
    """Errors are one line on stderr, like every other refusal of a command (docs/interfaces.md, "Exit codes"):

    - bad arguments: "manage.py recalculate: error: argument --wallet: invalid int value: 'abc'
      (see --help)"; argparse would print its multi-line usage block first (--help shows it);
    - a lost or refused database connection (server restarted, backend terminated): "CommandError:
      database error: terminating connection due to administrator command; …" instead of a traceback.
      The work in flight was rolled back with its transaction; running the command again is safe
      (every command is idempotent);
    - output to a reader that stopped reading (`export_snapshots | head -1`): the command stops
      quietly, exit 0, instead of a BrokenPipeError traceback — whichever command was writing.
    """

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds its CommandParser itself, with no hook for the class: the instance becomes
        # the subclass, which only overrides two methods (no state of its own).
        parser.__class__ = OneLineParser
        return parser

    # A read-only command (an export) reads the replica when there is a usable one, once it has
    # replayed everything committed before the command started (read_replica.py).
    reads_replica = False

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            with replica_reads(caught_up=True) if self.reads_replica else nullcontext():
                output = super().execute(*args, **options)
            self.stdout.flush()  # a small output fails here, not in the interpreter's exit
            return output
        except BrokenPipeError:
            _quiet_stdout()
            return None
        except (OperationalError, InterfaceError) as error:
            if options.get("traceback"):
                raise
            reason = " ".join(str(error).split()) or type(error).__name__
            raise CommandError(
                f"database error: {reason}; the step in progress was rolled back, run the command again"
            ) from error

    def write_chunks(self, chunks: Iterable[str]) -> None:
        """Write a streamed export to stdout; a reader that stops early (`| head`) ends it quietly."""
        try:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            self.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that Python's own flush at exit does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class Progress:
    """A progress bar for long commands: drawn on a terminal only, silent in scripts, logs and -v 0."""

    def __init__(self, label: str, stream: IO[str] | None = None, verbosity: int = 1, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = verbosity > 0 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done:,}/{total:,} {elapsed:.1f}s")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
