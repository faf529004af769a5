"""The pipeline's source: a CodeCommit repository, or one zip in the versioned artifact bucket (the S3 source).

CodeCommit is preferred (config pipeline.source). Where CodeCommit refuses to create a repository
(accounts closed to new CodeCommit use get OperationNotAllowedException) the handler falls back to the
S3 source, and the pipeline's source action records that choice: later runs read it from the pipeline,
so they neither ask CodeCommit again nor change anything.

Also the reads and writes `push-app` needs: the branch tip, the files of a commit (blob ids and modes,
so unchanged files are never downloaded), CreateCommit, the side branches a push of more than one commit is
built on and released from at once (CreateBranch, MergeBranchesByFastForward, DeleteBranch), and the S3
source object; and, for `down`, how much history the branch holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdpoc.aws.account import account_id
from cdpoc.aws.errors import aws_errors, call_or_none, caused_by
from cdpoc.aws.handler import Handler, observed
from cdpoc.aws.ownership import missing_tags, ownership, ownership_changes, refuse_not_ours, wanted_tags
from cdpoc.aws.run import STACK_TAG, AwsRun
from cdpoc.errors import AwsError, ConflictError
from cdpoc.model import Change, Observed, Resource
from cdpoc.spec import field_changes, spec_of
from cdpoc.stack.specs.cicd import SourceSpec

CODECOMMIT = "CodeCommit"
S3 = "S3"

REPOSITORY_MISSING = ("RepositoryDoesNotExistException",)
# CodeCommit's answer to an account that may not create repositories (closed to new customers in 2024).
CODECOMMIT_REFUSED = ("OperationNotAllowedException",)
PIPELINE_MISSING = ("PipelineNotFoundException",)
OBJECT_MISSING = ("404", "NoSuchKey", "NotFound")
COMMIT_AUTHOR = "cdpoc"
# CreateCommit's answers when the branch is no longer where the commit was meant to go on top of.
BRANCH_MOVED = ("ParentCommitIdOutdatedException", "ParentCommitIdRequiredException")
# User metadata on the S3 source object: the zip's SHA-256, so an unchanged bundle is not uploaded again.
DIGEST_METADATA = "cdpoc-sha256"


def _codecommit(run: AwsRun) -> Any:
    return run.client("codecommit")


def repository_arn(run: AwsRun, name: str) -> str:
    return f"arn:aws:codecommit:{run.region}:{account_id(run)}:{name}"


# --- the pipeline's record of its source ---------------------------------------------------------------


def pipeline_arn(run: AwsRun, name: str) -> str:
    return f"arn:aws:codepipeline:{run.region}:{account_id(run)}:{name}"


def get_pipeline(run: AwsRun, name: str) -> dict[str, Any] | None:
    """GetPipeline's reply (pipeline and metadata); None when there is no such pipeline."""
    reply = call_or_none(
        f"reading pipeline {name}", run.client("codepipeline").get_pipeline, PIPELINE_MISSING, name=name
    )
    return None if reply is None else {"pipeline": reply["pipeline"], "metadata": reply.get("metadata", {})}


def read_pipeline(run: AwsRun, name: str) -> dict[str, Any] | None:
    """get_pipeline once per run: the source, the pipeline and the rule handlers all look at it."""
    return run.memo(f"codepipeline:{name}", lambda: get_pipeline(run, name))


def pipeline_tags(run: AwsRun, arn: str) -> dict[str, str]:
    """A pipeline's tags (every page), once per run."""

    def read() -> dict[str, str]:
        client = run.client("codepipeline")
        tags: dict[str, str] = {}
        params = {"resourceArn": arn}
        with aws_errors(f"reading the tags of {arn}"):
            while True:
                reply = client.list_tags_for_resource(**params)
                tags.update({t["key"]: t["value"] for t in reply.get("tags", [])})
                if not reply.get("nextToken"):
                    return tags
                params["nextToken"] = reply["nextToken"]

    return run.memo(f"codepipeline-tags:{arn}", read)


def recorded_source(run: AwsRun, pipeline_name: str) -> tuple[SourceAction | None, str]:
    """The source action the stack's pipeline records, and the stack that owns that pipeline by its tags
    (what the pipeline records is ours only if the pipeline is)."""
    reply = read_pipeline(run, pipeline_name)
    if reply is None:
        return None, ""
    arn = reply["metadata"].get("pipelineArn") or pipeline_arn(run, pipeline_name)
    return source_action(reply["pipeline"]), pipeline_tags(run, arn).get(STACK_TAG, "")


