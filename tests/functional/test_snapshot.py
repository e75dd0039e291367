"""Pool snapshots through a real boto3 client against the emulated pool."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

from migrate.cognito import ClientConfig, UserPage, UserPool, make_client
from migrate.errors import ConfigError, FatalError, SourceError
from migrate.ratelimit import FakeClock
from migrate.records import CallError
from migrate.sandbox import EmulatedPool
from migrate.schema import load_schema_file
from migrate.snapshot import (
    SNAPSHOT_FIXED,
    SnapshotResult,
    parts_directory,
    read_snapshot,
    take_snapshot,
)
from tests.conftest import SAMPLES
from tests.support.faults import Faults, FaultyPool

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

SCHEMA = json.loads((SAMPLES / "pool-schema.json").read_text())
ATTRIBUTES = list(load_schema_file(SAMPLES / "pool-schema.json").attributes)
USERS = 250
DISABLED = "user0042"
PLANS = ("starter", "pro", "enterprise")


def user_rows(n: int) -> list[dict[str, str]]:
    """Users with varied attributes; many lack some of them."""
    rows = []
    for i in range(1, n + 1):
        row = {"username": f"user{i:04d}"}
        if i % 2:
            row["email"] = f"user{i}@example.com"
        if i % 3:
            row["custom:plan"] = PLANS[i % 3]
        if i % 5 == 0:
            row["custom:tenant_id"] = f"tenant-{i % 7}"
            row["phone_number"] = f"+1415555{i:04d}"
        if i % 7 == 0:
            # Separators, quotes and a line break must survive CSV too.
            row["dev:custom:internal_id"] = f'id,{i}\n"quoted"'
        if i % 11 == 0:
            row["name"] = "Zoë Ünïcode"
        rows.append(row)
    return rows


def client_for(pool: EmulatedPool) -> CognitoIdentityProviderClient:
    return make_client(
        ClientConfig(
            region="us-east-1", endpoint_url=pool.endpoint_url, credentials=("t", "t")
        )
    )


@pytest.fixture(scope="module")
def emulated() -> Iterator[tuple[EmulatedPool, str]]:
    with FaultyPool(faults=Faults(list_quota=None)) as pool:
        pool_id = pool.seed(SCHEMA, user_rows(USERS))
        client_for(pool).admin_disable_user(UserPoolId=pool_id, Username=DISABLED)
        yield pool, pool_id


@pytest.fixture(scope="module")
def users(emulated: tuple[EmulatedPool, str]) -> UserPool:
    pool, pool_id = emulated
    return UserPool(client_for(pool), pool_id=pool_id, api="admin")


def list_calls(emulated: tuple[EmulatedPool, str]) -> int:
    return emulated[0].calls["ListUsers"]


def pool_contents(
    pool: EmulatedPool, pool_id: str, n: int, *, disabled: str | None = DISABLED
) -> dict[str, Any]:
    """username -> (status, enabled, attributes) as the pool holds them."""
    contents: dict[str, Any] = {}
    for i in range(1, n + 1):
        name = f"user{i:04d}"
        attributes = pool.user_attributes(pool_id, name)
        assert set(attributes) <= set(ATTRIBUTES)
        enabled = "false" if name == disabled else "true"
        contents[name] = ("CONFIRMED", enabled, attributes)
    return contents


def snapshot_contents(path: Path) -> dict[str, Any]:
    frame = read_snapshot(path).collect()
    assert frame.columns == [*SNAPSHOT_FIXED, *ATTRIBUTES]
    assert set(frame.schema.values()) == {pl.String}
    assert frame["username"].n_unique() == frame.height
    contents: dict[str, Any] = {}
    for row in frame.iter_rows(named=True):
        attributes = {k: row[k] for k in ATTRIBUTES if row[k] is not None}
        contents[row["username"]] = (row["status"], row["enabled"], attributes)
    return contents


def assert_equals_pool(
    path: Path, emulated: tuple[EmulatedPool, str], n: int = USERS
) -> None:
    pool, pool_id = emulated
    assert snapshot_contents(path) == pool_contents(pool, pool_id, n)


class Spy:
    """A UserPool stand-in that records calls and can misbehave on one of them."""

    def __init__(
        self,
        inner: UserPool,
        *,
        on_call: Callable[[int], UserPage | None] | None = None,
        after: Callable[[int, UserPage], UserPage] | None = None,
    ) -> None:
        self.inner = inner
        self.pool_id = inner.pool_id
        self.tokens: list[str | None] = []
        self.limits: list[int] = []
        self._on_call = on_call
        self._after = after

    def list_users_page(
        self, pagination_token: str | None, *, limit: int = 60
    ) -> UserPage:
        self.tokens.append(pagination_token)
        self.limits.append(limit)
        number = len(self.tokens)
        if self._on_call is not None:
            answer = self._on_call(number)
            if answer is not None:
                return answer
        page = self.inner.list_users_page(pagination_token, limit=limit)
        return page if self._after is None else self._after(number, page)


def interrupt_on(call: int) -> Callable[[int], UserPage | None]:
    def on_call(number: int) -> UserPage | None:
        if number == call:
            raise KeyboardInterrupt
        return None

    return on_call


def failing(error: CallError, *, on: int = 1) -> Callable[[int], UserPage | None]:
    def on_call(number: int) -> UserPage | None:
        if number >= on:
            return UserPage(users=[], next_token=None, error=error)
        return None

    return on_call


def snapshot(pool: Any, path: Path, **options: Any) -> SnapshotResult:
    options.setdefault("clock", FakeClock())
    options.setdefault("attributes", ATTRIBUTES)
    return take_snapshot(pool, path, **options)


def interrupted(users: UserPool, path: Path, *, call: int = 3) -> Spy:
    """A snapshot stopped by Ctrl-C at ListUsers call ``call``, one page a part."""
    spy = Spy(users, on_call=interrupt_on(call))
    with pytest.raises(KeyboardInterrupt):
        snapshot(spy, path, pages_per_part=1)
    return spy


# --- UserPool.list_users_page ------------------------------------------------------


def test_list_users_page_returns_users_and_classified_errors(
    users: UserPool, tmp_path: Path
) -> None:
    page = users.list_users_page(None, limit=2)
    assert page.error is None
    assert page.next_token
    assert [user["Username"] for user in page.users] == ["user0001", "user0002"]
    assert page.users[0]["UserStatus"] == "CONFIRMED"
    assert page.users[0]["Enabled"] is True
    assert {"Name": "custom:plan", "Value": "pro"} in page.users[0]["Attributes"]
    assert users.list_users_page("not-a-token") == UserPage(
        users=[],
        next_token=None,
        error=CallError(
            code="InvalidToken", message="Invalid Token: Invalid token", kind="user"
        ),
    )
    with pytest.raises(ValueError, match="limit must be between 1 and 60, got 61"):
        users.list_users_page(None, limit=61)
    with FaultyPool(faults=Faults(list_quota=1)) as pool:
        pool_id = pool.create_pool(SCHEMA)
        throttled = UserPool(client_for(pool), pool_id=pool_id, api="admin")
        pages = [throttled.list_users_page(None) for _ in range(3)]
    assert CallError(
        code="TooManyRequestsException",
        message="Rate exceeded",
        kind="retryable",
        throttled=True,
    ) in [page.error for page in pages]


# --- a complete snapshot -----------------------------------------------------------


@pytest.mark.parametrize("name", ["pool.parquet", "pool.csv"])
def test_snapshot_equals_the_pool(
    emulated: tuple[EmulatedPool, str], users: UserPool, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    before = list_calls(emulated)
    seen: list[int] = []
    result = snapshot(users, path, progress=seen.append)
    assert result == SnapshotResult(
        users=USERS,
        pages=5,
        path=path,
        throttled=0,
        resumed=False,
        calls=5,
    )
    # ceil(250 / 60) pages: the emulator (moto) sends no empty last page.
    assert list_calls(emulated) - before == math.ceil(USERS / 60) == 5
    assert seen == [60, 120, 180, 240, 250]
    assert_equals_pool(path, emulated)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not parts_directory(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_pages_of_60_follow_the_token(users: UserPool, tmp_path: Path) -> None:
    spy = Spy(users)
    snapshot(spy, tmp_path / "pool.parquet", pages_per_part=2)
    assert spy.limits == [60] * 5
    assert spy.tokens[0] is None
    later = spy.tokens[1:]
    assert all(later)
    assert len(set(later)) == 4


def test_a_last_full_page_needs_no_extra_call(
    emulated: tuple[EmulatedPool, str], users: UserPool, tmp_path: Path
) -> None:
    before = list_calls(emulated)
    result = snapshot(users, tmp_path / "pool.parquet", page_size=50)
    assert (result.pages, result.calls, result.users) == (5, 5, USERS)
    assert list_calls(emulated) - before == 5
    assert_equals_pool(tmp_path / "pool.parquet", emulated)


def test_attributes_outside_the_columns_are_counted(
    users: UserPool, tmp_path: Path
) -> None:
    path = tmp_path / "pool.parquet"
    columns = [name for name in ATTRIBUTES if name not in ("email", "name")]
    result = snapshot(users, path, attributes=columns)
    assert result.unknown_attributes == {"email": 125, "name": 22}
    assert read_snapshot(path).collect_schema().names() == [*SNAPSHOT_FIXED, *columns]


def test_an_empty_pool_gives_an_empty_snapshot(tmp_path: Path) -> None:
    with FaultyPool(faults=Faults(list_quota=None)) as pool:
        pool_id = pool.create_pool(SCHEMA)
        users = UserPool(client_for(pool), pool_id=pool_id, api="admin")
        result = snapshot(users, tmp_path / "pool.csv")
    assert (result.users, result.pages) == (0, 1)
    frame = read_snapshot(tmp_path / "pool.csv").collect()
    assert frame.height == 0
    assert frame.columns == [*SNAPSHOT_FIXED, *ATTRIBUTES]


# --- throttling and errors --------------------------------------------------------


def test_throttling_slows_down_and_still_completes(tmp_path: Path) -> None:
    # Real time: the emulated quota (5/s, burst 5) runs on the real clock.
    with FaultyPool(faults=Faults(list_quota=5)) as pool:
        pool_id = pool.seed(SCHEMA, user_rows(100))
        users = UserPool(client_for(pool), pool_id=pool_id, api="admin")
        path = tmp_path / "pool.parquet"
        result = take_snapshot(
            users,
            path,
            attributes=ATTRIBUTES,
            rate=20,
            page_size=10,
            random=lambda: 0.5,
        )
        assert result.throttled > 0
        assert result.throttled == pool.throttled
        assert result.calls == 10 + result.throttled
        assert (result.users, result.pages) == (100, 10)
        contents = pool_contents(pool, pool_id, 100, disabled=None)
    assert snapshot_contents(path) == contents


def test_a_wrong_pool_is_fatal_and_leaves_nothing(
    emulated: tuple[EmulatedPool, str], tmp_path: Path
) -> None:
    pool, _ = emulated
    wrong = UserPool(client_for(pool), pool_id="us-east-1_NOPE00000", api="admin")
    with pytest.raises(FatalError) as caught:
        snapshot(wrong, tmp_path / "pool.parquet")
    assert str(caught.value) == (
        "user pool not found: check --user-pool-id and --region "
        "(ResourceNotFoundException: User pool us-east-1_NOPE00000 does not exist.)"
    )
    assert caught.value.aws_error_code == "ResourceNotFoundException"
    assert list(tmp_path.iterdir()) == []


def test_a_refused_list_is_fatal(users: UserPool, tmp_path: Path) -> None:
    refused = CallError(
        code="InvalidParameterException", message="Bad request", kind="user"
    )
    with pytest.raises(FatalError) as caught:
        snapshot(Spy(users, on_call=failing(refused)), tmp_path / "pool.parquet")
    assert str(caught.value) == (
        "ListUsers was refused: Bad request (InvalidParameterException)"
    )


def test_retries_are_bounded_and_keep_the_progress(
    emulated: tuple[EmulatedPool, str], users: UserPool, tmp_path: Path
) -> None:
    path = tmp_path / "pool.parquet"
    broken = CallError(code="InternalErrorException", message="boom", kind="retryable")
    clock = FakeClock()
    spy = Spy(users, on_call=failing(broken, on=3))
    with pytest.raises(FatalError) as caught:
        snapshot(spy, path, max_attempts=3, clock=clock, pages_per_part=1)
    assert str(caught.value) == (
        "ListUsers failed 3 times in a row (InternalErrorException: boom); the "
        "users listed so far are saved: run the snapshot again to continue"
    )
    assert len(spy.tokens) == 2 + 3
    # Two backoffs (full jitter, base 0.5 s) between the three attempts.
    assert len([s for s in clock.sleeps if s >= 0.1]) <= 2
    result = snapshot(users, path)
    assert (result.resumed, result.calls, result.users) == (True, 3, USERS)
    assert_equals_pool(path, emulated)


# --- interruption and resume ---------------------------------------------------------


def test_interrupted_snapshot_resumes_where_it_stopped(
    emulated: tuple[EmulatedPool, str], users: UserPool, tmp_path: Path
) -> None:
    path = tmp_path / "pool.parquet"
    before = list_calls(emulated)
    first = interrupted(users, path)
    assert list_calls(emulated) - before == 2
    parts = parts_directory(path)
    assert stat.S_IMODE(parts.stat().st_mode) == 0o700
    state = json.loads((parts / "state.json").read_text())
    assert (state["pages"], state["users"], state["complete"]) == (2, 120, False)
    assert state["next_token"]
    assert not path.exists()
    # A part written after the last saved state, and a half-written file.
    (parts / "part-000003.parquet").write_bytes(b"not yet recorded")
    (parts / "state.json.tmp").write_bytes(b"{")

    spy = Spy(users)
    result = snapshot(spy, path)
    assert result.resumed
    assert result.restarted is None
    assert (result.users, result.pages, result.calls) == (USERS, 5, 3)
    assert result.duplicates == 0
    assert spy.tokens[0] == state["next_token"] != first.tokens[0]
    assert list_calls(emulated) - before == 5
    assert_equals_pool(path, emulated)
    assert not parts.exists()


def test_a_page_not_yet_saved_is_fetched_again(
    users: UserPool, emulated: tuple[EmulatedPool, str], tmp_path: Path
) -> None:
    path = tmp_path / "pool.csv"

    def stop_after_saving(users_so_far: int) -> None:
        if users_so_far == USERS:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        snapshot(users, path, progress=stop_after_saving, pages_per_part=1)
    # The last page was fetched but not saved: it is fetched again.
    result = snapshot(users, path)
    assert (result.resumed, result.calls, result.users) == (True, 1, USERS)
    assert_equals_pool(path, emulated)


def test_a_failed_combine_keeps_every_page(
    users: UserPool, emulated: tuple[EmulatedPool, str], tmp_path: Path
) -> None:
    path = tmp_path / "pool.parquet"

    def block_the_output(users_so_far: int) -> None:
        if users_so_far == USERS:
            path.mkdir()
            (path / "keep").touch()

    with pytest.raises(FatalError) as caught:
        snapshot(users, path, progress=block_the_output)
    assert str(caught.value) == (
        f"cannot write the snapshot file {path}: Is a directory; the users "
        "listed are saved: run the snapshot again to finish it"
    )
    (path / "keep").unlink()
    path.rmdir()
    result = snapshot(users, path)
    assert (result.resumed, result.calls, result.users) == (True, 0, USERS)
    assert_equals_pool(path, emulated)


def test_users_repeated_after_a_resume_are_written_once(
    emulated: tuple[EmulatedPool, str], users: UserPool, tmp_path: Path
) -> None:
    path = tmp_path / "pool.parquet"
    interrupted(users, path)
    early = users.list_users_page(None).users[:5]
    stale = [
        {**user, "Attributes": [{"Name": "custom:plan", "Value": "stale"}]}
        for user in early
    ]

    def repeat(number: int, page: UserPage) -> UserPage:
        # ListUsers promises no order across chains: users seen before come again.
        if number == 1:
            return UserPage(users=[*stale, *page.users], next_token=page.next_token)
        return page

    result = snapshot(Spy(users, after=repeat), path)
    assert (result.users, result.duplicates) == (USERS, 5)
    assert_equals_pool(path, emulated)


def test_a_rejected_saved_token_starts_over(
    emulated: tuple[EmulatedPool, str], users: UserPool, tmp_path: Path
) -> None:
    path = tmp_path / "pool.parquet"
    interrupted(users, path)
    state_file = parts_directory(path) / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "next_token": "expired"}))
    spy = Spy(users)
    result = snapshot(spy, path)
    assert result.restarted == (
        "Cognito no longer accepts the saved pagination token "
        "(InvalidToken: Invalid Token: Invalid token)"
    )
    assert not result.resumed
    assert spy.tokens[:2] == ["expired", None]
    assert (result.users, result.pages, result.calls) == (USERS, 5, 6)
    assert_equals_pool(path, emulated)


def test_saved_progress_of_other_columns_is_not_reused(
    emulated: tuple[EmulatedPool, str], users: UserPool, tmp_path: Path
) -> None:
    path = tmp_path / "pool.parquet"
    spy = Spy(users, on_call=interrupt_on(3))
    with pytest.raises(KeyboardInterrupt):
        snapshot(spy, path, attributes=ATTRIBUTES[:5], pages_per_part=1)
    result = snapshot(users, path)
    assert result.restarted == (
        "the unfinished snapshot had other attribute columns (the pool schema changed)"
    )
    assert (result.resumed, result.calls) == (False, 5)
    assert_equals_pool(path, emulated)


def test_one_snapshot_at_a_time_per_file(users: UserPool, tmp_path: Path) -> None:
    path = tmp_path / "pool.parquet"
    refusals: list[str] = []

    def second_snapshot(number: int) -> UserPage | None:
        if number == 1:
            with pytest.raises(ConfigError) as caught:
                snapshot(users, path)
            refusals.append(str(caught.value))
        return None

    snapshot(Spy(users, on_call=second_snapshot), path)
    assert refusals == [
        f"a snapshot into {str(path)!r} is already being taken by process "
        f"{os.getpid()}; wait for it or stop it first"
    ]


# --- options and reading --------------------------------------------------------------


def test_bad_options_are_refused(users: UserPool, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        snapshot(users, tmp_path / "pool.xlsx")
    assert str(caught.value) == (
        f"snapshot file {str(tmp_path / 'pool.xlsx')!r}: the name must end in "
        ".parquet or .csv"
    )
    with pytest.raises(ConfigError) as caught:
        snapshot(users, tmp_path / "pool.parquet", rate=0)
    assert str(caught.value) == "--rate must be above 0 requests/s, not 0"
    with pytest.raises(ConfigError) as caught:
        snapshot(users, tmp_path / "pool.parquet", attributes=["email", "status"])
    assert str(caught.value) == (
        "attribute 'status' would clash with the snapshot's own 'status' column"
    )
    assert list(tmp_path.iterdir()) == []


def test_read_snapshot_selects_columns(users: UserPool, tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    snapshot(users, path)
    frame = read_snapshot(path, columns=["custom:plan", "email"]).collect()
    assert frame.columns == ["username", "custom:plan", "email"]
    first = frame.row(0, named=True)
    assert first == {
        "username": "user0001",
        "custom:plan": "pro",
        "email": "user1@example.com",
    }
    with pytest.raises(SourceError) as caught:
        read_snapshot(path, columns=["custom:nope"])
    assert str(caught.value) == (
        f"{path}: the snapshot has no column 'custom:nope': the pool schema "
        "changed since it was taken? Take a new one"
    )


def test_read_snapshot_refuses_other_files(tmp_path: Path) -> None:
    how = "take one with `cognito-migrate snapshot --user-pool-id ID -o FILE`"
    other = tmp_path / "users.csv"
    other.write_text("username,email\nalice,a@example.com\n")
    with pytest.raises(SourceError) as caught:
        read_snapshot(other)
    assert str(caught.value) == (
        f"{other}: not a snapshot file: it has no 'status', 'enabled' column "
        f"(its columns: 'username', 'email'); {how}"
    )
    missing = tmp_path / "missing.parquet"
    with pytest.raises(SourceError) as caught:
        read_snapshot(missing)
    assert str(caught.value) == f"{missing}: no such snapshot file; {how}"
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("username,status,enabled\n")
    with pytest.raises(SourceError) as caught:
        read_snapshot(garbage)
    assert str(caught.value).startswith(
        f"{garbage}: cannot be read as a Parquet snapshot: "
    )
    with pytest.raises(SourceError) as caught:
        read_snapshot(tmp_path / "pool.json")
    assert str(caught.value) == (
        f"{tmp_path / 'pool.json'}: a snapshot file's name ends in .parquet or .csv"
    )
