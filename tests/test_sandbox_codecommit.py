"""The sandbox's CodeCommit operations, through boto3 (botocore validates every request and response)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sandbox_world import FakeClock, client, clock, without_managed_policies

__all__ = ["clock", "without_managed_policies"]

REPO = "books"


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


@pytest.fixture
def codecommit(clock: FakeClock) -> Any:
    cc = client("codecommit")
    cc.create_repository(repositoryName=REPO, tags={"cdpoc:stack": "t1"})
    return cc


def first_commit(cc: Any) -> dict[str, Any]:
    return dict(
        cc.create_commit(
            repositoryName=REPO,
            branchName="main",
            authorName="Ada",
            email="ada@example.com",
            commitMessage="first",
            putFiles=[
                {"filePath": "appspec.yml", "fileContent": b"version: 0.0\n"},
                {"filePath": "scripts/start.sh", "fileContent": b"#!/bin/sh\n", "fileMode": "EXECUTABLE"},
                {"filePath": "app/api/main.py", "fileContent": b"print('hi')\n"},
            ],
        )
    )


def test_first_commit_creates_the_branch_with_git_ids(codecommit: Any) -> None:
    result = first_commit(codecommit)
    added = {f["absolutePath"]: f for f in result["filesAdded"]}
    assert set(added) == {"appspec.yml", "scripts/start.sh", "app/api/main.py"}
    assert added["appspec.yml"]["blobId"] == git_blob_id(b"version: 0.0\n")
    assert added["scripts/start.sh"]["fileMode"] == "EXECUTABLE"
    assert result["filesUpdated"] == [] and result["filesDeleted"] == []
    branch = codecommit.get_branch(repositoryName=REPO, branchName="main")["branch"]
    assert branch == {"branchName": "main", "commitId": result["commitId"]}
    assert codecommit.get_repository(repositoryName=REPO)["repositoryMetadata"]["defaultBranch"] == "main"
    commit = codecommit.get_commit(repositoryName=REPO, commitId=result["commitId"])["commit"]
    assert commit["treeId"] == result["treeId"] and commit["parents"] == []
    assert commit["message"] == "first"
    assert commit["author"] == {"name": "Ada", "email": "ada@example.com", "date": "1700000000 +0000"}
    assert codecommit.list_branches(repositoryName=REPO)["branches"] == ["main"]


def test_git_ids_match_git_itself(codecommit: Any) -> None:
    """Tree and commit ids are git's: the empty-tree id, and a known single-file tree."""
    result = codecommit.create_commit(
        repositoryName=REPO, branchName="main", putFiles=[{"filePath": "a.txt", "fileContent": b"hello\n"}]
    )
    # `printf 'hello\n' > a.txt; git add a.txt; git write-tree`
    assert result["treeId"] == "2e81171448eb9f2ee3821e3d447aa6b2fe3ddba1"
    emptied = codecommit.create_commit(
        repositoryName=REPO,
        branchName="main",
        parentCommitId=result["commitId"],
        deleteFiles=[{"filePath": "a.txt"}],
    )
    assert emptied["treeId"] == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree
    assert [f["absolutePath"] for f in emptied["filesDeleted"]] == ["a.txt"]