@dataclass(frozen=True)
class SourceAction:
    """What a pipeline's Source action reads: CodeCommit repository and branch, or S3 bucket and key."""

    provider: str
    configuration: Mapping[str, str]

    @property
    def repository(self) -> str:
        return self.configuration.get("RepositoryName", "")

    @property
    def branch(self) -> str:
        return self.configuration.get("BranchName", "")

    @property
    def bucket(self) -> str:
        return self.configuration.get("S3Bucket", "")

    @property
    def key(self) -> str:
        return self.configuration.get("S3ObjectKey", "")


def source_action(pipeline: Mapping[str, Any] | None) -> SourceAction | None:
    """The Source-category action of a pipeline declaration, or None."""
    for stage in (pipeline or {}).get("stages", []):
        for action in stage.get("actions", []):
            type_id = action.get("actionTypeId", {})
            if type_id.get("category") == "Source":
                return SourceAction(type_id.get("provider", ""), dict(action.get("configuration", {})))
    return None


# --- the handler ----------------------------------------------------------------------------------------


def repository_tags(run: AwsRun, arn: str) -> dict[str, str]:
    """A repository's tags, every page."""
    tags: dict[str, str] = {}
    with aws_errors(f"reading the tags of {arn}"):
        reply = _codecommit(run).list_tags_for_resource(resourceArn=arn)
        tags.update(reply.get("tags", {}))
        while reply.get("nextToken"):
            reply = _codecommit(run).list_tags_for_resource(resourceArn=arn, nextToken=reply["nextToken"])
            tags.update(reply.get("tags", {}))
    return tags


def _s3_source(res: Resource, bucket: str, owner: str, fallback_reason: str = "") -> Observed:
    """The S3 source: the spec's key in `bucket` (the artifact bucket), as the pipeline of stack `owner`
    records it."""
    key = spec_of(res, SourceSpec).s3_key
    return observed(
        res,
        "pipeline_source",
        f"s3://{bucket}/{key}",
        provider=S3,
        bucket=bucket,
        key=key,
        fallback=fallback_reason,
        stack=owner,
    )


