"""Every job can be undone: before-values read at write time, conflicts kept.

Real runs against the emulated pool through the CLI; a second boto3 client
plays "another client" changing users between a run and its rollback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from botocore.config import Config

from migrate.checkpoint import Ledger
from migrate.sandbox import EmulatedPool, Reply
from tests.cli.helpers import (
    SCHEMA,
    invoke,
    mapping,
    read_report,
    real_run_args,
    without_preflight,
    write,
)

#: Sets two custom attributes and the email (marked verified), deletes one.
MAPPING = """
[attributes."custom:tenant_id"]
column = "tenant"

[attributes."custom:plan"]
column = "plan"

[attributes.email]
column = "email"

[attributes.email_verified]
value = "true"

[delete]
attributes = ["custom:legacy_flag"]
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _users(n: int) -> list[dict[str, str]]:
    """Users with a mix of attributes: some have the plan, some the flag."""
    users = []
    for i in range(n):
        user = {
            "username": f"u{i:02d}",
            "custom:tenant_id": f"old-{i}",
            "email": f"u{i:02d}@old.example",
            "email_verified": "false",
        }
        if i % 2:
            user["custom:plan"] = "basic"
        if i % 3:
            user["custom:legacy_flag"] = "1"
        users.append(user)
    return users


def _input(n: int, *, same: int = 0) -> Path:
    """Rows for users 0..n-1; the first ``same`` users already hold the targets."""
    lines = ["username,tenant,plan,email"]
    for i in range(n):
        if i < same:
            lines.append(f"u{i:02d},old-{i},,u{i:02d}@old.example")
        else:
            lines.append(f"u{i:02d},new-{i},pro,u{i:02d}@new.example")
    return write("in.csv", "\n".join(lines) + "\n")


def _everyone(pool: EmulatedPool, pool_id: str, n: int) -> dict[str, dict[str, str]]:
    """Every user's full attribute set, sub included."""
    return {f"u{i:02d}": pool.user_attributes(pool_id, f"u{i:02d}") for i in range(n)}


