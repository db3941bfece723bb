"""The one error type for what a user can fix.

A :class:`GridscoreError` says what is wrong with an input, a file or a setting, in a
sentence that names the file, row or key. The ``gridscore`` command prints it once and exits
2. Any other exception is a bug in gridscore: the command lets it through with its traceback
(exit 1), so a genuine fault is never dressed up as a user mistake.
"""

from __future__ import annotations


class GridscoreError(Exception):
    """Something the user can fix: a bad or missing input, a setting that cannot work."""


class InputMissing(GridscoreError):
    """A file or folder a command needs is not there (the message says which stage makes it)."""
