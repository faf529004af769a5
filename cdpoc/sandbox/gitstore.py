"""A git object store for the sandbox's CodeCommit: blobs, trees and commits with real git ids.

Ids are git's own SHA-1s (`blob <size>\\0<content>`, tree and commit objects), so a client comparing a
local file's git blob id with CodeCommit's blobId (as `cdpoc push-app` does) sees the same values as on
AWS. Errors carry the CodeCommit error code; cdpoc/sandbox/codecommit.py turns them into responses.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

GIT_MODES = {"NORMAL": "100644", "EXECUTABLE": "100755", "SYMLINK": "120000"}
TREE_MODE = "40000"
MAX_FILE_ENTRIES = 100  # CodeCommit quota: files added, updated, deleted or re-moded in one commit
MAX_FILE_BYTES = 6 * 1024 * 1024
# FileContentSizeLimitExceededException (botocore's model): "The maximum file size is 6 MB, and the combined
# file content change size is 7 MB."
MAX_COMMIT_CONTENT_BYTES = 7 * 1024 * 1024
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
# git-check-ref-format, the parts CodeCommit enforces for branch names
BAD_BRANCH = re.compile(r"(^[./-])|(\.\.)|([\s~^:?*\[\\])|(@\{)|(\.lock$)|(/$)|(\.$)|(//)")
GITKEEP = ".gitkeep"


class CodeCommitError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Entry:
    blob_id: str
    mode: str  # NORMAL | EXECUTABLE | SYMLINK


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    date: str  # git's raw form, as CodeCommit returns it: "<epoch seconds> +0000"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "date": self.date}


@dataclass(frozen=True)
class Commit:
    commit_id: str
    tree_id: str
    parents: tuple[str, ...]
    message: str
    author: Person
    committer: Person
    files: Mapping[str, Entry]


@dataclass(frozen=True)
class PutFile:
    path: str
    mode: str | None
    content: bytes | None
    source_path: str | None = None
    is_move: bool = False


@dataclass(frozen=True)
class SetMode:
    path: str
    mode: str


@dataclass
class CommitResult:
    commit: Commit
    added: list[tuple[str, Entry]]
    updated: list[tuple[str, Entry]]
    deleted: list[tuple[str, Entry]]
    created_branch: bool
    old_tip: str | None


@dataclass(frozen=True)
class Folder:
    tree_id: str
    sub_folders: list[tuple[str, str]]  # (absolute path, tree id)
    files: list[tuple[str, Entry]]  # (absolute path, entry); symbolic links included, mode SYMLINK


def git_object_id(kind: str, body: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body, usedforsecurity=False).hexdigest()


def blob_id(content: bytes) -> str:
    return git_object_id("blob", content)


def normalize_path(path: str | None, *, allow_root: bool = False) -> str:
    """CodeCommit paths: leading and trailing slashes do not matter; '.', '..' and empty parts are invalid."""
    if path is None or path == "":
        if allow_root:
            return ""
        raise CodeCommitError("PathRequiredException", "The folderPath for a location cannot be null.")
    stripped = path.strip("/")
    if stripped == "":
        if allow_root:
            return ""
        raise CodeCommitError("InvalidPathException", f"The specified path {path} is not valid.")
    parts = stripped.split("/")
    if any(part in ("", ".", "..") or "\0" in part for part in parts):
        raise CodeCommitError("InvalidPathException", f"The specified path {path} is not valid.")
    return stripped


def parent_folder(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def folders_of(files: Iterable[str]) -> set[str]:
    """Every folder that holds a file, directly or below ('' is the root)."""
    folders = {""}
    for path in files:
        folder = parent_folder(path)
        while folder and folder not in folders:
            folders.add(folder)
            folder = parent_folder(folder)
    return folders


def tree_ids(files: Mapping[str, Entry]) -> dict[str, str]:
    """The git tree id of every folder of a snapshot ('' is the root), computed bottom-up."""
    children: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for path, entry in files.items():
        children[parent_folder(path)][path.rsplit("/", 1)[-1]] = (GIT_MODES[entry.mode], entry.blob_id)
    ids: dict[str, str] = {}
    for folder in sorted(folders_of(files), key=lambda f: f.count("/") + (1 if f else 0), reverse=True):
        ids[folder] = git_object_id("tree", _tree_body(children[folder]))
        if folder:
            children[parent_folder(folder)][folder.rsplit("/", 1)[-1]] = (TREE_MODE, ids[folder])
    return ids


def _tree_body(entries: Mapping[str, tuple[str, str]]) -> bytes:
    # git orders tree entries by name, comparing a folder's name as if it ended with "/"
    def order(name: str) -> bytes:
        return (name + "/" if entries[name][0] == TREE_MODE else name).encode()

    return b"".join(
        f"{entries[name][0]} {name}".encode() + b"\0" + bytes.fromhex(entries[name][1])
        for name in sorted(entries, key=order)
    )


def commit_object_id(tree_id: str, parents: tuple[str, ...], author: Person, committer: Person, message: str) -> str:
    lines = [f"tree {tree_id}"] + [f"parent {p}" for p in parents]
    lines.append(f"author {author.name} <{author.email}> {author.date}")
    lines.append(f"committer {committer.name} <{committer.email}> {committer.date}")
    body = "\n".join(lines) + "\n\n" + (message if message.endswith("\n") else message + "\n")
    return git_object_id("commit", body.encode())


@dataclass(frozen=True)
class FastForward:
    """What MergeBranchesByFastForward did: the commit the target branch points at now, and where it was
    before (equal when the target already held the source: nothing moved)."""

    branch: str
    commit: Commit
    old_tip: str
    source_id: str
    destination_id: str

    @property
    def moved(self) -> bool:
        return self.commit.commit_id != self.old_tip


@dataclass
class GitRepository:
    """One repository's objects and branches. `reflog` keeps when each branch moved (None: deleted), so a
    pipeline source action can resolve the branch tip as of the instant it ran."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    reflog: dict[str, list[tuple[float, str | None]]] = field(default_factory=dict)
    default_branch: str | None = None

    # ---- reads

    def resolve(self, specifier: str | None) -> Commit:
        """A commit from a branch name, a full commit id, or (none given) the default branch."""
        name = specifier
        if name in (None, "", "HEAD"):
            name = self.default_branch
        if name is not None and name.startswith("refs/heads/"):
            name = name[len("refs/heads/") :]
        if name is not None and name in self.branches:
            return self.commits[self.branches[name]]
        if name is not None and name in self.commits:
            return self.commits[name]
        raise CodeCommitError(
            "CommitDoesNotExistException",
            f"The specified commit {specifier or '(default branch)'} does not exist or no commit was specified, "
            "and the specified repository has no default branch.",
        )

    def commit(self, commit_id: str | None) -> Commit:
        if not commit_id:
            raise CodeCommitError("CommitIdRequiredException", "A commit ID is required.")
        if not COMMIT_ID.match(commit_id):
            raise CodeCommitError("InvalidCommitIdException", f"The specified commit ID {commit_id} is not valid.")
        if commit_id not in self.commits:
            raise CodeCommitError("CommitIdDoesNotExistException", f"Could not find commit {commit_id}.")
        return self.commits[commit_id]

    def tip_at(self, branch: str, instant: float) -> str | None:
        """The branch's commit as of `instant` (None if the branch did not exist then)."""
        tip = None
        for moved_at, commit_id in self.reflog.get(branch, []):
            if moved_at > instant:
                break
            tip = commit_id
        return tip

    def is_ancestor(self, ancestor_id: str, descendant_id: str) -> bool:
        """True when `ancestor_id` is `descendant_id` or reachable from it through parents (git merge-base
        --is-ancestor)."""
        waiting, seen = [descendant_id], set()
        while waiting:
            commit_id = waiting.pop()
            if commit_id == ancestor_id:
                return True
            if commit_id in seen:
                continue
            seen.add(commit_id)
            waiting.extend(self.commits[commit_id].parents)
        return False

    def file(self, commit: Commit, path: str) -> tuple[str, Entry, bytes]:
        normalized = normalize_path(path)
        entry = commit.files.get(normalized)
        if entry is None:
            raise CodeCommitError(
                "FileDoesNotExistException", f"The file {path} does not exist in commit {commit.commit_id}."
            )
        return normalized, entry, self.blobs[entry.blob_id]

    def folder(self, commit: Commit, path: str) -> Folder:
        folder = normalize_path(path, allow_root=True)
        ids = tree_ids(commit.files)
        if folder not in ids:
            raise CodeCommitError("FolderDoesNotExistException", f"The folder {path} does not exist.")
        prefix = f"{folder}/" if folder else ""
        files = sorted((p, e) for p, e in commit.files.items() if parent_folder(p) == folder)
        sub_folders = sorted((f, ids[f]) for f in ids if f and f.startswith(prefix) and parent_folder(f) == folder)
        return Folder(ids[folder], sub_folders, files)

    def differences(
        self, before: Commit | None, after: Commit, before_path: str | None, after_path: str | None
    ) -> list[tuple[str, tuple[str, Entry] | None, tuple[str, Entry] | None]]:
        """(changeType, before blob, after blob) per changed file; before=None diffs against an empty tree."""
        old = self._under(before.files if before else {}, before_path, must_exist=before is not None)
        new = self._under(after.files, after_path, must_exist=True)
        changes: list[tuple[str, tuple[str, Entry] | None, tuple[str, Entry] | None]] = []
        for relative in sorted(set(old) | set(new)):
            was, now = old.get(relative), new.get(relative)
            if was is None and now is not None:
                changes.append(("A", None, now))
            elif now is None and was is not None:
                changes.append(("D", was, None))
            elif was is not None and now is not None and was[1] != now[1]:
                changes.append(("M", was, now))
        return changes

    @staticmethod
    def _under(files: Mapping[str, Entry], path: str | None, must_exist: bool) -> dict[str, tuple[str, Entry]]:
        """Files at or below `path`, keyed by their path relative to it (so a renamed folder still compares)."""
        root = normalize_path(path, allow_root=True)
        if not root:
            return {p: (p, e) for p, e in files.items()}
        selected = {}
        for p, e in files.items():
            if p == root:
                selected[p.rsplit("/", 1)[-1]] = (p, e)
            elif p.startswith(root + "/"):
                selected[p[len(root) + 1 :]] = (p, e)
        if not selected and must_exist:
            raise CodeCommitError("PathDoesNotExistException", f"The specified path {path} does not exist.")
        return selected

    # ---- writes

    def create_branch(self, branch: str, commit_id: str, instant: float) -> None:
        check_branch_name(branch)
        if branch in self.branches:
            raise CodeCommitError("BranchNameExistsException", f"Branch {branch} already exists.")
        if commit_id not in self.commits:
            raise CodeCommitError("CommitDoesNotExistException", f"The commit {commit_id} does not exist.")
        self._move(branch, commit_id, instant)

    def delete_branch(self, branch: str | None, instant: float) -> str | None:
        """Remove the branch; its old tip, or None when there was no such branch (DeleteBranch then answers
        without `deletedBranch`: its model has no BranchDoesNotExistException)."""
        check_branch_name(branch)
        assert branch is not None
        if branch == self.default_branch:
            raise CodeCommitError(
                "DefaultBranchCannotBeDeletedException",
                f"The branch {branch} is the default branch for the repository and cannot be deleted. To delete "
                "this branch, you must first set another branch as the default branch.",
            )
        old_tip = self.branches.pop(branch, None)
        if old_tip is not None:
            self.reflog.setdefault(branch, []).append((instant, None))
        return old_tip

    def update_default_branch(self, branch: str | None) -> None:
        check_branch_name(branch)
        if branch not in self.branches:
            raise CodeCommitError("BranchDoesNotExistException", f"Branch {branch} does not exist.")
        self.default_branch = branch

    def fast_forward(
        self, source: str | None, destination: str | None, target: str | None, instant: float
    ) -> FastForward:
        """MergeBranchesByFastForward: move `target` (default: the destination, when it names a branch) to
        the source commit, which must descend from the destination commit (else ManualMergeRequired)."""
        if not source or not destination:
            raise CodeCommitError("CommitRequiredException", "A commit must be specified.")
        source_commit, destination_commit = self.resolve(source), self.resolve(destination)
        branch = target if target is not None else (destination if destination in self.branches else None)
        if branch is None:
            raise CodeCommitError("InvalidTargetBranchException", "The specified target branch is not valid.")
        check_branch_name(branch)
        if branch not in self.branches:
            raise CodeCommitError("BranchDoesNotExistException", f"Branch {branch} does not exist.")
        old_tip = self.branches[branch]
        if old_tip != destination_commit.commit_id:
            raise CodeCommitError(
                "ConcurrentReferenceUpdateException",
                "The merge cannot be completed because the target branch has been modified. Another user might "
                "have modified the target branch while the merge was in progress. Wait a few minutes, and then "
                "try again.",
            )
        ids = (source_commit.commit_id, destination_commit.commit_id)
        if self.is_ancestor(destination_commit.commit_id, source_commit.commit_id):
            if source_commit.commit_id != old_tip:
                self._move(branch, source_commit.commit_id, instant)
            return FastForward(branch, source_commit, old_tip, *ids)
        if self.is_ancestor(source_commit.commit_id, destination_commit.commit_id):
            # git's "Already up to date": the target holds the source already; nothing moves
            return FastForward(branch, destination_commit, old_tip, *ids)
        raise CodeCommitError(
            "ManualMergeRequiredException",
            f"Cannot fast-forward {branch}: commit {destination_commit.commit_id} is not an ancestor of "
            f"{source_commit.commit_id}. The branches have diverged; merge them manually.",
        )

    def create_commit(
        self,
        branch: str,
        parent_id: str | None,
        author: Person,
        message: str,
        puts: list[PutFile],
        deletes: list[str],
        modes: list[SetMode],
        keep_empty_folders: bool,
        instant: float,
    ) -> CommitResult:
        check_branch_name(branch)
        if not (puts or deletes or modes):
            raise CodeCommitError(
                "FileEntryRequiredException", "The commit cannot be created because no files have been specified."
            )
        if len(puts) + len(deletes) + len(modes) > MAX_FILE_ENTRIES:
            raise CodeCommitError(
                "MaximumFileEntriesExceededException",
                f"The number of specified files to change as part of this commit exceeds the maximum of "
                f"{MAX_FILE_ENTRIES}.",
            )
        if sum(len(put.content or b"") for put in puts) > MAX_COMMIT_CONTENT_BYTES:
            raise CodeCommitError(
                "FileContentSizeLimitExceededException",
                "The commit cannot be created because the combined file content change size exceeds the "
                "maximum of 7 MB. Consider making these changes using a Git client.",
            )
        parent = self._parent_for(branch, parent_id)
        old_files: dict[str, Entry] = dict(parent.files) if parent else {}
        files = _apply_changes(old_files, puts, deletes, modes, self.blobs)
        if keep_empty_folders:
            _keep_emptied_folders(old_files, files, self.blobs)
        roots = tree_ids(files)
        if parent is not None and roots[""] == parent.tree_id:
            raise CodeCommitError(
                "NoChangeException",
                "The commit cannot be created because no changes will be made to the repository as a result of "
                "this commit. A commit must contain at least one change.",
            )
        parents = (parent.commit_id,) if parent else ()
        commit_id = commit_object_id(roots[""], parents, author, author, message)
        commit = Commit(commit_id, roots[""], parents, message, author, author, files)
        self.commits[commit_id] = commit
        old_tip = self.branches.get(branch)
        self._move(branch, commit_id, instant)
        return CommitResult(
            commit,
            added=sorted((p, e) for p, e in files.items() if p not in old_files),
            updated=sorted((p, e) for p, e in files.items() if p in old_files and old_files[p] != e),
            deleted=sorted((p, e) for p, e in old_files.items() if p not in files),
            created_branch=old_tip is None,
            old_tip=old_tip,
        )

    def _parent_for(self, branch: str, parent_id: str | None) -> Commit | None:
        """The branch tip the commit must build on; CodeCommit's parent rules."""
        if parent_id and not COMMIT_ID.match(parent_id):
            raise CodeCommitError("InvalidParentCommitIdException", f"The parent commit ID {parent_id} is not valid.")
        if parent_id and parent_id not in self.commits:
            raise CodeCommitError(
                "ParentCommitDoesNotExistException", f"The parent commit ID {parent_id} does not exist."
            )
        if not self.commits:
            return None  # an empty repository: the first commit creates the branch
        if branch not in self.branches:
            raise CodeCommitError("BranchDoesNotExistException", f"Branch {branch} does not exist.")
        if not parent_id:
            raise CodeCommitError(
                "ParentCommitIdRequiredException",
                "A parent commit ID is required. To view the full commit ID of a branch in a repository, use "
                "GetBranch or a Git command (for example, git show-ref).",
            )
        if parent_id != self.branches[branch]:
            raise CodeCommitError(
                "ParentCommitIdOutdatedException",
                f"The parent commit ID {parent_id} is not the tip of branch {branch} "
                f"({self.branches[branch]}). Get the latest commit ID of the branch and try again.",
            )
        return self.commits[parent_id]

    def _move(self, branch: str, commit_id: str, instant: float) -> None:
        self.branches[branch] = commit_id
        self.reflog.setdefault(branch, []).append((instant, commit_id))
        if self.default_branch is None:
            self.default_branch = branch


