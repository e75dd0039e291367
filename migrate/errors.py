"""The exception tree of cognito-bulk-migrate.

Only job-wide problems are exceptions. A problem with one user (a bad value, a
user that does not exist, a permanent API error) is data: an outcome in the
ledger and the report, never an exception that unwinds the run.

    MigrateError                 root; the CLI turns any of these into a message
    ├── ConfigError              bad options or files given by the user (exit 2)
    │   ├── OptionsError         options that do not go together (shown with usage)
    │   ├── MappingError         the TOML mapping file is wrong
    │   ├── SchemaError          the pool schema file is not DescribeUserPool output
    │   └── SourceError          the input file cannot be read as promised
    ├── CheckpointError          the job ledger is unusable (exit 2)
    ├── StoppedError             Ctrl-C or SIGTERM stopped a command (exit 130)
    └── FatalError               job-wide failure during a run: stop everything (exit 3)
        └── RepeatedFailureError one per-user error for many users in a row

A call that may succeed later (throttling, 5xx, network) is not an exception
either: the Cognito adapter returns it as a retryable `records.CallError`, and the
executor's retry loop decides.
"""

from __future__ import annotations


class MigrateError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MigrateError):
    """The user's options or files are wrong; nothing has been sent."""


class OptionsError(ConfigError):
    """Options that are missing or do not go together (the CLI shows its usage)."""


class MappingError(ConfigError):
    """The mapping file is invalid (syntax, unknown key, unknown attribute...)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class SchemaError(ConfigError):
    """The pool schema cannot be loaded or is not DescribeUserPool output."""


class SourceError(ConfigError):
    """The input file cannot be read; names the file and, where known, row/column."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = path
        self.row = row
        self.column = column
        where = path
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


class CheckpointError(MigrateError):
    """The job ledger cannot be used (corrupt, locked, wrong fingerprint...)."""


class FatalError(MigrateError):
    """A job-wide failure: every later call would fail too, so the run stops.

    The job stays resumable: rows not yet sent are recorded as not_attempted.
    """

    def __init__(self, message: str, *, aws_error_code: str | None = None) -> None:
        self.aws_error_code = aws_error_code
        super().__init__(message)


class StoppedError(MigrateError):
    """Ctrl-C or SIGTERM stopped a command; the message says what was kept."""


class RepeatedFailureError(FatalError):
    """The same per-user error for many users in a row: a cause common to all
    of them (the mapping, the data, a Lambda trigger), so the job stops."""
