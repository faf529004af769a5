"""A push larger than one commit is one release: its commits go to a side branch, the pipeline's branch is
fast-forwarded once (one referenceUpdated, one pipeline execution), the side branch is deleted. Against the
sandbox in process (its CodeCommit on a git store, its EventBridge rule starting the pipeline), with the
per-commit file limit lowered so that a few files make several commits.

API calls of a push of k commits on a branch that has a tip (F = folders):
  GetPipeline, GetBranch, GetFolder x F, GetRepository, ListTagsForResource, ListBranches, CreateBranch,
  CreateCommit x k, MergeBranchesByFastForward, DeleteBranch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from faults import KillAfter, Killed, LostAnswer
from sandbox_world import World, build_world, bundle, client, clock, without_managed_policies

from cdpoc import bundle as bundle_module
from cdpoc.aws.source import branch_tip
from cdpoc.bundle import BundleFile, PushResult, push
from cdpoc.context import Context
from cdpoc.errors import ConflictError
from cdpoc.sandbox import codecommit as sandbox_codecommit

__all__ = ["clock", "without_managed_policies"]

FILES_PER_COMMIT = 2


@pytest.fixture
def world(clock: Any, monkeypatch: pytest.MonkeyPatch) -> World:
    """The sandbox's CI/CD world (repository tagged as stack t1's, rule on `main`, pipeline), the per-commit
    limit lowered, and the run CreatePipeline started over (it fails on the empty repository)."""
    made = build_world()
    client("codecommit").tag_resource(resourceArn=made.repository_arn, tags={"cdpoc:stack": "t1"})
    monkeypatch.setattr(bundle_module, "MAX_FILES_PER_COMMIT", FILES_PER_COMMIT)
    clock.advance(1.0)
    return made


@pytest.fixture
def moves() -> Iterator[list[tuple[str, str]]]:
    """(event, branch) of every branch change the sandbox's CodeCommit announces to EventBridge."""
    seen: list[tuple[str, str]] = []

    def record(change: sandbox_codecommit.ReferenceChange) -> None:
        seen.append((change.event, change.branch))

    sandbox_codecommit.REFERENCE_LISTENERS.append(record)
    yield seen
    sandbox_codecommit.REFERENCE_LISTENERS.remove(record)


def files(version: str, extra: int = 5) -> list[BundleFile]:
    """The sandbox world's bundle and `extra` files, all of them depending on `version`."""
    made = [BundleFile(path, content, "NORMAL") for path, content in bundle().items()]
    made += [BundleFile(f"app/file{i}.txt", f"{version} {i}\n".encode(), "NORMAL") for i in range(extra)]
    return made


def tree(world: World, commit: str) -> dict[str, bytes]:
    codecommit = client("codecommit")
    out = {}
    for file in files("any"):
        out[file.path] = codecommit.get_file(
            repositoryName=world.repository, commitSpecifier=commit, filePath=file.path
        )["fileContent"]
    return out


def branches(world: World) -> list[str]:
    return list(client("codecommit").list_branches(repositoryName=world.repository)["branches"])


def pushed(ctx: Context, world: World, version: str) -> PushResult:
    return push(ctx.run, world.pipeline, files(version), f"release {version}")


def runs(world: World) -> list[str]:
    """The pipeline's executions that a push started (the rule's trigger), newest first."""
    return [e["pipelineExecutionId"] for e in world.executions() if e["trigger"]["triggerType"] == "CloudWatchEvent"]


@pytest.fixture
def ctx(world: World, make_context: Callable[..., Context]) -> Context:
    return make_context()


def test_a_first_and_a_second_large_push_are_one_release_each(
    ctx: Context, world: World, moves: list[tuple[str, str]]
) -> None:
    first = pushed(ctx, world, "v1")
    assert len(first.commits) == 4  # 8 files, 2 per commit
    assert [m for m in moves if m[1] == "main"] == [("referenceCreated", "main")]
    assert len(runs(world)) == 1
    assert branches(world) == ["main"]
    assert (
        client("codecommit").get_repository(repositoryName=world.repository)["repositoryMetadata"]["defaultBranch"]
        == "main"
    )
    assert tree(world, "main")["app/file4.txt"] == b"v1 4\n"

    moves.clear()
    ctx.clients.calls.clear()
    second = pushed(ctx, world, "v2")
    assert len(second.commits) == 3  # the 5 changed files, 2 per commit
    assert [m for m in moves if m[1] == "main"] == [("referenceUpdated", "main")]  # one tip change
    assert len(runs(world)) == 2
    assert branches(world) == ["main"]
    assert branch_tip(ctx.run, world.repository, "main") == second.revision == second.commits[-1]
    assert tree(world, "main")["app/file0.txt"] == b"v2 0\n"
    taken = [op for _, op in ctx.clients.calls]
    mutating = [op for op in taken if not op.startswith(("Get", "List"))]
    assert mutating == ["CreateBranch"] + ["CreateCommit"] * 3 + ["MergeBranchesByFastForward", "DeleteBranch"]
    commit = client("codecommit").get_commit(repositoryName=world.repository, commitId=second.revision)["commit"]
    assert commit["message"].strip() == "release v2 (part 3 of 3)"