def _client(pool: EmulatedPool) -> Any:
    return boto3.client(
        "cognito-idp",
        endpoint_url=pool.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


def _run(pool: EmulatedPool, pool_id: str, data: Path, *extra: str) -> Any:
    return invoke(
        "run",
        data,
        "-m",
        mapping("map.toml", MAPPING),
        *real_run_args(pool.endpoint_url, pool_id),
        "--rate",
        "100",
        "--read-rate",
        "100",
        "--yes",
        *extra,
    )


def _rollback(pool: EmulatedPool, *extra: str) -> Any:
    return invoke(
        "rollback",
        "job.sqlite",
        "--endpoint-url",
        pool.endpoint_url,
        "--rate",
        "100",
        "--read-rate",
        "100",
        "--yes",
        *extra,
    )


def test_a_run_without_diff_then_rollback_leaves_every_user_as_before() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(SCHEMA, _users(12))
        before = _everyone(pool, pool_id, 12)
        result = _run(pool, pool_id, _input(12))
        assert result.exit_code == 0, result.output
        changed = _everyone(pool, pool_id, 12)
        assert changed["u01"]["custom:plan"] == "pro"
        assert "custom:legacy_flag" not in changed["u01"]
        assert changed["u00"]["email_verified"] == "true"

        undone = _rollback(pool)
        assert undone.exit_code == 0, undone.output
        # Set values restored, created attributes deleted, deleted ones set
        # back, the verified flag as it was: every attribute, sub included.
        assert _everyone(pool, pool_id, 12) == before
        statuses = {
            row["status"] for row in read_report("job.sqlite.rollback.report.csv")
        }
        assert statuses == {"updated"}


def test_users_changed_after_the_run_keep_their_values_and_are_conflicts() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(SCHEMA, _users(6))
        before = _everyone(pool, pool_id, 6)
        assert _run(pool, pool_id, _input(6)).exit_code == 0
        other = _client(pool)
        other.admin_update_user_attributes(
            UserPoolId=pool_id,
            Username="u02",
            UserAttributes=[{"Name": "custom:plan", "Value": "enterprise"}],
        )
        # An attribute the job deleted, set again by someone else.
        other.admin_update_user_attributes(
            UserPoolId=pool_id,
            Username="u04",
            UserAttributes=[{"Name": "custom:legacy_flag", "Value": "2"}],
        )
        after_others = _everyone(pool, pool_id, 6)

        preview = invoke(
            "rollback",
            "job.sqlite",
            "--dry-run",
            "--endpoint-url",
            pool.endpoint_url,
            "--read-rate",
            "100",
        )
        assert preview.exit_code == 0, preview.output
        planned = {
            row["user"]: row
            for row in read_report("job.sqlite.rollback.dry-run.report.csv")
        }
        assert planned["u02"]["status"] == "conflict"
        assert planned["u04"]["status"] == "conflict"
        assert {planned[u]["status"] for u in ("u00", "u01", "u03", "u05")} == {
            "would_update"
        }
        # The dry run wrote nothing.
        assert _everyone(pool, pool_id, 6) == after_others

        undone = _rollback(pool)
        assert undone.exit_code == 1, undone.output
        rows = {
            row["user"]: row for row in read_report("job.sqlite.rollback.report.csv")
        }
        assert rows["u02"]["status"] == "conflict"
        assert rows["u02"]["error_code"] == "Conflict"
        assert rows["u02"]["error_message"] == (
            "row 3: changed since the job (custom:plan is 'enterprise' now, the "
            "job left 'pro'): left as it is; `rollback --force` restores it anyway"
        )
        assert (
            "custom:legacy_flag is '2' now, the job left absent"
            in (rows["u04"]["error_message"])
        )
        now = _everyone(pool, pool_id, 6)
        assert now["u02"] == after_others["u02"]
        assert now["u04"] == after_others["u04"]
        for user in ("u00", "u01", "u03", "u05"):
            assert now[user] == before[user]

        # --force restores the conflicts, and only those are sent again.
        forced = _rollback(pool, "--force")
        assert forced.exit_code == 0, forced.output
        assert _everyone(pool, pool_id, 6) == before


def test_the_before_value_is_the_one_read_at_write_time_not_the_snapshots() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(SCHEMA, _users(3))
        taken = invoke(
            "snapshot",
            "--user-pool-id",
            pool_id,
            "--endpoint-url",
            pool.endpoint_url,
            "--region",
            "us-east-1",
            "-o",
            "snap.parquet",
        )
        assert taken.exit_code == 0, taken.output
        _client(pool).admin_update_user_attributes(
            UserPoolId=pool_id,
            Username="u01",
            UserAttributes=[{"Name": "custom:tenant_id", "Value": "moved-on"}],
        )
        assert (
            _run(pool, pool_id, _input(3), "--snapshot", "snap.parquet").exit_code == 0
        )
        with Ledger.open(Path("job.sqlite")) as ledger:
            recorded = {row: before for row, _, _, _, before in ledger.updated_rows()}
        assert recorded[2]["custom:tenant_id"] == "moved-on"
        assert _rollback(pool).exit_code == 0
        assert pool.user_attributes(pool_id, "u01")["custom:tenant_id"] == "moved-on"


@pytest.mark.parametrize("diff", [False, True], ids=["read", "diff"])
def test_users_already_at_the_target_get_no_write(diff: bool) -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(
            SCHEMA,
            [
                {
                    "username": f"u{i:02d}",
                    "custom:tenant_id": f"old-{i}",
                    "email": f"u{i:02d}@old.example",
                    "email_verified": "true",
                }
                for i in range(20)
            ],
        )
        # 16 of 20 (80%) already hold the targets (a blank plan is skipped).
        result = _run(pool, pool_id, _input(20, same=16), *(["--diff"] if diff else []))
        assert result.exit_code == 0, result.output
        assert pool.calls["AdminUpdateUserAttributes"] == 4
        # A read for every row the plan would write: 20 without a snapshot,
        # only the 4 that differ with one.
        assert pool.calls["AdminGetUser"] == (4 if diff else 20)
        statuses = [row["status"] for row in read_report("report.csv")]
        assert statuses == ["unchanged"] * 16 + ["updated"] * 4


def test_no_read_before_write_makes_no_read_and_says_the_job_cannot_be_undone() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(SCHEMA, _users(2))
        data = _input(2)
        refused = invoke(
            "run",
            data,
            "-m",
            mapping(
                "plain.toml", '[attributes."custom:tenant_id"]\ncolumn = "tenant"\n'
            ),
            *real_run_args(pool.endpoint_url, pool_id),
            "--no-read-before-write",
        )
        assert refused.exit_code == 2
        assert without_preflight(refused.output) == (
            "This run will:\n"
            "  - record no before-values (--no-read-before-write without --diff): "
            "it cannot be rolled back\n"
            "Error: this run cannot be rolled back; re-run with --yes to confirm "
            "(no terminal to ask on)\n"
        )
        assert "reads:       none (--no-read-before-write)" in refused.output
        assert pool.calls["AdminUpdateUserAttributes"] == 0
        done = invoke(
            "run",
            data,
            "-m",
            "plain.toml",
            *real_run_args(pool.endpoint_url, pool_id),
            "--no-read-before-write",
            "--yes",
        )
        assert done.exit_code == 0, done.output
        assert pool.calls["AdminGetUser"] == 0
        assert pool.calls["AdminUpdateUserAttributes"] == 2
        undo = _rollback(pool)
        assert undo.exit_code == 2
        assert "ran with --no-read-before-write and without --diff" in undo.output


def test_a_user_gone_before_the_write_fails_at_the_read_with_no_write() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(SCHEMA, _users(3))
        _client(pool).admin_delete_user(UserPoolId=pool_id, Username="u01")
        result = _run(pool, pool_id, _input(3))
        assert result.exit_code == 1, result.output
        rows = read_report("report.csv")
        assert [r["status"] for r in rows] == ["updated", "failed", "updated"]
        assert rows[1]["error_code"] == "UserNotFoundException"
        assert rows[1]["error_message"].startswith(
            "reading the user before the write: "
        )
        assert pool.writes.get("u01", 0) == 0


def test_the_report_shows_each_changed_attribute_before_and_after() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(SCHEMA, _users(3))
        assert _run(pool, pool_id, _input(3, same=1)).exit_code == 0
        for name in ("r.csv", "r.parquet", "r.jsonl"):
            assert invoke("report", "job.sqlite", "-o", name).exit_code == 0
        rows = read_report("r.csv")
        names = [
            "custom:legacy_flag",
            "custom:plan",
            "custom:tenant_id",
            "email",
            "email_verified",
        ]
        header = list(rows[0])
        assert header[11:21] == [f"before:{n}" for n in names] + [
            f"after:{n}" for n in names
        ]
        # u01 had the plan and the flag: the flag deleted, the plan changed.
        u01 = rows[1]
        assert (u01["before:custom:plan"], u01["after:custom:plan"]) == ("basic", "pro")
        assert (u01["before:custom:legacy_flag"], u01["after:custom:legacy_flag"]) == (
            "1",
            "",
        )
        assert (u01["before:email"], u01["after:email"]) == (
            "u01@old.example",
            "u01@new.example",
        )
        # u00 already held every value: unchanged, nothing before or after.
        assert rows[0]["status"] == "unchanged"
        assert {rows[0][f"before:{n}"] for n in names} == {""}
        frame = pl.read_parquet("r.parquet")
        assert frame["before"].dtype == pl.Struct({n: pl.String for n in names})
        assert frame["after"][1]["custom:plan"] == "pro"
        record = json.loads(Path("r.jsonl").read_text().splitlines()[1])
        assert record["before"]["custom:tenant_id"] == "old-1"
        assert record["after"]["custom:tenant_id"] == "new-1"


def test_a_token_run_reads_the_whole_user_and_writes_with_the_token() -> None:
    """Read with AdminGetUser: GetUser shows only what the app client may read,
    and an attribute left out would pass for one the user does not have."""
    with EmulatedPool() as pool:
        pool_id = pool.seed(
            SCHEMA,
            [
                {"username": "a", "custom:plan": "basic"},
                {"username": "b", "custom:plan": "pro"},
            ],
        )
        tokens = {u: pool.issue_access_token(pool_id, u) for u in ("a", "b")}
        data = write(
            "tokens.csv",
            "username,access_token,plan\n"
            + "".join(f"{u},{tokens[u]},pro\n" for u in ("a", "b")),
        )
        result = invoke(
            "run",
            data,
            "-m",
            mapping(
                "token.toml",
                '[attributes."custom:plan"]\ncolumn = "plan"\n',
                options='api = "token"\ntoken_column = "access_token"',
            ),
            *real_run_args(pool.endpoint_url, pool_id),
            "--yes",
        )
        assert result.exit_code == 0, result.output
        assert pool.calls["AdminGetUser"] == 2
        assert pool.calls["GetUser"] == 0
        assert pool.calls["UpdateUserAttributes"] == 1  # b already had pro
        assert [r["status"] for r in read_report("report.csv")] == [
            "updated",
            "unchanged",
        ]
        assert _rollback(pool).exit_code == 0
        assert pool.calls["AdminGetUser"] == 3
        assert pool.user_attributes(pool_id, "a")["custom:plan"] == "basic"


def test_a_rollback_can_itself_be_rolled_back() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(SCHEMA, _users(4))
        assert _run(pool, pool_id, _input(4)).exit_code == 0
        after_job = _everyone(pool, pool_id, 4)
        assert _rollback(pool).exit_code == 0
        redo = invoke(
            "rollback",
            "job.sqlite.rollback.sqlite",
            "--endpoint-url",
            pool.endpoint_url,
            "--read-rate",
            "100",
            "--yes",
        )
        assert redo.exit_code == 0, redo.output
        assert _everyone(pool, pool_id, 4) == after_job


# --- a write whose answer is lost, a resume, a rollback run again ------------------


class _LosesAnswers(EmulatedPool):
    """Applies every write, but loses the answer to ``lose``'s while armed."""

    lose = "u1"
    operation = "AdminUpdateUserAttributes"
    armed = True

    def perform(self, operation: str, request: Any) -> Any:
        reply = super().perform(operation, request)
        if (
            self.armed
            and operation == self.operation
            and json.loads(request.body)["Username"] == self.lose
        ):
            return None  # applied; the connection closes without an answer
        return reply


def _tenants(pool: EmulatedPool, pool_id: str, n: int) -> dict[str, str | None]:
    return {
        f"u{i}": pool.user_attributes(pool_id, f"u{i}").get("custom:tenant_id")
        for i in range(n)
    }


TENANT = '[attributes."custom:tenant_id"]\ncolumn = "tenant"\n'


@pytest.mark.parametrize("resumed", [False, True], ids=["as-it-stopped", "resumed"])
def test_a_write_applied_but_unanswered_is_still_undone(resumed: bool) -> None:
    with _LosesAnswers() as pool:
        pool_id = pool.seed(
            SCHEMA,
            [{"username": f"u{i}", "custom:tenant_id": f"old{i}"} for i in range(3)],
        )
        data = write("in.csv", "username,tenant\nu0,new0\nu1,new1\nu2,new2\n")
        first = invoke(
            "run",
            data,
            "-m",
            mapping("m.toml", TENANT),
            *real_run_args(pool.endpoint_url, pool_id),
            "--max-attempts",
            "1",
            "--yes",
        )
        assert first.exit_code == 1
        assert _tenants(pool, pool_id, 3) == {"u0": "new0", "u1": "new1", "u2": "new2"}
        pool.armed = False
        if resumed:
            # The resume reads u1 at the target: its earlier try was applied.
            resume = invoke("resume", "job.sqlite", "--report", "report.csv")
            assert resume.exit_code == 0, resume.output
            rows = read_report("report.csv")
            assert rows[1]["status"] == "updated"
            assert rows[1]["before:custom:tenant_id"] == "old1"
        assert _rollback(pool).exit_code == 0
        assert _tenants(pool, pool_id, 3) == {"u0": "old0", "u1": "old1", "u2": "old2"}


def test_a_resumed_half_done_row_is_undone_whole() -> None:
    """The update went through, the delete was refused; a resume deletes."""
    with _LosesAnswers() as pool:
        pool.armed = False
        pool_id = pool.seed(
            SCHEMA,
            [{"username": "u0", "custom:tenant_id": "old0", "custom:legacy_flag": "1"}],
        )
        with_delete = mapping(
            "m.toml", TENANT + '\n[delete]\nattributes = ["custom:legacy_flag"]\n'
        )
        data = write("in.csv", "username,tenant\nu0,new0\n")
        pool.operation, pool.lose, pool.armed = "AdminDeleteUserAttributes", "u0", True
        run_args = [*real_run_args(pool.endpoint_url, pool_id), "--yes"]
        stopped = invoke(
            "run", data, "-m", with_delete, *run_args, "--max-attempts", "1"
        )
        assert stopped.exit_code == 1
        pool.armed = False
        assert invoke("resume", "job.sqlite").exit_code == 0
        assert _rollback(pool).exit_code == 0
        user = pool.user_attributes(pool_id, "u0")
        assert (user["custom:tenant_id"], user["custom:legacy_flag"]) == ("old0", "1")


def test_a_rollback_run_again_after_a_lost_answer_is_done_not_a_conflict() -> None:
    with _LosesAnswers() as pool:
        pool.armed = False
        pool_id = pool.seed(
            SCHEMA,
            [{"username": f"u{i}", "custom:tenant_id": f"old{i}"} for i in range(3)],
        )
        data = write("in.csv", "username,tenant\nu0,new0\nu1,new1\nu2,new2\n")
        run_args = [*real_run_args(pool.endpoint_url, pool_id), "--yes"]
        assert (
            invoke("run", data, "-m", mapping("m.toml", TENANT), *run_args).exit_code
            == 0
        )
        pool.armed = True
        assert _rollback(pool, "--max-attempts", "1").exit_code == 1
        pool.armed = False
        again = _rollback(pool)
        assert again.exit_code == 0, again.output
        rows = read_report("job.sqlite.rollback.report.csv")
        assert [r["status"] for r in rows] == ["updated", "updated", "updated"]
        assert _tenants(pool, pool_id, 3) == {"u0": "old0", "u1": "old1", "u2": "old2"}


def test_rows_keyed_by_an_email_the_job_changes_are_undone_by_username() -> None:
    with EmulatedPool() as pool:
        pool_id = pool.seed(
            SCHEMA,
            [
                {
                    "username": "u0",
                    "email": "old@x.example",
                    "email_verified": "true",
                    "custom:tenant_id": "t0",
                }
            ],
        )
        before = pool.user_attributes(pool_id, "u0")
        keyed = write(
            "m.toml",
            '[user]\ncolumn = "email"\nas = "email"\n\n[attributes.email]\n'
            'column = "new_email"\n\n[attributes.email_verified]\nvalue = "true"\n\n'
            + TENANT,
        )
        data = write(
            "in.csv", "email,new_email,tenant\nold@x.example,new@x.example,t1\n"
        )
        run_args = [*real_run_args(pool.endpoint_url, pool_id), "--yes"]
        assert invoke("run", data, "-m", keyed, *run_args).exit_code == 0
        row = read_report("report.csv")[0]
        assert (row["user"], row["username"]) == ("old@x.example", "u0")
        assert _rollback(pool).exit_code == 0
        assert pool.user_attributes(pool_id, "u0") == before


class _PartialReads(EmulatedPool):
    """Answers AdminGetUser 200 with less than a whole user."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__()
        self.answer = answer

    def perform(self, operation: str, request: Any) -> Any:
        if operation == "AdminGetUser":
            return Reply.json(
                {"Username": json.loads(request.body)["Username"], **self.answer}
            )
        return super().perform(operation, request)


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"UserAttributes": [{"Name": "custom:tenant_id", "Value": "old0"}]},
        {"UserAttributes": [{"Name": "sub", "Value": "s"}, {"Name": "custom:x"}]},
    ],
    ids=["no-attributes", "no-sub", "no-value"],
)
def test_a_read_answer_that_is_not_a_whole_user_sends_nothing(
    answer: dict[str, Any],
) -> None:
    """Taken as a user without attributes, it would record no before-values
    and a rollback would delete what it should restore."""
    with _PartialReads(answer) as pool:
        pool_id = pool.seed(SCHEMA, [{"username": "u0", "custom:tenant_id": "old0"}])
        data = write("in.csv", "username,tenant\nu0,new0\n")
        run_args = [*real_run_args(pool.endpoint_url, pool_id), "--yes"]
        result = invoke(
            "run",
            data,
            "-m",
            mapping("m.toml", TENANT),
            *run_args,
            "--max-attempts",
            "2",
        )
        assert result.exit_code == 1
        row = read_report("report.csv")[0]
        assert (row["status"], row["error_code"]) == (
            "failed_retryable",
            "MalformedResponse",
        )
        assert pool.calls["AdminUpdateUserAttributes"] == 0
