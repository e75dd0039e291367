"""What a job will do, said before it does it: the preflight block.

A real run prints it before its first write (and before the confirmation): who
the credentials belong to, which pool, how many rows, how fast and for how long,
and what Cognito will do with email and phone changes. A dry run and a sandbox
run print the same block from what they know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate.execution import USER_READ_QUOTA, USER_UPDATE_QUOTA
from migrate.mapping import Mapping


@dataclass(frozen=True, kw_only=True)
class Preflight:
    """The facts of the preflight block; ``render`` lays them out."""

    #: "ACCOUNT (ARN)" of the credentials, or None with ``account_note``.
    account: str | None
    account_note: str | None
    pool_id: str | None
    pool_name: str | None = None
    region: str | None = None
    endpoint: str | None = None
    #: Data rows in the input, and those a continued job has already done.
    rows: int | None = None
    done: int = 0
    rate: float
    #: Reads/s of the read before each write; None: no reads
    #: (--no-read-before-write).
    read_rate: float | None = None
    #: What happens to email and phone numbers, one line each.
    verification: tuple[str, ...] = ()
    #: How the live pool differs from a saved --schema (already acceptable).
    schema_notes: tuple[str, ...] = field(default_factory=tuple)
    #: "dry run" or "sandbox": what the block is about when not a real run.
    mode: str | None = None

    def render(self) -> str:
        """The block as text, one fact a line."""
        title = f"Preflight ({self.mode})" if self.mode else "Preflight"
        lines = [f"{title}:"]
        lines.append(f"  credentials: {self.account or self.account_note or '?'}")
        pool = self.pool_id or "(none given)"
        if self.pool_name:
            pool += f" ({self.pool_name})"
        lines.append(f"  user pool:   {pool}")
        where = self.region or "the default region"
        lines.append(f"  region:      {where}, endpoint {self.endpoint or 'AWS'}")
        if self.rows is not None:
            todo = max(self.rows - self.done, 0)
            done = f", {self.done:,} already done by this job" if self.done else ""
            lines.append(f"  rows:        {self.rows:,} in the input{done}")
            lines.append(
                f"  writes:      at most {todo:,}, at {self.rate:g}/s (the account's "
                f"UserUpdate quota is {USER_UPDATE_QUOTA:g}/s, shared)"
            )
            if self.read_rate is None:
                lines.append(
                    "  reads:       none (--no-read-before-write): no exact "
                    "before-values, a rollback needs a --diff snapshot's"
                )
            else:
                lines.append(
                    f"  reads:       one per row to write, at {self.read_rate:g}/s "
                    f"(the UserRead quota, {USER_READ_QUOTA:g}/s, apart from "
                    "writes): before-values for rollback"
                )
            pace = min(self.rate, self.read_rate or self.rate)
            lines.append(
                f"  duration:    {duration(todo / pace)} at most (invalid and "
                "unchanged rows are not sent)"
            )
        lines += [f"  email/phone: {line}" for line in self.verification]
        lines += [f"  schema:      {note}" for note in self.schema_notes]
        return "\n".join(lines)


def verification_lines(mapping: Mapping) -> tuple[str, ...]:
    """What this mapping does to email and phone numbers, one line each."""
    lines = []
    for name in ("email", "phone_number"):
        if name not in mapping.attributes:
            continue
        flag = mapping.attributes.get(f"{name}_verified")
        if flag is not None and (flag.value or "").lower() == "true":
            lines.append(f"{name} changed and marked verified in the same call")
        else:
            lines.append(
                f"{name} changed without its verified flag: Cognito may send "
                "codes and mark it unverified (see the warnings)"
            )
    return tuple(lines)


def duration(seconds: float) -> str:
    """A duration as a person reads it: '45 s', '12 min', '11 h 7 min'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