class SourceHandler(Handler):
    """The CodeCommit repository (tagged, adopted only when ours), or the S3 source (nothing to create:
    the versioned artifact bucket holds the zip, and goes with the bucket).

    The repository's description is updated in place (UpdateRepositoryDescription). Its name is not: a
    repository of this stack's source under another name (found by its tags) is a conflict.
    """

    kind = "pipeline_source"
    label = "pipeline source"
    arn_types = ("codecommit:repository",)
    spec_type = SourceSpec

    def _repository(self, run: AwsRun, name: str) -> dict[str, Any] | None:
        reply = call_or_none(
            f"reading repository {name}", _codecommit(run).get_repository, REPOSITORY_MISSING, repositoryName=name
        )
        return None if reply is None else dict(reply["repositoryMetadata"])

    def _tags(self, run: AwsRun, arn: str) -> dict[str, str]:
        return repository_tags(run, arn)

    def _observe_repository(self, run: AwsRun, key: str, repository: Mapping[str, Any], branch: str) -> Observed:
        arn = repository.get("Arn") or repository_arn(run, repository["repositoryName"])
        return observed(
            key,
            self.kind,
            repository["repositoryName"],
            provider=CODECOMMIT,
            arn=arn,
            branch=branch,
            description=repository.get("repositoryDescription", ""),
            clone_url=repository.get("cloneUrlHttp", ""),
            **ownership(self._tags(run, arn)),
        )

    def find(self, run: AwsRun, res: Resource) -> Observed | None:
        spec = spec_of(res, SourceSpec)
        if spec.preferred == "codecommit":
            repository = self._repository(run, spec.repository)
            if repository is not None:
                return self._observe_repository(run, res.key, repository, spec.branch)
        recorded, owner = recorded_source(run, spec.pipeline_name)
        if recorded is not None and recorded.provider == S3:
            reason = "" if spec.preferred == "s3" else "CodeCommit refused to create the repository earlier"
            return _s3_source(res, recorded.bucket, owner, reason)
        if spec.preferred == "codecommit":
            return self._renamed(run, res, spec)
        return None

    def _renamed(self, run: AwsRun, res: Resource, spec: SourceSpec) -> Observed | None:
        """This stack's repository for the source under another name (the config's name changed), by its tags."""
        tagged = run.memo(f"scan:{self.kind}", lambda: self.scan(run)).get(res.key)
        repository = None if tagged is None else self._repository(run, tagged.id)
        return None if repository is None else self._observe_repository(run, res.key, repository, spec.branch)

    def scan(self, run: AwsRun) -> dict[str, Observed]:
        """The stack's repositories (ListRepositories, then each one's tags); the S3 source has nothing to list."""
        names: list[str] = []
        with aws_errors("listing CodeCommit repositories"):
            for page in _codecommit(run).get_paginator("list_repositories").paginate():
                names.extend(r["repositoryName"] for r in page.get("repositories", []))
        result = {}
        for name in names:
            arn = repository_arn(run, name)
            attrs = ownership(self._tags(run, arn))
            if attrs["stack"] == run.stack and attrs["component"]:
                component = attrs["component"]
                result[component] = observed(component, self.kind, name, provider=CODECOMMIT, arn=arn, **attrs)
        return result

    def changes(self, run: AwsRun, res: Resource, found: Observed, deps: Mapping[str, Observed | None]) -> list[Change]:
        if found.attrs["provider"] == S3:
            return []
        spec = spec_of(res, SourceSpec)
        changes = ownership_changes(run, res, found, "CodeCommit repository")
        if any(not c.in_place for c in changes):
            return changes
        return changes + field_changes(
            spec,
            {"repository": found.id, "description": found.attrs.get("description", "")},
            {"repository": spec.repository, "description": spec.description},
        )

    def create(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, SourceSpec)
        if spec.preferred == "s3":
            return _s3_source(res, spec.bucket.need(deps), run.stack)
        name = spec.repository
        try:
            with aws_errors(f"creating CodeCommit repository {name}"):
                repository = _codecommit(run).create_repository(
                    repositoryName=name, repositoryDescription=spec.description, tags=wanted_tags(run, res)
                )["repositoryMetadata"]
        except AwsError as exc:
            if caused_by(exc, *CODECOMMIT_REFUSED):
                return _s3_source(
                    res,
                    spec.bucket.need(deps),
                    run.stack,
                    f"CodeCommit refused to create a repository ({exc.message.split(': ', 1)[-1]})",
                )
            if not caused_by(exc, "RepositoryNameExistsException"):
                raise
            return self._adopt(run, res, deps)
        return observed(
            res,
            self.kind,
            name,
            provider=CODECOMMIT,
            arn=repository.get("Arn") or repository_arn(run, name),
            branch=spec.branch,
            description=repository.get("repositoryDescription", spec.description),
            clone_url=repository.get("cloneUrlHttp", ""),
            **ownership(wanted_tags(run, res)),
        )

    def _adopt(self, run: AwsRun, res: Resource, deps: Mapping[str, Observed]) -> Observed:
        spec = spec_of(res, SourceSpec)
        repository = self._repository(run, spec.repository)
        if repository is None:
            raise ConflictError(
                f"CodeCommit says repository {spec.repository} exists, yet it cannot be read",
                "Re-run `cdpoc up`; if it persists, check the repository in the CodeCommit console.",
            )
        found = self._observe_repository(run, res.key, repository, spec.branch)
        refuse_not_ours(run, res, "CodeCommit repository", found.attrs["tags"])
        return self.adopt(run, res, found, deps, "CodeCommit repository")

    def update(
        self,
        run: AwsRun,
        res: Resource,
        found: Observed,
        deps: Mapping[str, Observed],
        changes: Sequence[Change] = (),
    ) -> Observed:
        if found.attrs["provider"] == S3:
            return found
        spec = spec_of(res, SourceSpec)
        missing = missing_tags(run, res, found.attrs.get("tags", {}))
        if missing:
            with aws_errors(f"tagging repository {found.id}"):
                _codecommit(run).tag_resource(resourceArn=found.attrs["arn"], tags=missing)
        attrs = {**found.attrs, **ownership({**found.attrs["tags"], **missing})}
        if any(c.field == "description" for c in changes):
            with aws_errors(f"updating the description of repository {found.id}"):
                _codecommit(run).update_repository_description(
                    repositoryName=found.id, repositoryDescription=spec.description
                )
            attrs["description"] = spec.description
        return observed(res, self.kind, found.id, **attrs)

    def delete(self, run: AwsRun, found: Observed) -> None:
        if found.attrs.get("provider") == S3:
            return  # the zip is an object of the artifact bucket, which is emptied and deleted with the bucket
        # DeleteRepository of a repository that is not there succeeds (it returns no repositoryId).
        with aws_errors(f"deleting CodeCommit repository {found.id}"):
            _codecommit(run).delete_repository(repositoryName=found.id)

    def describe(self, found: Observed) -> str:
        if found.attrs.get("provider") == S3:
            fallback = found.attrs.get("fallback")
            return f"S3 source {found.id}" + (f" ({fallback})" if fallback else "")
        branch = found.attrs.get("branch")
        return f"CodeCommit repository {found.id}" + (f", branch {branch}" if branch else "")


