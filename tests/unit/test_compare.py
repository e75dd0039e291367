"""What a row still sends once its user is read, and a rollback's conflicts."""

from __future__ import annotations

import pytest

from migrate.compare import conflict_message, conflicts, narrow
from migrate.records import WorkItem


def _item(**kwargs: object) -> WorkItem:
    return WorkItem(row=7, user="u7", **kwargs)  # type: ignore[arg-type]


def test_only_what_differs_is_sent_and_the_values_read_are_the_before_values() -> None:
    item = _item(
        set_attributes={"custom:plan": "pro", "custom:tenant_id": "t1"},
        delete_attributes=("custom:legacy_flag", "custom:gone"),
        before={"custom:plan": "stale snapshot value"},
    )
    narrowed = narrow(
        item,
        {"custom:plan": "pro", "custom:tenant_id": "t0", "custom:legacy_flag": "1"},
    )
    assert narrowed.set_attributes == {"custom:tenant_id": "t1"}
    assert narrowed.delete_attributes == ("custom:legacy_flag",)
    assert narrowed.before == {"custom:tenant_id": "t0", "custom:legacy_flag": "1"}


@pytest.mark.parametrize(
    ("current", "sent"),
    [
        # The email changes: its flag goes with it, even though it is unchanged.
        (
            {"email": "old@x.example", "email_verified": "true"},
            {"email": "new@x.example", "email_verified": "true"},
        ),
        # The email is unchanged: the flag stays out, though it differs.
        ({"email": "new@x.example", "email_verified": "false"}, {}),
        # No email at all yet: both go.
        ({}, {"email": "new@x.example", "email_verified": "true"}),
    ],
)
def test_a_verified_flag_goes_only_with_its_attribute(
    current: dict[str, str], sent: dict[str, str]
) -> None:
    item = _item(set_attributes={"email": "new@x.example", "email_verified": "true"})
    assert narrow(item, current).set_attributes == sent


def test_a_free_flag_is_sent_whenever_it_differs() -> None:
    item = _item(
        set_attributes={"email": "a@x.example", "email_verified": "true"},
        free_flags=frozenset({"email_verified"}),
    )
    narrowed = narrow(item, {"email": "a@x.example", "email_verified": "false"})
    assert narrowed.set_attributes == {"email_verified": "true"}
    assert (
        narrow(item, {"email": "a@x.example", "email_verified": "true"}).set_attributes
        == {}
    )


def test_the_flag_cognito_resets_with_its_attribute_is_kept_as_a_before_value() -> None:
    item = _item(set_attributes={"phone_number": "+14155550100"})
    narrowed = narrow(
        item, {"phone_number": "+14155550199", "phone_number_verified": "true"}
    )
    assert narrowed.set_attributes == {"phone_number": "+14155550100"}
    assert narrowed.before == {
        "phone_number": "+14155550199",
        "phone_number_verified": "true",
    }


def test_conflicts_name_each_attribute_that_no_longer_holds_what_the_job_left() -> None:
    item = _item(
        set_attributes={"custom:plan": "basic"},
        delete_attributes=("custom:new",),
        expect={"custom:plan": "pro", "custom:new": "x", "custom:gone": None},
    )
    current = {"custom:plan": "enterprise", "custom:new": "x", "custom:gone": "back"}
    clashes = conflicts(item, current)
    assert clashes == {
        "custom:plan": ("enterprise", "pro"),
        "custom:gone": ("back", None),
    }
    assert conflict_message(item, clashes) == (
        "row 7: changed since the job (custom:plan is 'enterprise' now, the job "
        "left 'pro'; custom:gone is 'back' now, the job left absent): left as it "
        "is; `rollback --force` restores it anyway"
    )
    assert conflicts(_item(set_attributes={"custom:plan": "x"}), current) == {}