def test_a_small_push_stays_one_commit_on_the_branch(ctx: Context, world: World) -> None:
    pushed(ctx, world, "v1")
    ctx.clients.calls.clear()
    one = push(ctx.run, world.pipeline, [*files("v1")[:-1], BundleFile("app/file4.txt", b"new\n", "NORMAL")], None)
    assert len(one.commits) == 1
    assert [op for _, op in ctx.clients.calls if op.startswith("Create")] == ["CreateCommit"]
    assert len(runs(world)) == 2


@pytest.mark.parametrize(
    ("killed_after", "left"),
    [(2, "after the side branch and one commit"), (4, "after every commit on the side branch")],
)
def test_an_interrupted_large_push_is_finished_by_the_next_one(
    ctx: Context, world: World, make_context: Callable[..., Context], killed_after: int, left: str
) -> None:
    pushed(ctx, world, "v1")
    tip = branch_tip(ctx.run, world.repository, "main")
    dying = make_context()
    KillAfter(dying.clients, calls=killed_after)  # CreateBranch, CreateCommit x 3, merge, delete
    with pytest.raises(Killed):
        pushed(dying, world, "v2")
    assert branch_tip(ctx.run, world.repository, "main") == tip  # nothing released
    assert len(runs(world)) == 1
    assert sorted(branches(world)) == ["cdpoc/push-" + str(tip)[:12], "main"], left

    again = pushed(make_context(), world, "v2")
    assert len(runs(world)) == 2  # one release for the push, however often it was started
    assert branches(world) == ["main"]
    assert branch_tip(ctx.run, world.repository, "main") == again.revision
    assert tree(world, "main")["app/file3.txt"] == b"v2 3\n"
    # the side branch the killed run left is continued, not redone
    assert len(again.commits) == 3 - (killed_after - 1)


def test_a_side_branch_left_from_another_tip_is_removed(
    ctx: Context, world: World, make_context: Callable[..., Context]
) -> None:
    """Killed after the fast-forward: the release happened; the next large push (from the new tip) removes
    the side branch the killed run could not."""
    pushed(ctx, world, "v1")
    dying = make_context()
    KillAfter(dying.clients, operation="codecommit:MergeBranchesByFastForward")
    with pytest.raises(Killed):
        pushed(dying, world, "v2")
    assert len(runs(world)) == 2 and len(branches(world)) == 2
    assert not pushed(make_context(), world, "v2").changed  # nothing left to push; the branch stays till then
    pushed(make_context(), world, "v3")
    assert branches(world) == ["main"] and len(runs(world)) == 3


def test_a_lost_fast_forward_answer_is_this_push_released(
    ctx: Context, world: World, make_context: Callable[..., Context]
) -> None:
    pushed(ctx, world, "v1")
    pushing = make_context()
    fault = LostAnswer(pushing.clients, "codecommit:MergeBranchesByFastForward")
    result = pushed(pushing, world, "v2")
    assert fault.lost == 1
    assert branch_tip(ctx.run, world.repository, "main") == result.revision
    assert branches(world) == ["main"] and len(runs(world)) == 2


def test_a_branch_moved_by_someone_else_is_not_fast_forwarded(
    ctx: Context, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed(ctx, world, "v1")
    codecommit = ctx.run.client("codecommit")
    original = codecommit.merge_branches_by_fast_forward
    theirs: list[str] = []

    def someone_pushes_first(**params: Any) -> Any:
        theirs.append(world.commit({"app/theirs.txt": b"theirs\n"}, message="theirs"))
        return original(**params)

    monkeypatch.setattr(codecommit, "merge_branches_by_fast_forward", someone_pushes_first)
    with pytest.raises(ConflictError, match=r"moved while push-app was committing .* nothing was released"):
        pushed(ctx, world, "v2")
    assert branch_tip(ctx.run, world.repository, "main") == theirs[0]
    assert len(runs(world)) == 2  # v1, and their commit: nothing of this push


def test_a_first_push_killed_before_its_branch_became_the_default_is_tidied_by_the_next(
    world: World, make_context: Callable[..., Context]
) -> None:
    """An empty repository's first large push: the side branch (the first branch, so the default) got every
    commit and `main` was created at the last one, then the run died. The release happened; the next large
    push makes `main` the default (a default branch cannot be deleted) and removes the side branch."""
    dying = make_context()
    KillAfter(dying.clients, operation="codecommit:CreateBranch")
    with pytest.raises(Killed):
        pushed(dying, world, "v1")
    metadata = client("codecommit").get_repository(repositoryName=world.repository)["repositoryMetadata"]
    assert metadata["defaultBranch"] == "cdpoc/push-root" and len(runs(world)) == 1

    pushed(make_context(), world, "v2")
    metadata = client("codecommit").get_repository(repositoryName=world.repository)["repositoryMetadata"]
    assert metadata["defaultBranch"] == "main" and branches(world) == ["main"]
    assert len(runs(world)) == 2
