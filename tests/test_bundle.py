"""cdpoc.bundle: reading and checking bundle/, git blob ids, the diff against the branch, commit batches,
the deterministic zip, and the CodeCommit / S3 requests a push makes (botocore Stubber pins them)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.stub import Stubber

from cdpoc import bundle as bundle_module
from cdpoc.aws.source import DIGEST_METADATA, RemoteFile, SourceAction
from cdpoc.bundle import (
    EXECUTABLE,
    MAX_BYTES_PER_COMMIT,
    MAX_FILES_PER_COMMIT,
    NORMAL,
    BundleFile,
    BundleInvalid,
    batches,
    check_bundle,
    diff,
    git_blob_id,
    push_codecommit,
    push_s3,
    read_bundle,
    zip_bundle,
)
from cdpoc.context import Context
from cdpoc.errors import ConflictError

REPO_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
APPSPEC = {
    "version": 0.0,
    "os": "linux",
    "files": [{"source": "app", "destination": "/opt/app"}],
    "hooks": {"ApplicationStart": [{"location": "scripts/start.sh", "timeout": 60, "runas": "root"}]},
}


@pytest.fixture
def small_bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    (root / "app").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "appspec.yml").write_text(yaml.safe_dump(APPSPEC))
    (root / "app" / "main.py").write_text("print('hi')\n")
    start = root / "scripts" / "start.sh"
    start.write_text("#!/bin/bash\nexit 0\n")
    start.chmod(0o755)
    # What a working copy carries that is not part of a revision.
    (root / "app" / "__pycache__").mkdir()
    (root / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    return root


def test_git_blob_id_is_what_git_computes() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_read_bundle_keeps_modes_and_skips_caches(small_bundle: Path) -> None:
    files = {f.path: f for f in read_bundle(small_bundle)}
    assert sorted(files) == ["app/main.py", "appspec.yml", "scripts/start.sh"]
    assert files["scripts/start.sh"].mode == EXECUTABLE
    assert files["app/main.py"].mode == NORMAL


def test_the_project_bundle_is_valid_and_its_hook_scripts_executable() -> None:
    files = {f.path: f for f in check_bundle(REPO_BUNDLE)}
    assert files["appspec.yml"].mode == NORMAL
    hooks = yaml.safe_load(files["appspec.yml"].content)["hooks"]
    for scripts in hooks.values():
        for script in scripts:
            assert files[script["location"].lstrip("/")].mode == EXECUTABLE


def test_an_invalid_bundle_is_refused_with_every_problem(small_bundle: Path) -> None:
    broken = dict(APPSPEC, os="solaris", hooks={"ApplicationStart": [{"location": "scripts/missing.sh"}]})
    (small_bundle / "appspec.yml").write_text(yaml.safe_dump(broken))
    (small_bundle / "app" / "huge.bin").write_bytes(b"\0" * (bundle_module.MAX_FILE_BYTES + 1))
    with pytest.raises(BundleInvalid) as refused:
        check_bundle(small_bundle)
    message = refused.value.message
    assert "3 problem(s)" in message
    assert "solaris" in message and "scripts/missing.sh" in message and "app/huge.bin" in message
    assert refused.value.exit_code == 2


def test_a_missing_bundle_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleInvalid, match="not a directory"):
        check_bundle(tmp_path / "nope")


def _file(path: str, content: bytes = b"x", mode: str = NORMAL) -> BundleFile:
    return BundleFile(path, content, mode)


def test_diff_puts_changed_deletes_removed_and_sets_modes() -> None:
    local = [_file("same.txt", b"a"), _file("changed.txt", b"new"), _file("new.txt"), _file("run.sh", b"s", EXECUTABLE)]
    remote = {
        "same.txt": RemoteFile(git_blob_id(b"a"), NORMAL),
        "changed.txt": RemoteFile(git_blob_id(b"old"), NORMAL),
        "run.sh": RemoteFile(git_blob_id(b"s"), NORMAL),
        "gone.txt": RemoteFile(git_blob_id(b"g"), NORMAL),
    }
    changes = diff(local, remote)
    assert [f.path for f in changes.puts] == ["changed.txt", "new.txt"]
    assert changes.deletes == ("gone.txt",)
    assert changes.modes == (("run.sh", EXECUTABLE),)
    assert diff(local[:1], {"same.txt": RemoteFile(git_blob_id(b"a"), NORMAL)}).empty


def test_batches_respect_file_count_and_size() -> None:
    many = diff([_file(f"f{i:03}.txt", str(i).encode()) for i in range(250)], {})
    parts = batches(many)
    assert [len(p.puts) for p in parts] == [MAX_FILES_PER_COMMIT, MAX_FILES_PER_COMMIT, 50]
    big = MAX_BYTES_PER_COMMIT // 2 + 1
    heavy = diff([_file(f"big{i}", bytes([i]) * big) for i in range(3)], {"old": RemoteFile("0" * 40, NORMAL)})
    parts = batches(heavy)
    assert [len(p.puts) for p in parts] == [1, 1, 1]
    assert all(sum(len(c) for _, c, _ in p.puts) <= MAX_BYTES_PER_COMMIT for p in parts)
    assert parts[-1].deletes == ("old",)


def test_one_file_over_the_commit_size_still_gets_a_commit_of_its_own() -> None:
    parts = batches(diff([_file("a", b"1" * (MAX_BYTES_PER_COMMIT + 10)), _file("b")], {}))
    assert [[p for p, _, _ in part.puts] for part in parts] == [["a"], ["b"]]


def test_zip_is_deterministic_and_keeps_modes(small_bundle: Path) -> None:
    first = zip_bundle(read_bundle(small_bundle))
    (small_bundle / "app" / "main.py").touch()  # a new mtime must not change the bytes
    assert zip_bundle(reversed(read_bundle(small_bundle))) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["app/main.py", "appspec.yml", "scripts/start.sh"]
        assert archive.getinfo("scripts/start.sh").external_attr >> 16 == 0o100755
        assert archive.getinfo("app/main.py").external_attr >> 16 == 0o100644


# --- the requests a push makes --------------------------------------------------------------------


@pytest.fixture
def ctx(aws: None, make_context: Callable[..., Context]) -> Context:
    return make_context()


@pytest.fixture
def codecommit(ctx: Context) -> Iterator[Stubber]:
    with Stubber(ctx.run.client("codecommit")) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


ACTION = SourceAction("CodeCommit", {"RepositoryName": "s3upload", "BranchName": "main"})


def _folder(path: str, files: list[tuple[str, bytes, str]], folders: list[str], commit: str) -> dict[str, Any]:
    return {
        "commitId": commit,
        "folderPath": path,
        "files": [
            {"blobId": git_blob_id(c), "absolutePath": p, "relativePath": p.rsplit("/", 1)[-1], "fileMode": m}
            for p, c, m in files
        ],
        "subFolders": [{"treeId": "t", "absolutePath": f, "relativePath": f.rsplit("/", 1)[-1]} for f in folders],
    }


def _remote_tree(stubber: Stubber, commit: str, files: list[BundleFile]) -> None:
    stubber.add_response(
        "get_branch",
        {"branch": {"branchName": "main", "commitId": commit}},
        {"repositoryName": "s3upload", "branchName": "main"},
    )
    top = [(f.path, f.content, f.mode) for f in files if "/" not in f.path]
    folders = sorted({f.path.split("/", 1)[0] for f in files if "/" in f.path})
    stubber.add_response(
        "get_folder",
        _folder("/", top, folders, commit),
        {"repositoryName": "s3upload", "commitSpecifier": commit, "folderPath": "/"},
    )
    for folder in reversed(folders):  # files_at reads the last folder found first
        inside = [(f.path, f.content, f.mode) for f in files if f.path.startswith(folder + "/")]
        stubber.add_response(
            "get_folder",
            _folder(folder, inside, [], commit),
            {"repositoryName": "s3upload", "commitSpecifier": commit, "folderPath": "/" + folder},
        )


def test_first_push_to_an_empty_repository_has_no_parent(ctx: Context, codecommit: Stubber, small_bundle: Path) -> None:
    files = read_bundle(small_bundle)
    codecommit.add_client_error("get_branch", "BranchDoesNotExistException", http_status_code=400)
    codecommit.add_response(
        "create_commit",
        {"commitId": "c1", "treeId": "t1", "filesAdded": [], "filesUpdated": [], "filesDeleted": []},
        {
            "repositoryName": "s3upload",
            "branchName": "main",
            "authorName": "cdpoc",
            "commitMessage": "first",
            "putFiles": [{"filePath": f.path, "fileMode": f.mode, "fileContent": f.content} for f in files],
        },
    )
    result = push_codecommit(ctx.run, ACTION, files, "first")
    assert result.commits == ("c1",) and result.revision == "c1"


def test_unchanged_bundle_makes_no_commit_and_reads_no_content(
    ctx: Context, codecommit: Stubber, small_bundle: Path
) -> None:
    files = read_bundle(small_bundle)
    _remote_tree(codecommit, "c1", files)
    # The stubber refuses any call it was not given: GetBranch and one GetFolder per folder, no GetFile/GetBlob.
    result = push_codecommit(ctx.run, ACTION, files, None)
    assert not result.changed and result.commits == ()


def test_a_changed_file_is_the_only_thing_committed_on_the_tip(
    ctx: Context, codecommit: Stubber, small_bundle: Path
) -> None:
    before = read_bundle(small_bundle)
    _remote_tree(codecommit, "c1", [*before, _file("old.txt")])
    (small_bundle / "app" / "main.py").write_text("print('changed')\n")
    codecommit.add_response(
        "create_commit",
        {"commitId": "c2", "treeId": "t2"},
        {
            "repositoryName": "s3upload",
            "branchName": "main",
            "parentCommitId": "c1",
            "authorName": "cdpoc",
            "commitMessage": "cdpoc push-app: 1 added or changed, 1 deleted, 0 mode change(s)",
            "putFiles": [{"filePath": "app/main.py", "fileMode": NORMAL, "fileContent": b"print('changed')\n"}],
            "deleteFiles": [{"filePath": "old.txt"}],
        },
    )
    result = push_codecommit(ctx.run, ACTION, read_bundle(small_bundle), None)
    assert result.commits == ("c2",)


def test_a_large_first_push_is_built_on_a_side_branch_and_released_once(
    ctx: Context, codecommit: Stubber, small_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty repository, a push of two commits: both on cdpoc/push-root (the first makes it, and it becomes
    the default branch), then the pipeline's branch is created at the last one (one referenceCreated: one
    run), made the default, and the side branch deleted."""
    monkeypatch.setattr(bundle_module, "MAX_FILES_PER_COMMIT", 2)
    files = read_bundle(small_bundle)
    arn = "arn:aws:codecommit:us-east-1:123456789012:s3upload"
    codecommit.add_client_error("get_branch", "BranchDoesNotExistException", http_status_code=400)
    codecommit.add_response(
        "get_repository",
        {"repositoryMetadata": {"repositoryName": "s3upload", "Arn": arn}},
        {"repositoryName": "s3upload"},
    )
    codecommit.add_response("list_tags_for_resource", {"tags": {"cdpoc:stack": "t1"}}, {"resourceArn": arn})
    codecommit.add_response("list_branches", {"branches": []}, {"repositoryName": "s3upload"})
    parents: list[str | None] = []
    branches: list[str] = []
    for commit in ("c1", "c2"):
        codecommit.add_response("create_commit", {"commitId": commit, "treeId": "t"})
    codecommit.add_response("create_branch", {}, {"repositoryName": "s3upload", "branchName": "main", "commitId": "c2"})
    codecommit.add_response("update_default_branch", {}, {"repositoryName": "s3upload", "defaultBranchName": "main"})
    codecommit.add_response(
        "delete_branch",
        {"deletedBranch": {"branchName": "cdpoc/push-root", "commitId": "c2"}},
        {"repositoryName": "s3upload", "branchName": "cdpoc/push-root"},
    )
    client = ctx.run.client("codecommit")

    def record(params: dict[str, Any], **_: Any) -> None:
        parents.append(params.get("parentCommitId"))
        branches.append(params["branchName"])

    client.meta.events.register("provide-client-params.codecommit.CreateCommit", record)
    result = push_codecommit(ctx.run, ACTION, files, "big")
    assert result.commits == ("c1", "c2") and result.revision == "c2"
    assert parents == [None, "c1"]
    assert branches == ["cdpoc/push-root"] * 2


