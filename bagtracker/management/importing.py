"""What the import commands share: opening the file, the progress bar, turning rejections into errors."""

import os

from django.core.management.base import CommandError

from bagtracker.services.imports import ImportRejected
from command_line import Progress


def run_import(command, service, path, verbosity):
    """Run ``service(stream, progress)`` on the file at ``path``; CommandError on any refusal."""
    try:
        stream = open(path, "rb")  # noqa: SIM115 -- closed by the `with stream` below, after fstat
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    size = os.fstat(stream.fileno()).st_size
    progress = Progress("Reading", stream=command.stderr._out, verbosity=verbosity)
    try:
        with stream:
            return service(stream, progress=lambda read: progress(read, size))
    except ImportRejected as error:
        if error.line is None:
            raise CommandError(f"{path}: {error.reason}") from None
        raise CommandError(f"line {error.line}: {error.reason}") from None
    finally:
        progress.close()
