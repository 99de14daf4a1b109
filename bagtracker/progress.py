"""A progress bar for long commands: drawn on a terminal only, silent in scripts, logs and -v 0."""

import sys
import time


class Progress:
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
