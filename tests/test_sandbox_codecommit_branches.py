"""The sandbox's CodeCommit branch operations (DeleteBranch, UpdateDefaultBranch, MergeBranchesByFastForward)
and the EventBridge events they send, through boto3 and the sandbox's pipeline trigger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_world import FakeClock, build_world, bundle, client, clock, without_managed_policies

from cdpoc.sandbox import codecommit as sandbox_codecommit
from cdpoc.sandbox.codepipeline import codecommit_event

__all__ = ["clock", "without_managed_policies"]

REPO = "books"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture
def events(clock: FakeClock) -> Iterator[list[dict[str, Any]]]:
    """Every CodeCommit event the sandbox announces, as the EventBridge event AWS would put on the bus."""
    seen: list[dict[str, Any]] = []

    def record(change: sandbox_codecommit.ReferenceChange) -> None:
        seen.append(codecommit_event(change))

    sandbox_codecommit.REFERENCE_LISTENERS.append(record)
    yield seen
    sandbox_codecommit.REFERENCE_LISTENERS.remove(record)


@pytest.fixture
def cc(clock: FakeClock) -> Any:
    codecommit = client("codecommit")
    codecommit.create_repository(repositoryName=REPO)
    return codecommit


def commit(cc: Any, branch: str, parent: str | None, path: str, content: bytes) -> str:
    request: dict[str, Any] = {
        "repositoryName": REPO,
        "branchName": branch,
        "putFiles": [{"filePath": path, "fileContent": content}],
    }
    if parent:
        request["parentCommitId"] = parent
    return str(cc.create_commit(**request)["commitId"])


def tip(cc: Any, branch: str) -> str:
    return str(cc.get_branch(repositoryName=REPO, branchName=branch)["branch"]["commitId"])


def detail(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["detail"]["event"], e["detail"]["referenceName"]) for e in events]


def test_fast_forward_moves_the_target_once_and_says_so(cc: Any, events: list[dict[str, Any]]) -> None:
    base = commit(cc, "main", None, "a.txt", b"a")
    cc.create_branch(repositoryName=REPO, branchName="side", commitId=base)
    one = commit(cc, "side", base, "b.txt", b"b")
    two = commit(cc, "side", one, "c.txt", b"c")
    events.clear()

    merged = cc.merge_branches_by_fast_forward(
        repositoryName=REPO, sourceCommitSpecifier="side", destinationCommitSpecifier="main", targetBranch="main"
    )

    assert merged["commitId"] == two == tip(cc, "main")
    assert merged["treeId"] == cc.get_commit(repositoryName=REPO, commitId=two)["commit"]["treeId"]
    [event] = events
    assert event["detail"] == {
        "callerUserArn": event["detail"]["callerUserArn"],
        "event": "referenceUpdated",
        "referenceFullName": "refs/heads/main",
        "referenceName": "main",
        "referenceType": "branch",
        "repositoryId": cc.get_repository(repositoryName=REPO)["repositoryMetadata"]["repositoryId"],
        "repositoryName": REPO,
        "commitId": two,
        "oldCommitId": base,
        "sourceCommitId": two,
        "destinationCommitId": base,
        "baseCommitId": base,
        "mergeOption": "FAST_FORWARD_MERGE",
    }
    # Again: main holds the source already, nothing moves, nothing is announced.
    again = cc.merge_branches_by_fast_forward(
        repositoryName=REPO, sourceCommitSpecifier=two, destinationCommitSpecifier="main", targetBranch="main"
    )
    assert again["commitId"] == two and len(events) == 1


def test_diverged_branches_need_a_manual_merge_and_nothing_moves(cc: Any, events: list[dict[str, Any]]) -> None:
    base = commit(cc, "main", None, "a.txt", b"a")
    cc.create_branch(repositoryName=REPO, branchName="side", commitId=base)
    commit(cc, "side", base, "b.txt", b"b")
    theirs = commit(cc, "main", base, "a.txt", b"theirs")  # someone pushed to main meanwhile
    events.clear()
    with pytest.raises(ClientError) as refused:
        cc.merge_branches_by_fast_forward(
            repositoryName=REPO, sourceCommitSpecifier="side", destinationCommitSpecifier="main", targetBranch="main"
        )
    assert code(refused) == "ManualMergeRequiredException"
    assert tip(cc, "main") == theirs and events == []

    # The destination named by an older commit than the target's tip: the target was modified.
    side = tip(cc, "side")
    with pytest.raises(ClientError) as moved:
        cc.merge_branches_by_fast_forward(
            repositoryName=REPO, sourceCommitSpecifier=side, destinationCommitSpecifier=base, targetBranch="main"
        )
    assert code(moved) == "ConcurrentReferenceUpdateException"


@pytest.mark.parametrize(
    ("request_fields", "error"),
    [
        (
            {"sourceCommitSpecifier": "side", "destinationCommitSpecifier": "main", "targetBranch": "gone"},
            "BranchDoesNotExistException",
        ),
        ({"sourceCommitSpecifier": "nope", "destinationCommitSpecifier": "main"}, "CommitDoesNotExistException"),
        (
            {"sourceCommitSpecifier": "side", "destinationCommitSpecifier": "main", "targetBranch": "a..b"},
            "InvalidBranchNameException",
        ),
        ({"sourceCommitSpecifier": "side", "destinationCommitSpecifier": "BASE"}, "InvalidTargetBranchException"),
    ],
)
def test_fast_forward_request_errors(cc: Any, request_fields: dict[str, str], error: str) -> None:
    base = commit(cc, "main", None, "a.txt", b"a")
    cc.create_branch(repositoryName=REPO, branchName="side", commitId=base)
    fields = {k: (base if v == "BASE" else v) for k, v in request_fields.items()}
    with pytest.raises(ClientError) as refused:
        cc.merge_branches_by_fast_forward(repositoryName=REPO, **fields)
    assert code(refused) == error


def test_delete_branch_but_never_the_default_and_a_missing_one_is_no_error(
    cc: Any, events: list[dict[str, Any]]
) -> None:
    base = commit(cc, "main", None, "a.txt", b"a")
    cc.create_branch(repositoryName=REPO, branchName="cdpoc/push-1", commitId=base)
    assert detail(events) == [("referenceCreated", "main"), ("referenceCreated", "cdpoc/push-1")]

    deleted = cc.delete_branch(repositoryName=REPO, branchName="cdpoc/push-1")
    assert deleted["deletedBranch"] == {"branchName": "cdpoc/push-1", "commitId": base}
    assert events[-1]["detail"]["event"] == "referenceDeleted"
    assert events[-1]["detail"]["oldCommitId"] == base and "commitId" not in events[-1]["detail"]
    assert cc.list_branches(repositoryName=REPO)["branches"] == ["main"]

    again = cc.delete_branch(repositoryName=REPO, branchName="cdpoc/push-1")
    assert "deletedBranch" not in again and len(events) == 3

    with pytest.raises(ClientError) as refused:
        cc.delete_branch(repositoryName=REPO, branchName="main")
    assert code(refused) == "DefaultBranchCannotBeDeletedException"


def test_the_first_branch_is_the_default_until_another_is_made_default(cc: Any) -> None:
    base = commit(cc, "side", None, "a.txt", b"a")
    assert cc.get_repository(repositoryName=REPO)["repositoryMetadata"]["defaultBranch"] == "side"
    with pytest.raises(ClientError) as refused:
        cc.update_default_branch(repositoryName=REPO, defaultBranchName="main")
    assert code(refused) == "BranchDoesNotExistException"
    cc.create_branch(repositoryName=REPO, branchName="main", commitId=base)
    cc.update_default_branch(repositoryName=REPO, defaultBranchName="main")
    assert cc.get_repository(repositoryName=REPO)["repositoryMetadata"]["defaultBranch"] == "main"
    cc.delete_branch(repositoryName=REPO, branchName="side")
    assert cc.list_branches(repositoryName=REPO)["branches"] == ["main"]


def test_the_pipeline_starts_for_its_branch_only(clock: FakeClock) -> None:
    """The rule (referenceCreated/referenceUpdated on the pipeline's branch) ignores a side branch being
    created, committed to and deleted; the fast-forward of the pipeline's branch starts one execution."""
    world = build_world()
    cc = client("codecommit")
    base = world.commit(bundle(), message="first")
    before = len(world.executions())
    cc.create_branch(repositoryName=world.repository, branchName="cdpoc/push-x", commitId=base)
    side = cc.create_commit(
        repositoryName=world.repository,
        branchName="cdpoc/push-x",
        parentCommitId=base,
        putFiles=[{"filePath": "app/more.txt", "fileContent": b"more"}],
    )["commitId"]
    assert len(world.executions()) == before

    cc.merge_branches_by_fast_forward(
        repositoryName=world.repository,
        sourceCommitSpecifier=side,
        destinationCommitSpecifier=world.branch,
        targetBranch=world.branch,
    )
    cc.delete_branch(repositoryName=world.repository, branchName="cdpoc/push-x")
    newest, *_ = world.executions()
    assert len(world.executions()) == before + 1
    assert newest["trigger"]["triggerType"] == "CloudWatchEvent"
    clock.advance(1.0)  # the source action runs: it fetches the fast-forwarded tip
    assert world.executions()[0]["sourceRevisions"][0]["revisionId"] == side


def test_one_commit_carries_at_most_7_mb_of_content(cc: Any) -> None:
    """Each file under CodeCommit's 6 MB, together over the 7 MB a commit may change: refused, which is why
    cdpoc splits a large push into commits of ~4 MB."""
    five_mb = b"x" * (5 * 1024 * 1024)
    with pytest.raises(ClientError) as refused:
        cc.create_commit(
            repositoryName=REPO,
            branchName="main",
            putFiles=[{"filePath": "a.bin", "fileContent": five_mb}, {"filePath": "b.bin", "fileContent": five_mb}],
        )
    assert code(refused) == "FileContentSizeLimitExceededException"
    assert cc.list_branches(repositoryName=REPO)["branches"] == []