# --- push-app: CodeCommit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    blob_id: str
    mode: str  # NORMAL, EXECUTABLE or SYMLINK


def branch_tip(run: AwsRun, repository: str, branch: str) -> str | None:
    """The commit id the branch points at; None for a branch with no commit yet (an empty repository)."""
    reply = call_or_none(
        f"reading branch {branch} of {repository}",
        _codecommit(run).get_branch,
        ("BranchDoesNotExistException",),
        repositoryName=repository,
        branchName=branch,
    )
    return None if reply is None else str(reply["branch"]["commitId"])


# `down` walks the history one GetCommit at a time (CodeCommit has no count): it stops here and says "200+".
HISTORY_LIMIT = 200


@dataclass(frozen=True)
class BranchHistory:
    commits: int
    complete: bool  # False when the walk stopped at the limit
    tip: str
    tip_date: str

    def describe(self) -> str:
        more = "" if self.complete else "+"
        return f"{self.commits}{more} commit(s), tip {self.tip[:10]} of {self.tip_date}"


def _git_date(raw: str) -> str:
    """CodeCommit's "<epoch seconds> <offset>" as a UTC time; the raw text when it is not that."""
    try:
        return datetime.fromtimestamp(int(raw.split()[0]), UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, IndexError):
        return raw


def branch_history(run: AwsRun, repository: str, branch: str, limit: int = HISTORY_LIMIT) -> BranchHistory | None:
    """The commits reachable from the branch tip (counted up to `limit`); None for an empty branch."""
    tip = branch_tip(run, repository, branch)
    if tip is None:
        return None
    seen: set[str] = set()
    waiting = [tip]
    tip_date = ""
    while waiting and len(seen) < limit:
        commit_id = waiting.pop()
        if commit_id in seen:
            continue
        with aws_errors(f"reading commit {commit_id} of {repository}"):
            commit = _codecommit(run).get_commit(repositoryName=repository, commitId=commit_id)["commit"]
        seen.add(commit_id)
        if commit_id == tip:
            tip_date = _git_date(str(commit.get("committer", {}).get("date", "")))
        waiting.extend(parent for parent in commit.get("parents", []) if parent not in seen)
    complete = all(commit_id in seen for commit_id in waiting)
    return BranchHistory(len(seen), complete, tip, tip_date)


def _relative(path: str) -> str:
    return path.lstrip("/")


def files_at(run: AwsRun, repository: str, commit: str) -> dict[str, RemoteFile]:
    """Every file of a commit with its blob id and mode: one GetFolder per folder, no file content read."""
    files: dict[str, RemoteFile] = {}
    folders = ["/"]
    client = _codecommit(run)
    while folders:
        folder = folders.pop()
        with aws_errors(f"reading folder {folder} of {repository} at {commit[:12]}"):
            reply = client.get_folder(repositoryName=repository, commitSpecifier=commit, folderPath=folder)
        for entry in reply.get("files", []):
            files[_relative(entry["absolutePath"])] = RemoteFile(entry["blobId"], entry.get("fileMode", "NORMAL"))
        for link in reply.get("symbolicLinks", []):
            files[_relative(link["absolutePath"])] = RemoteFile(link["blobId"], "SYMLINK")
        folders.extend("/" + _relative(sub["absolutePath"]) for sub in reply.get("subFolders", []))
    return files


@dataclass(frozen=True)
class CommitChanges:
    """One CreateCommit's worth of changes."""

    puts: Sequence[tuple[str, bytes, str]] = ()  # (path, content, file mode)
    deletes: Sequence[str] = ()
    modes: Sequence[tuple[str, str]] = ()  # (path, file mode) for files whose content is unchanged


