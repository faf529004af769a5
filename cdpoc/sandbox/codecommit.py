"""CodeCommit operations moto 5.2.5 lacks, on moto's CodeCommitResponse, backed by cdpoc/sandbox/gitstore.

Added: CreateCommit, CreateBranch, DeleteBranch, GetBranch, ListBranches, UpdateDefaultBranch,
MergeBranchesByFastForward, GetCommit, GetFile, GetFolder, GetDifferences, ListRepositories,
ListTagsForResource, TagResource, UntagResource, UpdateRepositoryDescription. Replaced: CreateRepository (moto
drops the `tags` parameter). Request and response shapes follow botocore's codecommit service model; errors
use CodeCommit's codes. Each repository's git objects live on moto's repository object, so deleting the
repository or resetting moto forgets them. A branch that is created, moves or is deleted is announced to
REFERENCE_LISTENERS, as CodeCommit announces it to EventBridge ("CodeCommit Repository State Change":
referenceCreated, referenceUpdated, referenceDeleted).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.codecommit.models import CodeCommit, CodeCommitBackend, codecommit_backends
from moto.codecommit.responses import CodeCommitResponse
from moto.core.exceptions import JsonRESTError
from moto.core.utils import iso_8601_datetime_with_milliseconds

from cdpoc.sandbox.gitstore import (
    GIT_MODES,
    CodeCommitError,
    Entry,
    GitRepository,
    Person,
    PutFile,
    SetMode,
    check_branch_name,
    normalize_path,
)
from cdpoc.sandbox.patching import add_operations, replace_operations
from cdpoc.sandbox.simulation import SIMULATION

DEFAULT_AUTHOR = "AWS CodeCommit"
PAGE_SIZE = 100
_GIT = "_cdpoc_git"
_TAGS = "_cdpoc_tags"


@dataclass(frozen=True)
class ReferenceChange:
    """A branch created, moved or deleted: what CodeCommit sends to EventBridge."""

    account: str
    region: str
    repository_name: str
    repository_id: str
    repository_arn: str
    branch: str
    commit_id: str | None  # None: the branch was deleted (referenceDeleted)
    old_commit_id: str | None  # None: the branch was created (referenceCreated)
    instant: float
    # A move made by a merge carries the merge's commits and option in the event's detail
    # (sourceCommitId, destinationCommitId, baseCommitId, mergeOption).
    merge: tuple[tuple[str, str], ...] = ()

    @property
    def event(self) -> str:
        if self.commit_id is None:
            return "referenceDeleted"
        return "referenceCreated" if self.old_commit_id is None else "referenceUpdated"


REFERENCE_LISTENERS: list[Callable[[ReferenceChange], None]] = []


# ---- state on moto's objects


def backend_of(account: str, region: str) -> CodeCommitBackend:
    return codecommit_backends[account][region]


def git_of(repository: CodeCommit) -> GitRepository:
    git = getattr(repository, _GIT, None)
    if git is None:
        git = GitRepository()
        setattr(repository, _GIT, git)
    return git


def tags_of(repository: CodeCommit) -> dict[str, str]:
    tags = getattr(repository, _TAGS, None)
    if tags is None:
        tags = {}
        setattr(repository, _TAGS, tags)
    return tags


def find_repository(account: str, region: str, name: str | None) -> CodeCommit | None:
    if not name:
        return None
    return backend_of(account, region).repositories.get(name)


# ---- request helpers


def _refused(error: CodeCommitError) -> JsonRESTError:
    return JsonRESTError(error.code, error.message)


def _body(response: CodeCommitResponse) -> dict[str, Any]:
    return json.loads(response.body or "{}")


def _repository(response: CodeCommitResponse, body: dict[str, Any]) -> CodeCommit:
    name = body.get("repositoryName")
    if not name:
        raise JsonRESTError("RepositoryNameRequiredException", "A repository name is required.")
    repository = find_repository(response.current_account, response.region, name)
    if repository is None:
        raise JsonRESTError("RepositoryDoesNotExistException", f"{name} does not exist")
    return repository


def _repository_by_arn(response: CodeCommitResponse, arn: str | None) -> CodeCommit:
    if not arn:
        raise JsonRESTError("ResourceArnRequiredException", "A valid Amazon Resource Name (ARN) is required.")
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "codecommit":
        raise JsonRESTError("InvalidResourceArnException", f"The value for the resource ARN is not valid: {arn}")
    for repository in backend_of(response.current_account, response.region).repositories.values():
        if repository.repository_metadata["Arn"] == arn:
            return repository
    raise JsonRESTError("RepositoryDoesNotExistException", f"{parts[5]} does not exist")


def _page(items: list[Any], token: str | None, size: int = PAGE_SIZE) -> tuple[list[Any], str | None]:
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise JsonRESTError("InvalidContinuationTokenException", "The specified continuation token is not valid.")
        start = int(token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _metadata(path: str, entry: Entry) -> dict[str, str]:
    return {"absolutePath": path, "blobId": entry.blob_id, "fileMode": entry.mode}


def _put_files(entries: list[dict[str, Any]]) -> list[PutFile]:
    puts = []
    for item in entries:
        source = item.get("sourceFile")
        content = item.get("fileContent")
        puts.append(
            PutFile(
                path=normalize_path(item.get("filePath")),
                mode=_mode(item.get("fileMode")),
                content=base64.b64decode(content) if content is not None else None,
                source_path=normalize_path(source.get("filePath")) if source else None,
                is_move=bool(source and source.get("isMove")),
            )
        )
    return puts


def _set_mode(item: dict[str, Any]) -> SetMode:
    mode = _mode(item.get("fileMode"))
    if mode is None:
        raise CodeCommitError(
            "FileModeRequiredException", "The commit cannot be created because no file mode has been specified."
        )
    return SetMode(normalize_path(item.get("filePath")), mode)


def _mode(mode: str | None) -> str | None:
    if mode is not None and mode not in ("NORMAL", "EXECUTABLE", "SYMLINK"):
        raise CodeCommitError("InvalidFileModeException", f"The specified file mode {mode} is not valid.")
    return mode


def _announce(
    response: CodeCommitResponse,
    repository: CodeCommit,
    change: tuple[str, str | None, str | None],
    instant: float,
    merge: tuple[tuple[str, str], ...] = (),
) -> None:
    branch, commit_id, old_commit_id = change
    metadata = repository.repository_metadata
    metadata["lastModifiedDate"] = iso_8601_datetime_with_milliseconds()
    metadata["defaultBranch"] = git_of(repository).default_branch or branch
    event = ReferenceChange(
        account=response.current_account,
        region=response.region,
        repository_name=metadata["repositoryName"],
        repository_id=metadata["repositoryId"],
        repository_arn=metadata["Arn"],
        branch=branch,
        commit_id=commit_id,
        old_commit_id=old_commit_id,
        instant=instant,
        merge=merge,
    )
    for listener in REFERENCE_LISTENERS:
        listener(event)


# ---- operations


def create_repository(self: CodeCommitResponse, original: Callable[[CodeCommitResponse], str]) -> str:
    result = original(self)
    tags = _body(self).get("tags") or {}
    repository = find_repository(self.current_account, self.region, _body(self).get("repositoryName"))
    if repository is not None:
        tags_of(repository).update(tags)
    return result


def create_commit(self: CodeCommitResponse) -> str:
    body = _body(self)
    repository = _repository(self, body)
    git = git_of(repository)
    instant = SIMULATION.now()
    try:
        author = Person(body.get("authorName") or DEFAULT_AUTHOR, body.get("email") or "", f"{int(instant)} +0000")
        result = git.create_commit(
            branch=body.get("branchName", ""),
            parent_id=body.get("parentCommitId"),
            author=author,
            message=body.get("commitMessage") or "",
            puts=_put_files(body.get("putFiles") or []),
            deletes=[normalize_path(d.get("filePath")) for d in body.get("deleteFiles") or []],
            modes=[_set_mode(m) for m in body.get("setFileModes") or []],
            keep_empty_folders=bool(body.get("keepEmptyFolders")),
            instant=instant,
        )
    except CodeCommitError as error:
        raise _refused(error) from None
    _announce(self, repository, (body["branchName"], result.commit.commit_id, result.old_tip), instant)
    return json.dumps(
        {
            "commitId": result.commit.commit_id,
            "treeId": result.commit.tree_id,
            "filesAdded": [_metadata(p, e) for p, e in result.added],
            "filesUpdated": [_metadata(p, e) for p, e in result.updated],
            "filesDeleted": [_metadata(p, e) for p, e in result.deleted],
        }
    )


def create_branch(self: CodeCommitResponse) -> str:
    body = _body(self)
    repository = _repository(self, body)
    if not body.get("commitId"):
        raise JsonRESTError("CommitIdRequiredException", "A commit ID is required.")
    instant = SIMULATION.now()
    try:
        git_of(repository).create_branch(body.get("branchName", ""), body["commitId"], instant)
    except CodeCommitError as error:
        raise _refused(error) from None
    _announce(self, repository, (body["branchName"], body["commitId"], None), instant)
    return ""


def delete_branch(self: CodeCommitResponse) -> str:
    """The branch goes (never the default one); a branch that is not there is no error: the model lists no
    BranchDoesNotExistException for DeleteBranch, and the answer then has no `deletedBranch`."""
    body = _body(self)
    repository = _repository(self, body)
    branch = body.get("branchName")
    instant = SIMULATION.now()
    try:
        old_tip = git_of(repository).delete_branch(branch, instant)
    except CodeCommitError as error:
        raise _refused(error) from None
    if old_tip is None:
        return json.dumps({})
    _announce(self, repository, (str(branch), None, old_tip), instant)
    return json.dumps({"deletedBranch": {"branchName": branch, "commitId": old_tip}})


def update_default_branch(self: CodeCommitResponse) -> str:
    body = _body(self)
    repository = _repository(self, body)
    branch = body.get("defaultBranchName")
    try:
        git_of(repository).update_default_branch(branch)
    except CodeCommitError as error:
        raise _refused(error) from None
    repository.repository_metadata["defaultBranch"] = str(branch)
    repository.repository_metadata["lastModifiedDate"] = iso_8601_datetime_with_milliseconds()
    return ""


def merge_branches_by_fast_forward(self: CodeCommitResponse) -> str:
    """The target branch (targetBranch, else the destination when it names a branch) moves to the source
    commit when that descends from the destination commit; ManualMergeRequiredException when it does not
    (the branches diverged). A target already holding the source stays where it is (git's "Already up to
    date"). A move is announced as referenceUpdated with the merge's commits, FAST_FORWARD_MERGE."""
    body = _body(self)
    repository = _repository(self, body)
    instant = SIMULATION.now()
    try:
        merged = git_of(repository).fast_forward(
            body.get("sourceCommitSpecifier"), body.get("destinationCommitSpecifier"), body.get("targetBranch"), instant
        )
    except CodeCommitError as error:
        raise _refused(error) from None
    if merged.moved:
        merge = (
            ("sourceCommitId", merged.source_id),
            ("destinationCommitId", merged.destination_id),
            ("baseCommitId", merged.destination_id),  # a fast-forward's merge base is the destination itself
            ("mergeOption", "FAST_FORWARD_MERGE"),
        )
        _announce(self, repository, (merged.branch, merged.commit.commit_id, merged.old_tip), instant, merge)
    return json.dumps({"commitId": merged.commit.commit_id, "treeId": merged.commit.tree_id})


def get_branch(self: CodeCommitResponse) -> str:
    body = _body(self)
    git = git_of(_repository(self, body))
    branch = body.get("branchName")
    try:
        check_branch_name(branch)
    except CodeCommitError as error:
        raise _refused(error) from None
    if branch not in git.branches:
        raise JsonRESTError("BranchDoesNotExistException", f"Branch {branch} does not exist.")
    return json.dumps({"branch": {"branchName": branch, "commitId": git.branches[branch]}})


def list_branches(self: CodeCommitResponse) -> str:
    body = _body(self)
    names = sorted(git_of(_repository(self, body)).branches)
    page, token = _page(names, body.get("nextToken"))
    return json.dumps({"branches": page, **({"nextToken": token} if token else {})})


def get_commit(self: CodeCommitResponse) -> str:
    body = _body(self)
    try:
        commit = git_of(_repository(self, body)).commit(body.get("commitId"))
    except CodeCommitError as error:
        raise _refused(error) from None
    return json.dumps(
        {
            "commit": {
                "commitId": commit.commit_id,
                "treeId": commit.tree_id,
                "parents": list(commit.parents),
                "message": commit.message,
                "author": commit.author.to_json(),
                "committer": commit.committer.to_json(),
                "additionalData": "",
            }
        }
    )


def get_file(self: CodeCommitResponse) -> str:
    body = _body(self)
    git = git_of(_repository(self, body))
    try:
        commit = git.resolve(body.get("commitSpecifier"))
        path, entry, content = git.file(commit, body.get("filePath", ""))
    except CodeCommitError as error:
        raise _refused(error) from None
    return json.dumps(
        {
            "commitId": commit.commit_id,
            "blobId": entry.blob_id,
            "filePath": path,
            "fileMode": entry.mode,
            "fileSize": len(content),
            "fileContent": base64.b64encode(content).decode(),
        }
    )


def get_folder(self: CodeCommitResponse) -> str:
    body = _body(self)
    git = git_of(_repository(self, body))
    requested = body.get("folderPath", "")
    try:
        commit = git.resolve(body.get("commitSpecifier"))
        folder = git.folder(commit, requested)
    except CodeCommitError as error:
        raise _refused(error) from None

    def relative(path: str) -> str:
        return path.rsplit("/", 1)[-1]

    return json.dumps(
        {
            "commitId": commit.commit_id,
            "folderPath": requested,
            "treeId": folder.tree_id,
            "subFolders": [
                {"treeId": tree, "absolutePath": path, "relativePath": relative(path)}
                for path, tree in folder.sub_folders
            ],
            "files": [
                {"blobId": e.blob_id, "absolutePath": p, "relativePath": relative(p), "fileMode": e.mode}
                for p, e in folder.files
                if e.mode != "SYMLINK"
            ],
            "symbolicLinks": [
                {"blobId": e.blob_id, "absolutePath": p, "relativePath": relative(p), "fileMode": e.mode}
                for p, e in folder.files
                if e.mode == "SYMLINK"
            ],
            "subModules": [],
        }
    )


def get_differences(self: CodeCommitResponse) -> str:
    body = _body(self)
    git = git_of(_repository(self, body))
    if not body.get("afterCommitSpecifier"):
        raise JsonRESTError("CommitRequiredException", "A commit must be specified.")
    limit = body.get("MaxResults")
    if limit is not None and limit < 1:
        raise JsonRESTError(
            "InvalidMaxResultsException", f"The specified number of maximum results {limit} is not valid."
        )
    try:
        after = git.resolve(body["afterCommitSpecifier"])
        before = git.resolve(body["beforeCommitSpecifier"]) if body.get("beforeCommitSpecifier") else None
        changes = git.differences(before, after, body.get("beforePath"), body.get("afterPath"))
    except CodeCommitError as error:
        raise _refused(error) from None

    differences = []
    for kind, old, new in changes:
        difference: dict[str, Any] = {"changeType": kind}
        if old is not None:
            difference["beforeBlob"] = _blob_metadata(*old)
        if new is not None:
            difference["afterBlob"] = _blob_metadata(*new)
        differences.append(difference)
    page, token = _page(differences, body.get("NextToken"), limit or PAGE_SIZE)
    return json.dumps({"differences": page, **({"NextToken": token} if token else {})})


def _blob_metadata(path: str, entry: Entry) -> dict[str, str]:
    # BlobMetadata.mode is git's octal mode string, unlike FileMetadata.fileMode
    return {"blobId": entry.blob_id, "path": path, "mode": GIT_MODES[entry.mode]}


def list_repositories(self: CodeCommitResponse) -> str:
    body = _body(self)
    sort_by = body.get("sortBy") or "repositoryName"
    order = body.get("order") or "ascending"
    if sort_by not in ("repositoryName", "lastModifiedDate"):
        raise JsonRESTError("InvalidSortByException", "The specified sort by value is not valid.")
    if order not in ("ascending", "descending"):
        raise JsonRESTError("InvalidOrderException", "The specified sort order is not valid.")
    repositories = [r.repository_metadata for r in backend_of(self.current_account, self.region).repositories.values()]
    repositories.sort(key=lambda m: m[sort_by], reverse=order == "descending")
    pairs = [{"repositoryName": m["repositoryName"], "repositoryId": m["repositoryId"]} for m in repositories]
    page, token = _page(pairs, body.get("nextToken"), 1000)
    return json.dumps({"repositories": page, **({"nextToken": token} if token else {})})


def list_tags_for_resource(self: CodeCommitResponse) -> str:
    repository = _repository_by_arn(self, _body(self).get("resourceArn"))
    return json.dumps({"tags": dict(tags_of(repository))})


def tag_resource(self: CodeCommitResponse) -> str:
    body = _body(self)
    repository = _repository_by_arn(self, body.get("resourceArn"))
    if not body.get("tags"):
        raise JsonRESTError("TagsMapRequiredException", "A map of tags is required.")
    tags_of(repository).update(body["tags"])
    return ""


def untag_resource(self: CodeCommitResponse) -> str:
    body = _body(self)
    repository = _repository_by_arn(self, body.get("resourceArn"))
    for key in body.get("tagKeys") or []:
        tags_of(repository).pop(key, None)
    return ""


# ---- repository settings (UpdateRepositoryDescription)

# RepositoryDescription's length limit in botocore's codecommit model.
DESCRIPTION_LIMIT = 1000


def update_repository_description(self: CodeCommitResponse) -> str:
    """The description replaces the old one; an absent one clears it. No output (botocore's model)."""
    body = _body(self)
    repository = _repository(self, body)
    description = body.get("repositoryDescription") or ""
    if len(description) > DESCRIPTION_LIMIT:
        raise JsonRESTError(
            "InvalidRepositoryDescriptionException",
            f"The description is not valid: it must be at most {DESCRIPTION_LIMIT} characters.",
        )
    repository.repository_metadata["repositoryDescription"] = description
    repository.repository_metadata["lastModifiedDate"] = iso_8601_datetime_with_milliseconds()
    return ""


def install() -> None:
    replace_operations(CodeCommitResponse, create_repository)
    add_operations(
        CodeCommitResponse,
        create_commit,
        create_branch,
        delete_branch,
        get_branch,
        list_branches,
        update_default_branch,
        merge_branches_by_fast_forward,
        get_commit,
        get_file,
        get_folder,
        get_differences,
        list_repositories,
        list_tags_for_resource,
        tag_resource,
        untag_resource,
        update_repository_description,
    )
