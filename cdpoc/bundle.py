"""`push-app`: validate bundle/, then hand the pipeline's source only what changed.

CodeCommit source: the bundle's files get git blob ids computed locally (sha1 of "blob <size>\\0" +
content), compared with the blob ids of the branch tip's files (GetFolder, no content downloaded);
what differs, and what was deleted locally, goes into one CreateCommit on the tip (an empty repository's
first commit has no parent). A push larger than one commit (100 files or ~4 MB) is chained on a side
branch `cdpoc/push-<tip>` and the pipeline's branch fast-forwarded to it once, so one push is one pipeline
run. Nothing differs: no commit at all. Files executable in the working copy are committed EXECUTABLE,
the others NORMAL.

S3 source: one zip built deterministically (sorted entries, fixed timestamps and modes), so an unchanged
bundle gives the same bytes; its SHA-256 is kept as object metadata and compared before uploading.
The pipeline is then started explicitly (an S3 source has no EventBridge rule, see aws/pipeline.py).

Everything is checked before the first AWS call: a bundle with problems is refused with all of them.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cdpoc.appspec import validate_bundle
from cdpoc.aws.errors import caused_by
from cdpoc.aws.pipeline import start_execution
from cdpoc.aws.run import AwsRun
from cdpoc.aws.source import (
    CODECOMMIT,
    PUSH_BRANCH_PREFIX,
    S3,
    CommitChanges,
    RemoteFile,
    RepositoryInfo,
    SourceAction,
    branch_tip,
    built_by_cdpoc,
    create_branch,
    create_commit,
    delete_branch,
    fast_forward,
    files_at,
    get_pipeline,
    git_blob_id,
    list_branches,
    repository_info,
    source_action,
    source_object_digest,
    update_default_branch,
    upload_source,
)
from cdpoc.bundlefiles import secret_problems, walk
from cdpoc.errors import AwsError, CdpocError, ConfigError, ConflictError

EXECUTABLE = "EXECUTABLE"
NORMAL = "NORMAL"

# CodeCommit limits on CreateCommit: a file of at most 6 MB through the API (CodeCommit User Guide, "Quotas":
# "File size"); at most 7 MB of file content changed in one commit (botocore's model,
# FileContentSizeLimitExceededException); a bounded number of file entries per commit
# (MaximumFileEntriesExceededException; AWS names no number, 100 is what cdpoc and the sandbox hold to). The
# request carries the content base64-encoded, so commits carry ~4 MB. A push over these is several commits,
# released at once from a side branch (_push_on_side_branch).
MAX_FILE_BYTES = 6 * 1000 * 1000
MAX_FILES_PER_COMMIT = 100
MAX_BYTES_PER_COMMIT = 4 * 1000 * 1000

# 1980-01-01 00:00:00, the earliest time a zip entry can carry: the same bundle always zips to the same bytes.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


class BundleInvalid(ConfigError):
    """The bundle would fail (or could not be pushed); nothing was pushed."""


class SourceUnavailable(CdpocError):
    """There is no pipeline (or no source) to push to yet."""


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative, with "/" separators
    content: bytes
    mode: str  # EXECUTABLE or NORMAL

    @property
    def blob_id(self) -> str:
        return git_blob_id(self.content)


def _mode(path: Path) -> str:
    # The working copy's x bit is the truth (git keeps it); validate_bundle already refuses hook scripts
    # without it, the failure CodeDeploy would otherwise report only on the instance.
    return EXECUTABLE if path.stat().st_mode & stat.S_IXUSR else NORMAL


def bundle_problems(bundle_dir: Path, allowed_secrets: frozenset[str] = frozenset()) -> list[str]:
    """Everything that stops the bundle from being pushed or deployed: appspec mistakes, sizes, links, and files
    that look like secrets (cdpoc.bundlefiles) other than the allowed ones."""
    if not bundle_dir.is_dir():
        return [f"{bundle_dir}: not a directory"]
    problems = list(validate_bundle(bundle_dir))
    readable = []
    for path in walk(bundle_dir):
        relative = path.relative_to(bundle_dir).as_posix()
        if path.is_symlink():
            problems.append(f"{relative}: a symbolic link (push the file it points to instead)")
        elif path.stat().st_size > MAX_FILE_BYTES:
            problems.append(f"{relative}: {path.stat().st_size} bytes, over CodeCommit's {MAX_FILE_BYTES} per file")
        else:
            readable.append((relative, path.read_bytes()))
    problems.extend(secret_problems(readable, allowed_secrets))
    unknown = sorted(allowed_secrets - {relative for relative, _ in readable})
    problems.extend(f"--allow-secret {relative}: no such file in the bundle" for relative in unknown)
    return problems


def read_bundle(bundle_dir: Path) -> list[BundleFile]:
    files = []
    for path in walk(bundle_dir):
        content = path.read_bytes()
        files.append(BundleFile(path.relative_to(bundle_dir).as_posix(), content, _mode(path)))
    return files


def shipped_bundle() -> Path:
    """The revision that ships with cdpoc: inside an installed package (cdpoc/bundled, see pyproject.toml),
    or bundle/ beside the package in a checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "bundled"
    return installed if (installed / "appspec.yml").is_file() else package.parent / "bundle"