def test_a_large_push_into_a_repository_not_tagged_as_the_stacks_is_refused(
    ctx: Context, codecommit: Stubber, small_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle_module, "MAX_FILES_PER_COMMIT", 2)
    arn = "arn:aws:codecommit:us-east-1:123456789012:s3upload"
    codecommit.add_client_error("get_branch", "BranchDoesNotExistException", http_status_code=400)
    codecommit.add_response("get_repository", {"repositoryMetadata": {"repositoryName": "s3upload", "Arn": arn}})
    codecommit.add_response("list_tags_for_resource", {"tags": {"cdpoc:stack": "other"}})
    with pytest.raises(ConflictError, match=r"not tagged as stack t1's \(cdpoc:stack=other\)"):
        push_codecommit(ctx.run, ACTION, read_bundle(small_bundle), "big")


def test_nothing_new_for_codecommit_is_not_an_error(ctx: Context, codecommit: Stubber, small_bundle: Path) -> None:
    codecommit.add_client_error("get_branch", "BranchDoesNotExistException", http_status_code=400)
    codecommit.add_client_error("create_commit", "NoChangeException", http_status_code=400)
    result = push_codecommit(ctx.run, ACTION, read_bundle(small_bundle), None)
    assert not result.changed


def test_a_tip_moved_by_someone_else_is_a_clear_error(ctx: Context, codecommit: Stubber, small_bundle: Path) -> None:
    codecommit.add_client_error("get_branch", "BranchDoesNotExistException", http_status_code=400)
    codecommit.add_client_error("create_commit", "ParentCommitIdOutdatedException", http_status_code=400)
    # push-app looks at the new tip before blaming someone else: it might be its own commit, answer lost.
    codecommit.add_response("get_branch", {"branch": {"branchName": "main", "commitId": "c9"}})
    theirs = {"commitId": "c9", "treeId": "t9", "parents": [], "message": "theirs", "author": {"name": "alice"}}
    codecommit.add_response("get_commit", {"commit": theirs}, {"repositoryName": "s3upload", "commitId": "c9"})
    with pytest.raises(Exception, match="moved while push-app was committing"):
        push_codecommit(ctx.run, ACTION, read_bundle(small_bundle), None)