def test_parent_rules(codecommit: Any) -> None:
    with pytest.raises(ClientError) as exc:
        codecommit.create_commit(
            repositoryName=REPO,
            branchName="main",
            parentCommitId="0" * 40,
            putFiles=[{"filePath": "x", "fileContent": b"x"}],
        )
    assert code(exc) == "ParentCommitDoesNotExistException"
    first = first_commit(codecommit)["commitId"]
    put = [{"filePath": "README.md", "fileContent": b"readme"}]
    with pytest.raises(ClientError) as exc:
        codecommit.create_commit(repositoryName=REPO, branchName="main", putFiles=put)
    assert code(exc) == "ParentCommitIdRequiredException"
    second = codecommit.create_commit(repositoryName=REPO, branchName="main", parentCommitId=first, putFiles=put)
    with pytest.raises(ClientError) as exc:
        codecommit.create_commit(
            repositoryName=REPO,
            branchName="main",
            parentCommitId=first,
            putFiles=[{"filePath": "other.md", "fileContent": b"x"}],
        )
    assert code(exc) == "ParentCommitIdOutdatedException"
    with pytest.raises(ClientError) as exc:
        codecommit.create_commit(repositoryName=REPO, branchName="dev", parentCommitId=second["commitId"], putFiles=put)
    assert code(exc) == "BranchDoesNotExistException"
    with pytest.raises(ClientError) as exc:
        codecommit.create_commit(repositoryName=REPO, branchName="main", parentCommitId="not-a-commit", putFiles=put)
    assert code(exc) == "InvalidParentCommitIdException"


def test_identical_tree_is_no_change(codecommit: Any) -> None:
    first = first_commit(codecommit)
    with pytest.raises(ClientError) as exc:
        codecommit.create_commit(
            repositoryName=REPO,
            branchName="main",
            parentCommitId=first["commitId"],
            putFiles=[{"filePath": "appspec.yml", "fileContent": b"version: 0.0\n"}],
        )
    assert code(exc) == "NoChangeException"
    assert codecommit.get_branch(repositoryName=REPO, branchName="main")["branch"]["commitId"] == first["commitId"]


def test_request_errors(codecommit: Any) -> None:
    first = first_commit(codecommit)["commitId"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "FileEntryRequiredException"),
        ({"deleteFiles": [{"filePath": "missing.txt"}]}, "FileDoesNotExistException"),
        (
            {"putFiles": [{"filePath": "a", "fileContent": b"1"}], "deleteFiles": [{"filePath": "a"}]},
            "PutFileEntryConflictException",
        ),
        ({"putFiles": [{"filePath": "a"}]}, "SourceFileOrContentRequiredException"),
        (
            {"putFiles": [{"filePath": "a", "fileContent": b"1", "sourceFile": {"filePath": "appspec.yml"}}]},
            "FileContentAndSourceFileSpecifiedException",
        ),
        (
            {"putFiles": [{"filePath": "appspec.yml/x", "fileContent": b"1"}]},
            "DirectoryNameConflictsWithFileNameException",
        ),
        ({"putFiles": [{"filePath": "scripts", "fileContent": b"1"}]}, "FileNameConflictsWithDirectoryNameException"),
        ({"putFiles": [{"filePath": "../etc/passwd", "fileContent": b"1"}]}, "InvalidPathException"),
        (
            {"putFiles": [{"filePath": f"f{i}", "fileContent": b"1"} for i in range(101)]},
            "MaximumFileEntriesExceededException",
        ),
        (
            {"putFiles": [{"filePath": "big.bin", "fileContent": b"0" * (6 * 1024 * 1024 + 1)}]},
            "FileContentSizeLimitExceededException",
        ),
    ]
    for extra, expected in cases:
        with pytest.raises(ClientError) as exc:
            codecommit.create_commit(repositoryName=REPO, branchName="main", parentCommitId=first, **extra)
        assert code(exc) == expected, extra
    with pytest.raises(ClientError) as exc:
        codecommit.create_commit(
            repositoryName="nope", branchName="main", putFiles=[{"filePath": "a", "fileContent": b""}]
        )
    assert code(exc) == "RepositoryDoesNotExistException"


