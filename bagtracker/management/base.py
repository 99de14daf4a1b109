"""The base of BagTracker's management commands."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """Bad arguments are one line on stderr, like every other refusal of a command (DESIGN.md):
    "manage.py recalculate: error: argument --wallet: invalid int value: 'abc' (see --help)".
    argparse would print its multi-line usage block first; --help still shows it."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None
        error = parser.error

        def one_line_error(message):
            error(f"{message} (see --help)" if parser.called_from_command_line else message)

        parser.error = one_line_error
        return parser