def create_commit(
    run: AwsRun, repository: str, branch: str, parent: str | None, message: str, changes: CommitChanges
) -> str | None:
    """Commit on top of `parent` (None only for an empty repository); None when CodeCommit finds no change."""
    params: dict[str, Any] = {
        "repositoryName": repository,
        "branchName": branch,
        "authorName": COMMIT_AUTHOR,
        "commitMessage": message,
    }
    if parent:
        params["parentCommitId"] = parent
    if changes.puts:
        params["putFiles"] = [{"filePath": p, "fileMode": m, "fileContent": c} for p, c, m in changes.puts]
    if changes.deletes:
        params["deleteFiles"] = [{"filePath": p} for p in changes.deletes]
    if changes.modes:
        params["setFileModes"] = [{"filePath": p, "fileMode": m} for p, m in changes.modes]
    try:
        with aws_errors(f"committing to {repository} branch {branch}"):
            return str(_codecommit(run).create_commit(**params)["commitId"])
    except AwsError as exc:
        if caused_by(exc, "NoChangeException"):
            return None
        if not caused_by(exc, *BRANCH_MOVED):
            raise
        # botocore repeats a CreateCommit whose answer was lost; the branch then points past `parent`.
        landed = _landed_commit(run, repository, branch, parent, message, changes)
        if landed:
            return landed
        if caused_by(exc, "ParentCommitIdOutdatedException"):
            raise ConflictError(
                f"branch {branch} of {repository} moved while push-app was committing (someone else pushed)",
                "Run `cdpoc push-app` again: it compares with the new tip and commits only what still differs.",
            ) from exc
        raise


def git_blob_id(content: bytes) -> str:
    """The id git (and CodeCommit) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _landed_commit(
    run: AwsRun, repository: str, branch: str, parent: str | None, message: str, changes: CommitChanges
) -> str | None:
    """The branch tip, when it is this very commit: made on `parent` by cdpoc with this message, and holding
    exactly these changes (blob ids and modes, computed locally). Anything else is someone else's push."""
    tip = branch_tip(run, repository, branch)
    if tip is None or tip == parent:
        return None
    with aws_errors(f"reading commit {tip} of {repository}"):
        commit = _codecommit(run).get_commit(repositoryName=repository, commitId=tip)["commit"]
    made_here = (
        commit.get("parents", []) == ([parent] if parent else [])
        and commit.get("author", {}).get("name") == COMMIT_AUTHOR
        and str(commit.get("message", "")).rstrip("\n") == message.rstrip("\n")
    )
    if not made_here:
        return None
    files = files_at(run, repository, tip)
    wanted = [(path, RemoteFile(git_blob_id(content), mode)) for path, content, mode in changes.puts]
    holds_changes = (
        all(files.get(path) == remote for path, remote in wanted)
        and not any(path in files for path in changes.deletes)
        and all(path in files and files[path].mode == mode for path, mode in changes.modes)
    )
    return tip if holds_changes else None


# --- push-app: a push larger than one commit, released at once ---------------------------------------

# The branches a push of more than one commit is built on, named after the commit they start from; cdpoc
# creates and deletes branches only under this prefix, and only in a repository tagged as the stack's.
PUSH_BRANCH_PREFIX = "cdpoc/push-"
# MergeBranchesByFastForward's answers when the pipeline's branch is no longer where the side branch started:
# the branches diverged (someone pushed), or the branch moved while the merge ran.
FAST_FORWARD_REFUSED = ("ManualMergeRequiredException", "ConcurrentReferenceUpdateException")


@dataclass(frozen=True)
class RepositoryInfo:
    arn: str
    default_branch: str
    stack: str  # the cdpoc:stack tag read from the repository ("" when it has none)


def repository_info(run: AwsRun, repository: str) -> RepositoryInfo:
    """The repository's ARN, default branch and owning stack (by its own tags)."""
    with aws_errors(f"reading repository {repository}"):
        metadata = _codecommit(run).get_repository(repositoryName=repository)["repositoryMetadata"]
    arn = str(metadata.get("Arn") or repository_arn(run, repository))
    tags = repository_tags(run, arn)
    return RepositoryInfo(arn, str(metadata.get("defaultBranch", "")), tags.get(STACK_TAG, ""))