def choose_bundle(given: Path | None, cwd: Path | None = None) -> tuple[Path, str]:
    """The bundle push-app pushes, and why that one: --bundle when given, else ./bundle when there is one,
    else the one that ships with cdpoc (a user outside the repository still has the sample app)."""
    if given is not None:
        return given, "--bundle"
    local = (cwd or Path.cwd()) / "bundle"
    if local.is_dir():
        return local, "./bundle"
    return shipped_bundle(), "the sample app that ships with cdpoc (no ./bundle here; --bundle picks another)"


def check_bundle(bundle_dir: Path, allowed_secrets: frozenset[str] = frozenset()) -> list[BundleFile]:
    """The bundle's files, or BundleInvalid (exit 2) listing every problem found."""
    problems = bundle_problems(bundle_dir, allowed_secrets)
    if problems:
        raise BundleInvalid(
            f"the bundle in {bundle_dir} has {len(problems)} problem(s):\n  " + "\n  ".join(problems),
            "Fix them and run `cdpoc push-app` again; nothing was pushed.",
        )
    return read_bundle(bundle_dir)


# --- CodeCommit: what differs, in commit-sized batches ----------------------------------------------


@dataclass(frozen=True)
class BundleDiff:
    puts: tuple[BundleFile, ...] = ()  # new or changed content
    deletes: tuple[str, ...] = ()
    modes: tuple[tuple[str, str], ...] = ()  # same content, other mode

    @property
    def empty(self) -> bool:
        return not (self.puts or self.deletes or self.modes)

    def summary(self) -> str:
        return f"{len(self.puts)} added or changed, {len(self.deletes)} deleted, {len(self.modes)} mode change(s)"


def diff(local: Sequence[BundleFile], remote: Mapping[str, RemoteFile]) -> BundleDiff:
    puts, modes = [], []
    for file in local:
        have = remote.get(file.path)
        if have is None or have.blob_id != file.blob_id:
            puts.append(file)
        elif have.mode != file.mode:
            modes.append((file.path, file.mode))
    paths = {f.path for f in local}
    deletes = sorted(path for path in remote if path not in paths)
    return BundleDiff(tuple(puts), tuple(deletes), tuple(modes))


@dataclass
class _Batch:
    puts: list[BundleFile] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    modes: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0

    @property
    def entries(self) -> int:
        return len(self.puts) + len(self.deletes) + len(self.modes)

    def fits(self, size: int) -> bool:
        return self.entries < MAX_FILES_PER_COMMIT and (self.entries == 0 or self.size + size <= MAX_BYTES_PER_COMMIT)

    def changes(self) -> CommitChanges:
        return CommitChanges(
            puts=tuple((f.path, f.content, f.mode) for f in self.puts),
            deletes=tuple(self.deletes),
            modes=tuple(self.modes),
        )


def batches(changes: BundleDiff) -> list[CommitChanges]:
    """Split the changes into commits of at most MAX_FILES_PER_COMMIT entries and ~MAX_BYTES_PER_COMMIT."""
    result: list[_Batch] = [_Batch()]

    def room(size: int) -> _Batch:
        if not result[-1].fits(size):
            result.append(_Batch())
        return result[-1]

    for file in changes.puts:
        batch = room(len(file.content))
        batch.puts.append(file)
        batch.size += len(file.content)
    for path in changes.deletes:
        room(0).deletes.append(path)
    for path, mode in changes.modes:
        room(0).modes.append((path, mode))
    return [b.changes() for b in result if b.entries]


