"""Exit codes and the exceptions that carry them.

Every error a user can cause is an `ExitscanError` with a plain-words message that names
their file and says what to do next; the CLI maps it to its `ExitCode` in one place.
Exit codes are part of the interface and are documented in the README.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # the batch ran (per-file problems are in problems.csv, not fatal)
    USAGE = 2  # bad command line (click's own code for usage errors)
    BAD_INPUT = 3  # a roster, lesson file, template or option value is wrong
    OUTPUT = 4  # the output cannot be written
    NOTHING_READ = 5  # process: no input page held a readable pass
    INTERNAL = 10  # a bug: please report it


class ExitscanError(Exception):
    """An error with a message for the user and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InputError(ExitscanError):
    """Bad user input: roster, lesson file, template, option value."""

    exit_code = ExitCode.BAD_INPUT


class OutputError(ExitscanError):
    """The output file or folder can't be written."""

    exit_code = ExitCode.OUTPUT


class NothingReadError(ExitscanError):
    """No input page held a readable pass."""

    exit_code = ExitCode.NOTHING_READ
