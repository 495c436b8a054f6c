"""Read the base side of a preview from git: resolve a ref and export the files the program reads.
"""


from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from fleet.errors import FleetError
from fleet.paths import PROGRAM_SOURCES

# ---------------------------------------------------------------- git: the base's files


class BaseError(FleetError):
    """The base can't be read from git (unknown ref, not a git checkout...): a command-line problem."""


def git(root: Path, *args: str, binary: bool = False) -> Any:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise BaseError("git is not installed") from None
    if result.returncode != 0:
        raise BaseError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout if binary else result.stdout.decode()


def resolve_base(root: Path, ref: str) -> str:
    """The commit a base ref names (a branch, tag, sha, `HEAD~1`...)."""
    if not ref or ref.startswith("-"):
        raise BaseError(f"not a git ref: {ref!r}")
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except BaseError:
        raise BaseError(
            f"base {ref!r} is not a commit of the repository at {root} "
            "(in CI, fetch it: actions/checkout with fetch-depth: 0, or `git fetch origin <branch>`)"
        ) from None


def export_base(root: Path, commit: str, relative_paths: list[str], dest: Path) -> Path:
    """Extract the given paths (relative to `root`) as they are at `commit` into `dest`; returns the base's root in it."""
    prefix = git(root, "rev-parse", "--show-prefix").strip()
    wanted = [f"{prefix}{path}" for path in relative_paths]
    present = [path for path in wanted if git(root, "ls-tree", "--name-only", commit, "--", path).strip()]
    if present:
        archive = git(root, "archive", "--format=tar", commit, "--", *present, binary=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    base_root = dest / prefix if prefix else dest
    base_root.mkdir(parents=True, exist_ok=True)
    return base_root


def program_changes(root: Path, commit: str) -> list[str]:
    """Program files (not tenant files) that differ between `commit` and the working tree."""
    try:
        changed = git(root, "diff", "--name-only", "--relative", commit, "--").split()
        changed += git(root, "ls-files", "--others", "--exclude-standard").split()
    except BaseError:
        return []
    return sorted({path for path in changed if any(path == entry or path.startswith(entry + "/") for entry in PROGRAM_SOURCES)})


def removed_files(root: Path, commit: str, folder: str) -> list[tuple[str, str, str]]:
    """(path, deleting commit, its committer date YYYY-MM-DD) of each `<folder>/*.yaml` deleted in `commit`'s history,
    the latest deletion per path, newest first."""
    try:
        log = git(root, "log", commit, "--diff-filter=D", "--format=%x00%H %cs", "--name-only", "--relative", "--", f"{folder}/*.yaml")
    except BaseError:
        return []
    found: dict[str, tuple[str, str, str]] = {}
    for block in log.split("\x00"):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        if not lines:
            continue
        sha, day = lines[0].split()
        for path in lines[1:]:
            found.setdefault(path, (path, sha, day))
    return list(found.values())


def file_before(root: Path, commit: str, path: str) -> str:
    """A file's content just before `commit` (which deleted it)."""
    return git(root, "show", f"{commit}^:./{path}")
