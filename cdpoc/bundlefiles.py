"""Which files of a bundle directory become the revision: excludes, and files that look like secrets.

Whatever push-app sends lands in CodeCommit's history (or the artifact bucket) for good and is copied to
every instance, so a stray `.env` or key must never go by accident:

- `.cdpocignore` at the bundle's root and every `.gitignore` in it (each relative to its own directory)
  exclude files, with git's pattern rules (`*.log`, `/build/`, `!keep.log`, `**/tmp`);
- a file still included that looks like a secret, by its name (`.env`, `*.pem`, `id_rsa`, …) or by its content
  (a private key block, an AWS access key pair, a token format with a fixed prefix), is refused unless the user
  allows that very path (`push-app --allow-secret PATH`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

CDPOC_IGNORE = ".cdpocignore"
GIT_IGNORE = ".gitignore"

# Never part of a revision: caches and VCS metadata a working copy may hold, and cdpoc's own ignore file.
IGNORED_DIRECTORIES = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo")
IGNORED_NAMES = frozenset({".DS_Store", CDPOC_IGNORE})

# File names that hold credentials, lower case: (pattern, what it is). Examples and templates are fine.
SECRET_NAMES: tuple[tuple[str, str], ...] = (
    (r"\.env(\..+)?", "an environment file"),
    (r".+\.(pem|key|p12|pfx|jks|keystore|ppk|kdbx)", "a key or certificate store"),
    (r"id_(rsa|dsa|ecdsa|ed25519)", "an SSH private key"),
    (r"\.(npmrc|pypirc|netrc|pgpass|htpasswd)", "a credentials file"),
    (r"credentials(\.json)?", "a credentials file"),
)
NOT_SECRET_SUFFIXES = (".example", ".sample", ".template", ".dist", ".pub")

# Content that is a secret whatever the file is called; formats with fixed shapes only, to stay quiet on code.
SECRET_CONTENT: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"), "a private key"),
    # AWS's documentation examples end in EXAMPLE (AKIAIOSFODNN7EXAMPLE): not a leak.
    (re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)(?![A-Z0-9]{9}EXAMPLE)[A-Z0-9]{16}(?![A-Z0-9])"), "an AWS access key id"),
    (
        re.compile(rb"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?(?![A-Za-z0-9/+]*EXAMPLEKEY)[A-Za-z0-9/+]{40}"),
        "an AWS secret access key",
    ),
    (re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36}\b"), "a GitHub token"),
    (re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
)


@dataclass(frozen=True)
class Excludes:
    """The ignore files' patterns, each spec applying below its own directory ('' for the root)."""

    specs: tuple[tuple[str, pathspec.GitIgnoreSpec], ...] = ()

    def excluded(self, relative: str, directory: bool = False) -> bool:
        candidate = relative + "/" if directory else relative
        for base, spec in self.specs:
            if base and not candidate.startswith(base + "/"):
                continue
            if spec.match_file(candidate[len(base) + 1 :] if base else candidate):
                return True
        return False

    def adding(self, base: str, folder: Path) -> Excludes:
        """These excludes plus the .gitignore (and, at the root, .cdpocignore) of `folder`."""
        files = [folder / GIT_IGNORE] + ([folder / CDPOC_IGNORE] if not base else [])
        lines = [line for file in files if file.is_file() for line in file.read_text(errors="replace").splitlines()]
        if not lines:
            return self
        return Excludes((*self.specs, (base, pathspec.GitIgnoreSpec.from_lines(lines))))


def _always_ignored(name: str) -> bool:
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def walk(bundle_dir: Path) -> Iterator[Path]:
    """The bundle's files that make the revision, in a stable order."""
    yield from _walk(bundle_dir, bundle_dir, Excludes().adding("", bundle_dir))


def _walk(root: Path, folder: Path, excludes: Excludes) -> Iterator[Path]:
    base = "" if folder == root else folder.relative_to(root).as_posix()
    if base:
        excludes = excludes.adding(base, folder)
    entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    for entry in entries:
        relative = f"{base}/{entry.name}" if base else entry.name
        is_directory = entry.is_dir(follow_symlinks=False)
        if _always_ignored(entry.name) or excludes.excluded(relative, directory=is_directory):
            continue
        if is_directory and entry.name not in IGNORED_DIRECTORIES:
            yield from _walk(root, Path(entry.path), excludes)
        elif not is_directory:
            yield Path(entry.path)


def secret_reason(relative: str, content: bytes) -> str | None:
    """What secret this file looks like, or None."""
    name = relative.rsplit("/", 1)[-1].lower()
    if not name.endswith(NOT_SECRET_SUFFIXES):
        for pattern, what in SECRET_NAMES:
            if re.fullmatch(pattern, name):
                return what
    for content_pattern, what in SECRET_CONTENT:
        if content_pattern.search(content):
            return f"it holds {what}"
    return None


def secret_problems(files: Iterable[tuple[str, bytes]], allowed: frozenset[str]) -> list[str]:
    """One problem per file that looks like a secret and is not allowed, saying how to exclude or allow it."""
    problems = []
    for relative, content in files:
        reason = secret_reason(relative, content)
        if reason is not None and relative not in allowed:
            problems.append(
                f"{relative}: looks like a secret ({reason}); it would be committed to the pipeline's source and "
                f"copied to every instance. Exclude it in {CDPOC_IGNORE}, or pass --allow-secret {relative} if it "
                "must ship"
            )
    return problems