# --- S3 source ---------------------------------------------------------------------------------------------


def test_s3_source_uploads_once_and_starts_the_pipeline(ctx: Context, small_bundle: Path) -> None:
    s3 = ctx.run.client("s3")
    s3.create_bucket(Bucket="t1-artifacts")
    s3.put_bucket_versioning(Bucket="t1-artifacts", VersioningConfiguration={"Status": "Enabled"})
    action = SourceAction("S3", {"S3Bucket": "t1-artifacts", "S3ObjectKey": "source/app.zip"})
    files = read_bundle(small_bundle)
    with Stubber(ctx.run.client("codepipeline")) as pipeline:
        pipeline.add_response("start_pipeline_execution", {"pipelineExecutionId": "e1"})
        first = push_s3(ctx.run, action, "t1-pipeline", files)
        pipeline.assert_no_pending_responses()
    assert first.changed and first.execution_id == "e1"
    head = s3.head_object(Bucket="t1-artifacts", Key="source/app.zip")
    body = zip_bundle(files)
    assert head["Metadata"][DIGEST_METADATA] == hashlib.sha256(body).hexdigest()
    assert first.revision == head["VersionId"]

    mutating_before = len(ctx.clients.mutating_calls())
    second = push_s3(ctx.run, action, "t1-pipeline", read_bundle(small_bundle))
    assert not second.changed
    assert len(ctx.clients.mutating_calls()) == mutating_before


def test_push_app_takes_the_given_bundle_then_a_local_one_then_the_one_that_ships(tmp_path: Path) -> None:
    from cdpoc.bundle import choose_bundle, shipped_bundle

    assert choose_bundle(tmp_path / "mine", cwd=tmp_path) == (tmp_path / "mine", "--bundle")
    assert choose_bundle(None, cwd=tmp_path)[0] == shipped_bundle()
    (tmp_path / "bundle").mkdir()
    assert choose_bundle(None, cwd=tmp_path) == (tmp_path / "bundle", "./bundle")
    assert check_bundle(shipped_bundle())  # the one that ships is a valid revision
