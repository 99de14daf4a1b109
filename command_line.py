"""What every management command shares, in both apps: one-line errors and the progress bar.

A top-level module (neither app's): `bagtracker` (the domain) and `snapshots` (built on it) both
use it, and dependencies point one way (docs/architecture.md).
"""

import argparse
import os
import sys
import time
from contextlib import nullcontext

from django.core.management.base import BaseCommand as DjangoBaseCommand
from django.core.management.base import CommandError
from django.db import InterfaceError, OperationalError

from bagtracker.numbers import NotANumber, parse_integer
from read_replica import replica_reads


def integer(text):
    """argparse type: an int in ASCII digits (int() would also take '١', '７' and '1_000')."""
    try:
        return parse_integer(text.strip(" "))
    except NotANumber:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (ASCII digits)") from None


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

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None
        error = parser.error

        def one_line_error(message):
            error(f"{message} (see --help)" if parser.called_from_command_line else message)

        parser.error = one_line_error
        return parser

    # A read-only command (an export) reads the replica when there is a usable one, once it has
    # replayed everything committed before the command started (read_replica.py).
    reads_replica = False

    def execute(self, *args, **options):
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

    def write_chunks(self, chunks):
        """Write a streamed export to stdout; a reader that stops early (`| head`) ends it quietly."""
        try:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            self.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()


def _quiet_stdout():
    """Point stdout at /dev/null so that Python's own flush at exit does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class Progress:
    """A progress bar for long commands: drawn on a terminal only, silent in scripts, logs and -v 0."""

    def __init__(self, label, stream=None, verbosity=1, width=30):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = verbosity > 0 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = False

    def __call__(self, done, total):
        if not self.enabled:
            return
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done:,}/{total:,} {elapsed:.1f}s")
        self.stream.flush()
        self._drawn = True

    def close(self):
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