def check_branch_name(branch: str | None) -> None:
    if not branch:
        raise CodeCommitError("BranchNameRequiredException", "A branch name is required.")
    if BAD_BRANCH.search(branch):
        raise CodeCommitError("InvalidBranchNameException", f"The specified branch name {branch} is not valid.")


def _apply_changes(
    old: dict[str, Entry], puts: list[PutFile], deletes: list[str], modes: list[SetMode], blobs: dict[str, bytes]
) -> dict[str, Entry]:
    _refuse_repeated_paths([p.path for p in puts] + deletes + [m.path for m in modes])
    files = dict(old)
    for path in deletes:
        if path not in files:
            raise CodeCommitError("FileDoesNotExistException", f"The file {path} does not exist.")
        del files[path]
    for put in puts:
        content = _put_content(put, old, blobs)
        if put.is_move and put.source_path is not None:
            files.pop(put.source_path, None)
        mode = put.mode or (files[put.path].mode if put.path in files else "NORMAL")
        identifier = blob_id(content)
        blobs[identifier] = content
        files[put.path] = Entry(identifier, mode)
    for change in modes:
        if change.path not in files:
            raise CodeCommitError("FileDoesNotExistException", f"The file {change.path} does not exist.")
        files[change.path] = Entry(files[change.path].blob_id, change.mode)
    _refuse_file_folder_clashes(files, [put.path for put in puts])
    return files


