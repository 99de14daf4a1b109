"""The base of BagTracker's management commands."""

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError


class Command(BaseCommand):
    """Errors are one line on stderr, like every other refusal of a command (DESIGN.md):

    - bad arguments: "manage.py recalculate: error: argument --wallet: invalid int value: 'abc'
      (see --help)"; argparse would print its multi-line usage block first (--help shows it);
    - a lost or refused database connection (server restarted, backend terminated): "CommandError:
      database error: terminating connection due to administrator command; …" instead of a traceback.
      The work in flight was rolled back with its transaction; running the command again is safe
      (every command is idempotent).
    """

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None
        error = parser.error

        def one_line_error(message):
            error(f"{message} (see --help)" if parser.called_from_command_line else message)

        parser.error = one_line_error
        return parser

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except (OperationalError, InterfaceError) as error:
            if options.get("traceback"):
                raise
            reason = " ".join(str(error).split()) or type(error).__name__
            raise CommandError(
                f"database error: {reason}; the step in progress was rolled back, run the command again"
            ) from error