def test_move_copy_modes_and_empty_folders(codecommit: Any) -> None:
    first = first_commit(codecommit)["commitId"]
    moved = codecommit.create_commit(
        repositoryName=REPO,
        branchName="main",
        parentCommitId=first,
        keepEmptyFolders=True,
        putFiles=[{"filePath": "api.py", "sourceFile": {"filePath": "app/api/main.py", "isMove": True}}],
        setFileModes=[{"filePath": "scripts/start.sh", "fileMode": "NORMAL"}],
    )
    assert [f["absolutePath"] for f in moved["filesAdded"]] == ["api.py", "app/api/.gitkeep"]
    assert [f["absolutePath"] for f in moved["filesDeleted"]] == ["app/api/main.py"]
    assert moved["filesUpdated"] == [
        {"absolutePath": "scripts/start.sh", "blobId": git_blob_id(b"#!/bin/sh\n"), "fileMode": "NORMAL"}
    ]
    api = codecommit.get_file(repositoryName=REPO, filePath="api.py")
    assert api["fileContent"] == b"print('hi')\n" and api["commitId"] == moved["commitId"]


def test_folder_file_and_differences_after_chained_commits(codecommit: Any) -> None:
    first = first_commit(codecommit)["commitId"]
    second = codecommit.create_commit(
        repositoryName=REPO,
        branchName="main",
        parentCommitId=first,
        putFiles=[
            {"filePath": "app/api/main.py", "fileContent": b"print('v2')\n"},
            {"filePath": "app/web/index.html", "fileContent": b"<html></html>"},
            {"filePath": "link", "fileContent": b"app/web/index.html", "fileMode": "SYMLINK"},
        ],
        deleteFiles=[{"filePath": "scripts/start.sh"}],
    )["commitId"]

    root = codecommit.get_folder(repositoryName=REPO, folderPath="/")
    assert root["commitId"] == second
    assert [f["absolutePath"] for f in root["files"]] == ["appspec.yml"]
    assert [s["relativePath"] for s in root["symbolicLinks"]] == ["link"]
    assert [f["absolutePath"] for f in root["subFolders"]] == ["app"]  # scripts/ vanished with its only file
    app = codecommit.get_folder(repositoryName=REPO, folderPath="app", commitSpecifier="main")
    assert [(f["absolutePath"], f["relativePath"]) for f in app["subFolders"]] == [
        ("app/api", "api"),
        ("app/web", "web"),
    ]
    assert app["subFolders"][0]["treeId"] == codecommit.get_folder(repositoryName=REPO, folderPath="app/api")["treeId"]
    old = codecommit.get_folder(repositoryName=REPO, folderPath="scripts", commitSpecifier=first)
    assert old["files"][0]["fileMode"] == "EXECUTABLE"

    old_main = codecommit.get_file(repositoryName=REPO, filePath="/app/api/main.py", commitSpecifier=first)
    assert old_main["fileContent"] == b"print('hi')\n" and old_main["filePath"] == "app/api/main.py"
    assert old_main["fileSize"] == len(b"print('hi')\n")
    new_main = codecommit.get_file(repositoryName=REPO, filePath="app/api/main.py")
    assert new_main["fileContent"] == b"print('v2')\n" and new_main["blobId"] == git_blob_id(b"print('v2')\n")

    differences = codecommit.get_differences(
        repositoryName=REPO, beforeCommitSpecifier=first, afterCommitSpecifier=second
    )["differences"]
    by_change = {(d["changeType"], (d.get("afterBlob") or d.get("beforeBlob"))["path"]) for d in differences}
    assert by_change == {
        ("M", "app/api/main.py"),
        ("A", "app/web/index.html"),
        ("A", "link"),
        ("D", "scripts/start.sh"),
    }
    deleted = next(d for d in differences if d["changeType"] == "D")
    assert deleted["beforeBlob"]["mode"] == "100755" and "afterBlob" not in deleted
    everything = codecommit.get_differences(repositoryName=REPO, afterCommitSpecifier=second)["differences"]
    assert {d["changeType"] for d in everything} == {"A"} and len(everything) == 4
    paginator = codecommit.get_paginator("get_differences")
    pages = list(paginator.paginate(repositoryName=REPO, afterCommitSpecifier=second, PaginationConfig={"PageSize": 3}))
    assert [len(p["differences"]) for p in pages] == [3, 1]
    under_app = codecommit.get_differences(
        repositoryName=REPO, beforeCommitSpecifier=first, afterCommitSpecifier=second, beforePath="app", afterPath="app"
    )["differences"]
    assert len(under_app) == 2


