"""What a row still needs once the user's attributes are read (read before write).

Every real run reads each user just before writing it (AdminGetUser; a quota of
its own, so the read costs no job time). The
read gives the exact values the write replaces: the row then sends only what
differs, records those values as its before-values (what a rollback restores),
and a rollback sends nothing where the attribute no longer holds what the job
left there (a conflict: someone changed it since).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from migrate.mapping import VERIFIED_FLAGS
from migrate.records import WorkItem

#: A verified flag by its attribute (email -> email_verified).
FLAG_OF: Mapping[str, str] = {
    attribute: flag for flag, attribute in VERIFIED_FLAGS.items()
}


def narrow(item: WorkItem, current: Mapping[str, str]) -> WorkItem:
    """``item`` with only what differs from ``current``, and its before-values.

    A verified flag goes with its attribute, even when the flag itself is
    unchanged, and is left out when its attribute is (the planner's rule,
    planning.Planner._sends), unless it is one of ``item.free_flags``. A delete
    of an attribute the user does not have is dropped. The before-values also
    hold the verified flag of an email or phone number the row changes without
    setting the flag: Cognito resets that flag itself, and a rollback restores it.
    """
    differs = {
        name
        for name, value in item.set_attributes.items()
        if current.get(name) != value
    }

    def sent(name: str) -> bool:
        if name not in VERIFIED_FLAGS:
            return name in differs
        return VERIFIED_FLAGS[name] in differs or (
            name in item.free_flags and name in differs
        )

    sends = [name for name in item.set_attributes if sent(name)]
    deletes = tuple(name for name in item.delete_attributes if name in current)
    touched = [*sends, *deletes]
    touched += [
        FLAG_OF[name]
        for name in sends
        if name in FLAG_OF and FLAG_OF[name] not in touched
    ]
    return replace(
        item,
        set_attributes={name: item.set_attributes[name] for name in sends},
        delete_attributes=deletes,
        before={name: current.get(name) for name in touched},
    )


def left_by_writes(
    before: Mapping[str, str | None], sent: Mapping[str, str]
) -> dict[str, str | None]:
    """What a row's writes left on each attribute it has a before-value of: the
    value sent, or None where it deleted the attribute.

    A verified flag recorded only because Cognito reset it with its email or
    phone (see `narrow`) is left out: its value afterwards was Cognito's.
    """
    return {
        name: sent.get(name)
        for name in before
        if name in sent or VERIFIED_FLAGS.get(name) not in sent
    }


def conflicts(
    item: WorkItem, current: Mapping[str, str]
) -> dict[str, tuple[str | None, str | None]]:
    """Attributes that no longer hold what the job left: name -> (now, left).

    Only for a rollback's items (``item.expect``); empty for any other item.
    """
    if item.expect is None:
        return {}
    return {
        name: (current.get(name), left)
        for name, left in item.expect.items()
        if current.get(name) != left
    }


def conflict_message(
    item: WorkItem, clashes: Mapping[str, tuple[str | None, str | None]]
) -> str:
    """Why a rollback left a user alone: each attribute's value now and the job's."""
    parts = [
        f"{name} is {_shown(now)} now, the job left {_shown(left)}"
        for name, (now, left) in clashes.items()
    ]
    return (
        f"row {item.row}: changed since the job ({'; '.join(parts)}): left "
        "as it is; `rollback --force` restores it anyway"
    )


def _shown(value: str | None) -> str:
    return "absent" if value is None else repr(value)