def _put_content(put: PutFile, old: Mapping[str, Entry], blobs: Mapping[str, bytes]) -> bytes:
    if put.content is not None and put.source_path is not None:
        raise CodeCommitError(
            "FileContentAndSourceFileSpecifiedException",
            f"The commit cannot be created because both a source file and file content have been specified for "
            f"{put.path}.",
        )
    if put.source_path is not None:
        if put.source_path == put.path:
            raise CodeCommitError(
                "SamePathRequestException", f"The source file and the destination are the same path: {put.path}."
            )
        if put.source_path not in old:
            raise CodeCommitError("FileDoesNotExistException", f"The source file {put.source_path} does not exist.")
        return blobs[old[put.source_path].blob_id]
    if put.content is None:
        raise CodeCommitError(
            "SourceFileOrContentRequiredException",
            f"The commit cannot be created because no source files or file content have been specified for {put.path}.",
        )
    if len(put.content) > MAX_FILE_BYTES:
        raise CodeCommitError(
            "FileContentSizeLimitExceededException",
            f"The file {put.path} cannot be added because it is too large. The maximum file size is 6 MB.",
        )
    return put.content


def _refuse_repeated_paths(paths: list[str]) -> None:
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise CodeCommitError(
                "PutFileEntryConflictException",
                f"The commit cannot be created because one or more files specified in the commit reference the "
                f"same file path: {path}.",
            )
        seen.add(path)


def _refuse_file_folder_clashes(files: Mapping[str, Entry], put_paths: Iterable[str]) -> None:
    folders = folders_of(files)
    for path in put_paths:
        folder = parent_folder(path)
        while folder:
            if folder in files:
                raise CodeCommitError(
                    "DirectoryNameConflictsWithFileNameException",
                    f"The file {path} cannot be added because the folder {folder} is a file in the repository.",
                )
            folder = parent_folder(folder)
        if path in folders:
            raise CodeCommitError(
                "FileNameConflictsWithDirectoryNameException",
                f"The file {path} cannot be added because its name is the same as a folder in the repository.",
            )


def _keep_emptied_folders(old: Mapping[str, Entry], files: dict[str, Entry], blobs: dict[str, bytes]) -> None:
    """keepEmptyFolders: a folder the commit empties keeps a .gitkeep file (git has no empty folders)."""
    emptied = folders_of(old) - folders_of(files) - {""}
    innermost = [f for f in emptied if not any(other.startswith(f + "/") for other in emptied)]
    for folder in innermost:
        blobs[blob_id(b"")] = b""
        files[f"{folder}/{GITKEEP}"] = Entry(blob_id(b""), "NORMAL")