def test_read_errors(codecommit: Any) -> None:
    with pytest.raises(ClientError) as exc:
        codecommit.get_file(repositoryName=REPO, filePath="appspec.yml")
    assert code(exc) == "CommitDoesNotExistException"  # an empty repository has no default branch
    first = first_commit(codecommit)["commitId"]
    failures = [
        (lambda: codecommit.get_file(repositoryName=REPO, filePath="nope.txt"), "FileDoesNotExistException"),
        (lambda: codecommit.get_file(repositoryName=REPO, filePath="scripts"), "FileDoesNotExistException"),
        (lambda: codecommit.get_folder(repositoryName=REPO, folderPath="nope"), "FolderDoesNotExistException"),
        (
            lambda: codecommit.get_folder(repositoryName=REPO, folderPath="x", commitSpecifier="dev"),
            "CommitDoesNotExistException",
        ),
        (lambda: codecommit.get_branch(repositoryName=REPO, branchName="dev"), "BranchDoesNotExistException"),
        (lambda: codecommit.get_branch(repositoryName="nope", branchName="main"), "RepositoryDoesNotExistException"),
        (lambda: codecommit.get_commit(repositoryName=REPO, commitId="f" * 40), "CommitIdDoesNotExistException"),
        (lambda: codecommit.get_commit(repositoryName=REPO, commitId="zz"), "InvalidCommitIdException"),
        (
            lambda: codecommit.get_differences(repositoryName=REPO, afterCommitSpecifier=first, afterPath="nope"),
            "PathDoesNotExistException",
        ),
    ]
    for call, expected in failures:
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == expected


def test_create_branch_list_repositories_and_tags(codecommit: Any) -> None:
    first = first_commit(codecommit)["commitId"]
    codecommit.create_branch(repositoryName=REPO, branchName="dev", commitId=first)
    assert codecommit.list_branches(repositoryName=REPO)["branches"] == ["dev", "main"]
    with pytest.raises(ClientError) as exc:
        codecommit.create_branch(repositoryName=REPO, branchName="dev", commitId=first)
    assert code(exc) == "BranchNameExistsException"
    codecommit.create_repository(repositoryName="another")
    repositories = codecommit.list_repositories(sortBy="repositoryName", order="descending")["repositories"]
    assert [r["repositoryName"] for r in repositories] == [REPO, "another"]

    arn = codecommit.get_repository(repositoryName=REPO)["repositoryMetadata"]["Arn"]
    assert codecommit.list_tags_for_resource(resourceArn=arn)["tags"] == {"cdpoc:stack": "t1"}
    codecommit.tag_resource(resourceArn=arn, tags={"cdpoc:component": "repository"})
    codecommit.untag_resource(resourceArn=arn, tagKeys=["cdpoc:stack"])
    assert codecommit.list_tags_for_resource(resourceArn=arn)["tags"] == {"cdpoc:component": "repository"}
    with pytest.raises(ClientError) as exc:
        codecommit.list_tags_for_resource(resourceArn=arn.replace(REPO, "gone"))
    assert code(exc) == "RepositoryDoesNotExistException"


def test_deleting_a_repository_forgets_its_contents(codecommit: Any) -> None:
    first_commit(codecommit)
    codecommit.delete_repository(repositoryName=REPO)
    codecommit.create_repository(repositoryName=REPO)
    assert codecommit.list_branches(repositoryName=REPO)["branches"] == []
    arn = codecommit.get_repository(repositoryName=REPO)["repositoryMetadata"]["Arn"]
    assert codecommit.list_tags_for_resource(resourceArn=arn)["tags"] == {}