# --- S3: one deterministic zip -------------------------------------------------------------------------


def zip_bundle(files: Iterable[BundleFile]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(files, key=lambda f: f.path):
            info = zipfile.ZipInfo(file.path, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that the modes below are read on the instance
            info.external_attr = (0o100755 if file.mode == EXECUTABLE else 0o100644) << 16
            archive.writestr(info, file.content, compresslevel=9)
    return buffer.getvalue()


# --- push ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    """What a push did: the revision the pipeline will run (commit id or S3 version id), if any."""

    provider: str
    target: str  # "repository branch" or "s3://bucket/key"
    revision: str = ""  # "" when nothing changed
    commits: tuple[str, ...] = ()
    execution_id: str = ""  # known at once for the S3 source (push-app starts the run)
    summary: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.revision)


def pipeline_source(run: AwsRun, pipeline: str) -> SourceAction:
    """Where the pipeline takes revisions from (its Source action), or SourceUnavailable."""
    reply = get_pipeline(run, pipeline)
    action = source_action(reply["pipeline"]) if reply else None
    if action is None or action.provider not in (CODECOMMIT, S3):
        raise SourceUnavailable(
            f"pipeline {pipeline} does not exist"
            if reply is None
            else f"pipeline {pipeline} has no source cdpoc knows",
            "Run `cdpoc up` first; push-app commits to the pipeline's source.",
        )
    return action


def push_codecommit(run: AwsRun, action: SourceAction, files: Sequence[BundleFile], message: str | None) -> PushResult:
    repository, branch = action.repository, action.branch
    target = f"{repository} branch {branch}"
    tip = branch_tip(run, repository, branch)
    remote = files_at(run, repository, tip) if tip else {}
    changes = diff(files, remote)
    if changes.empty:
        return PushResult(CODECOMMIT, target, summary=f"nothing changed since {tip[:12] if tip else 'the start'}")
    message = message or f"cdpoc push-app: {changes.summary()}"
    chunks = batches(changes)
    if len(chunks) > 1:
        return _push_on_side_branch(run, action, files, tip, changes, message)
    # One commit, one referenceUpdated on the branch: one pipeline run.
    commit = create_commit(run, repository, branch, tip, message, chunks[0])
    if commit is None:  # CodeCommit saw no change after all
        return PushResult(CODECOMMIT, target, summary="CodeCommit found nothing to change")
    return PushResult(CODECOMMIT, target, revision=commit, commits=(commit,), summary=changes.summary())


def side_branch_name(tip: str | None) -> str:
    """The branch a push larger than one commit is built on: named after the tip it starts from, so a push
    interrupted there is continued by the next one from the same tip (which diffs against it anyway)."""
    return f"{PUSH_BRANCH_PREFIX}{tip[:12] if tip else 'root'}"


def _push_on_side_branch(
    run: AwsRun, action: SourceAction, files: Sequence[BundleFile], tip: str | None, changes: BundleDiff, message: str
) -> PushResult:
    """A push that needs more than one CreateCommit: every commit on a side branch made from the tip, then the
    pipeline's branch fast-forwarded to it once, then the side branch deleted. Each commit on the pipeline's
    branch would start a pipeline run (its EventBridge rule: referenceUpdated on the branch) and could deploy
    a partial tree; one fast-forward is one release. Safe to interrupt anywhere: the next push continues the
    side branch of the same tip, and removes those of other tips."""
    repository, branch = action.repository, action.branch
    target = f"{repository} branch {branch}"
    info = repository_info(run, repository)
    if info.stack != run.stack:
        raise ConflictError(
            f"repository {repository} is not tagged as stack {run.stack}'s (cdpoc:stack="
            f"{info.stack or 'none'}): a push of more than one commit is built on a branch of its own, and "
            "cdpoc creates or deletes branches only in the stack's own repository",
            "Check the repository's cdpoc:stack tag (`cdpoc up` creates the repository with it), or push fewer "
            f"than {MAX_FILES_PER_COMMIT} changed files at a time.",
        )
    side = side_branch_name(tip)
    parent = _start_side_branch(run, repository, branch, tip, side, info)
    if parent != tip:  # continuing an interrupted push: what is still missing from its side branch
        changes = diff(files, files_at(run, repository, parent) if parent else {})
    chunks = batches(changes)
    commits: list[str] = []
    for index, chunk in enumerate(chunks, start=1):
        text = message if len(chunks) == 1 else f"{message} (part {index} of {len(chunks)})"
        commit = create_commit(run, repository, side, parent, text, chunk)
        if commit is not None:
            commits.append(commit)
            parent = commit
    if parent is None or parent == tip:  # CodeCommit saw no change in any part after all
        delete_branch(run, repository, side)
        return PushResult(CODECOMMIT, target, summary="CodeCommit found nothing to change")
    _release(run, repository, branch, tip, parent)
    delete_branch(run, repository, side)
    return PushResult(CODECOMMIT, target, revision=parent, commits=tuple(commits), summary=changes.summary())


def _start_side_branch(
    run: AwsRun, repository: str, branch: str, tip: str | None, side: str, info: RepositoryInfo
) -> str | None:
    """Remove side branches other pushes left (from other tips), and return the commit to build on: the side
    branch's tip when an interrupted push from this tip left it (cdpoc's commits only), else the tip itself
    (the branch made there; an empty repository's first commit makes it)."""
    branches = list_branches(run, repository)
    if info.default_branch.startswith(PUSH_BRANCH_PREFIX) and branch in branches:
        # a first push interrupted before the pipeline's branch became the default: a default branch
        # cannot be deleted
        update_default_branch(run, repository, branch)
    for leftover in branches:
        if leftover.startswith(PUSH_BRANCH_PREFIX) and leftover != side:
            delete_branch(run, repository, leftover)
    if side in branches:
        side_tip = branch_tip(run, repository, side)
        if side_tip is not None and built_by_cdpoc(run, repository, side_tip, tip):
            return side_tip
        if tip is None:
            raise ConflictError(
                f"branch {side} of {repository} holds commits that are not cdpoc's, and it cannot be replaced "
                "while the repository has no other branch",
                f"Look at {side} in the CodeCommit console; delete it or make it the default branch's start.",
            )
        delete_branch(run, repository, side)
    if tip is not None:
        create_branch(run, repository, side, tip)
    return tip


def _release(run: AwsRun, repository: str, branch: str, tip: str | None, commit: str) -> None:
    """Point the pipeline's branch at the side branch's last commit, in one step (one pipeline run)."""
    if tip is not None:
        fast_forward(run, repository, commit, branch)
        return
    # An empty repository: the pipeline's branch does not exist yet; it is created at the last commit
    # (referenceCreated) and made the default branch, which the side branch became with the first commit.
    try:
        create_branch(run, repository, branch, commit)
    except AwsError as exc:
        if caused_by(exc, "BranchNameExistsException"):
            raise ConflictError(
                f"branch {branch} of {repository} was created by someone else while push-app was committing: "
                "nothing was released",
                "Run `cdpoc push-app` again: it compares with the new tip and commits only what still differs.",
            ) from exc
        raise
    update_default_branch(run, repository, branch)


def push_s3(run: AwsRun, action: SourceAction, pipeline: str, files: Sequence[BundleFile]) -> PushResult:
    target = f"s3://{action.bucket}/{action.key}"
    body = zip_bundle(files)
    digest = hashlib.sha256(body).hexdigest()
    if source_object_digest(run, action.bucket, action.key) == digest:
        return PushResult(S3, target, summary=f"same SHA-256 {digest[:12]} as the uploaded zip")
    version = upload_source(run, action.bucket, action.key, body, digest)
    # The version id makes the token unique per upload and a retried start the same run.
    token = "cdpoc-" + hashlib.sha256(f"{pipeline}/{version or digest}".encode()).hexdigest()[:48]
    execution = start_execution(run, pipeline, token)
    return PushResult(
        S3, target, revision=version or digest, execution_id=execution, summary=f"{len(files)} files, {len(body)} bytes"
    )


def push(run: AwsRun, pipeline: str, files: Sequence[BundleFile], message: str | None) -> PushResult:
    action = pipeline_source(run, pipeline)
    if action.provider == S3:
        return push_s3(run, action, pipeline, files)
    return push_codecommit(run, action, files, message)