def list_branches(run: AwsRun, repository: str) -> list[str]:
    names: list[str] = []
    with aws_errors(f"listing the branches of {repository}"):
        for page in _codecommit(run).get_paginator("list_branches").paginate(repositoryName=repository):
            names.extend(page.get("branches", []))
    return names


def create_branch(run: AwsRun, repository: str, branch: str, commit: str) -> None:
    """CreateBranch at `commit`; a branch already there at that very commit is this call's own (answer lost)."""
    try:
        with aws_errors(f"creating branch {branch} of {repository}"):
            _codecommit(run).create_branch(repositoryName=repository, branchName=branch, commitId=commit)
    except AwsError as exc:
        if not caused_by(exc, "BranchNameExistsException") or branch_tip(run, repository, branch) != commit:
            raise


def delete_branch(run: AwsRun, repository: str, branch: str) -> None:
    """DeleteBranch; a branch that is not there counts as deleted (CodeCommit answers without deletedBranch)."""
    call_or_none(
        f"deleting branch {branch} of {repository}",
        _codecommit(run).delete_branch,
        ("BranchDoesNotExistException",),
        repositoryName=repository,
        branchName=branch,
    )


def update_default_branch(run: AwsRun, repository: str, branch: str) -> None:
    with aws_errors(f"making {branch} the default branch of {repository}"):
        _codecommit(run).update_default_branch(repositoryName=repository, defaultBranchName=branch)


def fast_forward(run: AwsRun, repository: str, commit: str, branch: str) -> None:
    """Move `branch` to `commit`, which must descend from the branch's tip (MergeBranchesByFastForward): one
    referenceUpdated event, so one pipeline run. ConflictError when the branch moved (someone pushed)."""
    try:
        with aws_errors(f"fast-forwarding branch {branch} of {repository} to {commit[:12]}"):
            _codecommit(run).merge_branches_by_fast_forward(
                repositoryName=repository,
                sourceCommitSpecifier=commit,
                destinationCommitSpecifier=branch,
                targetBranch=branch,
            )
    except AwsError as exc:
        if not caused_by(exc, *FAST_FORWARD_REFUSED):
            raise
        # botocore repeats a merge whose answer was lost: the branch then is at `commit` already
        if branch_tip(run, repository, branch) == commit:
            return
        raise ConflictError(
            f"branch {branch} of {repository} moved while push-app was committing (someone else pushed), so "
            f"it cannot be fast-forwarded to {commit[:12]}: nothing was released",
            "Run `cdpoc push-app` again: it compares with the new tip and commits only what still differs.",
        ) from exc


def built_by_cdpoc(run: AwsRun, repository: str, tip: str, base: str | None, limit: int = HISTORY_LIMIT) -> bool:
    """True when the commits from `tip` back to `base` (None: back to a first commit) are cdpoc's, one parent
    each: a side branch an interrupted push left, safe to continue and release."""
    commit_id = tip
    for _ in range(limit + 1):
        if commit_id == base:
            return True
        with aws_errors(f"reading commit {commit_id} of {repository}"):
            commit = _codecommit(run).get_commit(repositoryName=repository, commitId=commit_id)["commit"]
        parents = commit.get("parents", [])
        if commit.get("author", {}).get("name") != COMMIT_AUTHOR or len(parents) > 1:
            return False
        if not parents:
            return base is None
        commit_id = parents[0]
    return False


# --- push-app: the S3 source --------------------------------------------------------------------------


def source_object_digest(run: AwsRun, bucket: str, key: str) -> str | None:
    """The SHA-256 push-app stored with the current source zip; None when there is no zip (or no digest)."""
    reply = call_or_none(
        f"reading s3://{bucket}/{key}", run.client("s3").head_object, OBJECT_MISSING, Bucket=bucket, Key=key
    )
    return None if reply is None else reply.get("Metadata", {}).get(DIGEST_METADATA)


def upload_source(run: AwsRun, bucket: str, key: str, body: bytes, digest: str) -> str:
    """Put the zip (the bucket is versioned: the pipeline reads this version); returns its version id."""
    with aws_errors(f"uploading the bundle to s3://{bucket}/{key}"):
        reply = run.client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/zip",
            Metadata={DIGEST_METADATA: digest},
            ChecksumAlgorithm="SHA256",
        )
    return str(reply.get("VersionId", ""))


HANDLERS: tuple[Handler, ...] = (SourceHandler(),)
