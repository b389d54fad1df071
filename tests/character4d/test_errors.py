"""The shared exit-code policy (character4d.errors)."""

from __future__ import annotations

import pytest

from character4d.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, InputError, UsageError, exit_code


def test_codes_are_the_documented_numbers():
    assert (EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE) == (0, 1, 2)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InputError("corrupt.fbx: not an FBX file"), 1),
        (FileNotFoundError("nope.vrm"), 1),
        (FileExistsError("out/x exists"), 1),
        (UsageError("--shard 3/2"), 2),
        (ValueError("fps: expected > 0"), 2),
        (TypeError("threads: expected int"), 2),
        (RuntimeError("worker died"), 1),
    ],
)
def test_exit_code(exc, code):
    assert exit_code(exc) == code


def test_errors_stay_value_errors():
    # Library callers that catch ValueError keep working.
    assert issubclass(InputError, ValueError) and issubclass(UsageError, ValueError)
