"""One exit-code policy for the project's command lines (``character4d``, ``characterbench``, ``charactershot``).

=====  ==================  =====================================================================
code   name                meaning
=====  ==================  =====================================================================
0      ``EXIT_OK``         the command did what was asked
1      ``EXIT_BAD_INPUT``  a file or data set given to the command cannot be used (missing, corrupt,
                           not humanoid, not following the sample contract), or some jobs failed
2      ``EXIT_USAGE``      the command line itself is wrong (unknown flag, a value out of range,
                           options that contradict each other or an existing output directory)
=====  ==================  =====================================================================

argparse already exits 2 for malformed command lines; :func:`exit_code` maps the exceptions a
command raises onto the same policy, so every CLI ends with ``return exit_code(exc)`` after printing
the message. Raise an :class:`InputError` (or a subclass) for bad input and a :class:`UsageError`
for a bad command line; both are ``ValueError`` subclasses, so library callers that catch
``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_USAGE", "InputError", "UsageError", "exit_code"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


class InputError(ValueError):
    """A file or data set given to a command cannot be used; the message names it and the problem.

    Base class of the project's bad-input errors (``character4d.format.SampleFormatError``,
    ``character4d.skeleton.UnmappableSkeletonError``, ...). Exit code 1.
    """


class UsageError(ValueError):
    """The command line is inconsistent (values out of range, contradicting options, an output
    directory started with other settings). Exit code 2."""


def exit_code(exc: BaseException) -> int:
    """The exit status for an exception that ends a command.

    Args:
        exc: the exception.

    Returns:
        ``EXIT_BAD_INPUT`` for :class:`InputError` and file-system errors about the inputs
        (``FileNotFoundError``, ``IsADirectoryError``, ``NotADirectoryError``, ``FileExistsError``,
        ``PermissionError``); ``EXIT_USAGE`` for :class:`UsageError` and any other ``ValueError`` /
        ``TypeError`` (config dataclasses validate their fields with those, naming the argument);
        ``EXIT_BAD_INPUT`` for anything else (a failure of the work itself).
    """
    if isinstance(exc, InputError):
        return EXIT_BAD_INPUT
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, (ValueError, TypeError)):
        return EXIT_USAGE
    return EXIT_BAD_INPUT
