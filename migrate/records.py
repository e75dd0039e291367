"""Plain data passed between the stages: statuses, column names, work items, outcomes.

Frames flow through the pipeline with reserved column names, all starting with
``__`` (for bookkeeping) or a sigil (for per-attribute columns) so they can never
clash with a column of the user's input file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal


class Status(StrEnum):
    """Final status of one input row, as written to the report."""

    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    WOULD_UPDATE = "would_update"
    INVALID = "invalid"
    FAILED = "failed"
    FAILED_RETRYABLE = "failed_retryable"
    NOT_ATTEMPTED = "not_attempted"
    #: A rollback found the attribute changed since the job wrote it, and left
    #: the user alone.
    CONFLICT = "conflict"


#: Statuses that count as "ended well" for the exit code.
OK_STATUSES: frozenset[Status] = frozenset(
    {Status.UPDATED, Status.UNCHANGED, Status.SKIPPED, Status.WOULD_UPDATE}
)

ColumnKind = Literal["int", "text", "names", "real", "json"]

#: The columns of one row's outcome, in report order, with their kinds: a
#: whole number, text, a list of attribute names, a time, JSON. The report's
#: columns and types, the job ledger's table and the frames that carry
#: outcomes between stages are all derived from this one list (README, "The
#: report").
OUTCOME_COLUMNS: dict[str, ColumnKind] = {
    "row": "int",
    "user": "text",
    "username": "text",
    "status": "text",
    "changed": "names",
    "deleted": "names",
    "error_code": "text",
    "error_message": "text",
    "attempts": "int",
    "finished_at": "text",
    "delivery": "text",
}
#: What the ledger keeps of an outcome besides the report's columns: when it
#: was recorded, the values sent, and the values before (for rollback).
LEDGER_ONLY_COLUMNS: dict[str, ColumnKind] = {
    "recorded": "real",
    "sent": "json",
    "before": "json",
}
#: Columns of the per-user report, in order.
REPORT_COLUMNS: tuple[str, ...] = tuple(OUTCOME_COLUMNS)

#: Prefix of an input column, in a report, whose name is also a report column's
#: (an input column "username" is written as "input:username").
REPORT_INPUT_PREFIX = "input:"

# --- reserved frame columns -------------------------------------------------
#: 1-based data row number in the input file (header not counted).
ROW = "__row"
#: The user key exactly as given in the input (after the key column's strip).
USER = "__user"
#: The access token (api = "token" only). Never written anywhere.
TOKEN = "__token"
#: First problem code of an invalid row (null when the row is valid).
ERROR_CODE = "__error_code"
#: All problems of an invalid row, human readable, "; "-separated.
ERROR_MESSAGE = "__error_message"
#: Attributes to delete for this row (list[str]), after the blank policy.
DELETES = "__deletes"
#: Status assigned by planning (a Status value as a string).
STATUS = "__status"


def utc_now() -> str:
    """The current time as ISO 8601 UTC with seconds, as the report shows it."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def value_col(attribute: str) -> str:
    """Frame column holding the value to send for ``attribute`` (null = blank)."""
    return f"@{attribute}"


def problem_col(attribute: str) -> str:
    """Frame column holding a transform problem for ``attribute`` (null = fine)."""
    return f"!{attribute}"


@dataclass(frozen=True, kw_only=True)
class WorkItem:
    """One user's planned change: what to set and what to delete."""

    row: int
    #: The username the calls name (resolved through a snapshot when keyed by
    #: email, phone or sub).
    user: str
    set_attributes: dict[str, str] = field(default_factory=dict)
    delete_attributes: tuple[str, ...] = ()
    # Held in memory only; repr=False keeps it out of logs and tracebacks.
    token: str | None = field(default=None, repr=False)
    #: The key as given in the input, when it is not the username itself.
    key: str | None = None
    #: Values before the change of every attribute set or deleted (None: the
    #: user did not have it), when known from a snapshot; what rollback restores.
    #: A read before the write replaces them with the values read.
    before: dict[str, str | None] | None = None
    #: A rollback's condition: the values (None: absent) the attributes must
    #: still hold, as the job left them; else the row is a conflict.
    expect: dict[str, str | None] | None = None
    #: Verified flags set whenever they differ, even when the request leaves
    #: their attribute out (``when = "always"``; every flag in a rollback).
    #: Any other flag goes only with its attribute.
    free_flags: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What happened to one input row; one per row ends up in the report."""

    row: int
    user: str
    status: Status
    username: str | None = None
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    finished_at: str | None = None
    delivery: str | None = None
    #: Attribute values sent (set) by this row's update.
    sent: dict[str, str] | None = None
    #: Values before the change, when known (see WorkItem.before).
    before: dict[str, str | None] | None = None


#: Cognito's standard (OIDC) attributes plus the ones every pool has. Custom
#: attributes must be written with a ``custom:`` or ``dev:custom:`` prefix.
STANDARD_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "address",
        "birthdate",
        "email",
        "email_verified",
        "family_name",
        "gender",
        "given_name",
        "identities",
        "locale",
        "middle_name",
        "name",
        "nickname",
        "phone_number",
        "phone_number_verified",
        "picture",
        "preferred_username",
        "profile",
        "sub",
        "updated_at",
        "website",
        "zoneinfo",
    }
)

#: Longest attribute name the API accepts (AttributeNameType).
MAX_ATTRIBUTE_NAME = 32
#: Longest attribute value the API accepts (AttributeValueType).
MAX_ATTRIBUTE_VALUE = 2048


ErrorKind = Literal["retryable", "user", "fatal"]


@dataclass(frozen=True, kw_only=True)
class CallError:
    """Why one API call failed, already classified for the executor."""

    code: str
    message: str
    kind: ErrorKind
    throttled: bool = False


@dataclass(frozen=True, kw_only=True)
class CallResult:
    """The result of one API call: an error, or success with delivery details."""

    error: CallError | None = None
    #: Where Cognito sent a verification code (masked, as returned), if it did.
    delivery: str | None = None
    #: A read's answer: the user's attributes now, by name, and the username
    #: Cognito knows the user by (the row's key may be an alias value).
    attributes: dict[str, str] | None = None
    username: str | None = None


JobKind = Literal["real", "sandbox", "rollback"]


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """What a job is, as its job file records it: read back as this type only.

    Paths are absolute. ``schema`` is the DescribeUserPool output the job was
    checked against (a rollback has none); ``rate``, ``concurrency`` and
    ``max_attempts`` (and the read settings) are those of the run that
    created the job, the defaults of a resume.
    """

    kind: JobKind
    pool_id: str
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    input_path: str | None = None
    mapping_path: str | None = None
    delimiter: str = ","
    format: str | None = None
    schema: dict[str, Any] | None = None
    diff: bool = False
    snapshot: str | None = None
    total_rows: int | None = None
    rollback_of: str | None = None
    rate: float | None = None
    concurrency: int | None = None
    max_attempts: int | None = None
    #: Reads (AdminGetUser/GetUser) per second, and whether each user is read
    #: just before its write (False: ``--no-read-before-write``).
    read_rate: float | None = None
    read_before_write: bool = True
