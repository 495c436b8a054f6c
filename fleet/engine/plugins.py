"""Which provider plugins a program needs, at which versions, and which of them are missing.

A missing plugin is named in one line with the command that installs it.
"""


from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from fleet.engine.driver import SETUP_HINT, EngineError, check_engine, engine_env
from fleet.offline.mocks import Evaluation
from fleet.paths import ENGINE_PATH, PROJECT_ROOT, PULUMI_HOME


def installed_plugins() -> set[tuple[str, str, str]]:
    """The plugins the engine can use, as (kind, name, version), from `pulumi plugin ls --json`."""
    check_engine()
    PULUMI_HOME.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(ENGINE_PATH), "plugin", "ls", "--json"],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise EngineError(
            f"pulumi plugin ls failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}",
            operation="plugin ls",
            stdout=proc.stdout,
            stderr=proc.stderr,
            command_exit_code=proc.returncode,
        )
    entries = json.loads(proc.stdout or "[]") or []
    return {
        (entry.get("kind", ""), entry.get("name", ""), str(entry.get("version", "")).removeprefix("v"))
        for entry in entries
    }


def missing_plugins(required: Mapping[str, str]) -> list[str]:
    """The resource plugins in `required` (name -> version) that are not installed, as "name version"."""
    have = {(name, version) for kind, name, version in installed_plugins() if kind == "resource"}
    return [
        f"{name} {version.removeprefix('v')}"
        for name, version in sorted(required.items())
        if (name, version.removeprefix("v")) not in have
    ]


def missing_plugins_message(missing: Iterable[str]) -> str:
    """One line per missing plugin ("name version"), each with the command that installs it."""
    home = _display_path(PULUMI_HOME)
    engine = _display_path(ENGINE_PATH)
    lines = []
    for entry in missing:
        name, _, version = entry.partition(" ")
        lines.append(
            f"missing provider plugin: {name} {version} "
            f"(install: PULUMI_HOME={home} {engine} plugin install resource {name} {version})"
        )
    return "\n".join(lines)


def _display_path(path: Path) -> str:
    # Relative paths when run from the project root keep the hint short and copy-pasteable.
    try:
        if Path.cwd().resolve() == PROJECT_ROOT:
            return str(path.relative_to(PROJECT_ROOT))
    except (OSError, ValueError):
        pass
    return str(path)


def required_plugin_versions(package_names: Iterable[str]) -> dict[str, str]:
    """Plugin name -> version for installed provider packages (pulumi_postgresql, "pulumi-docker", ...).

    Reads each package's pulumi-plugin.json (or else its distribution version) without
    importing the package, so the versions pinned in requirements.txt are the only ones.
    """
    versions: dict[str, str] = {}
    for package in package_names:
        dist_name = package.replace("_", "-")
        if not dist_name.startswith("pulumi-"):
            dist_name = f"pulumi-{dist_name}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as exc:
            raise EngineError(
                f"provider package {dist_name} is not installed in {sys.prefix}: {SETUP_HINT}"
            ) from exc
        name, version = dist_name.removeprefix("pulumi-"), dist.version
        for file in dist.files or ():
            if file.name == "pulumi-plugin.json":
                info = json.loads(file.read_text())
                if info.get("resource", True):
                    name = info.get("name", name)
                    version = str(info.get("version", version)).removeprefix("v")
                break
        versions[name] = version
    return versions
# Packages that need no plugin download: the engine itself and the Python dynamic providers.
BUILTIN_PACKAGES = {"pulumi", "pulumi-python"}


def required_packages(evaluation: Evaluation) -> set[str]:
    """Provider packages whose plugins the declared resources need (from their type tokens)."""
    packages = set()
    for resource in evaluation.custom_resources():
        if resource.type.startswith("pulumi:providers:"):
            packages.add(resource.type.removeprefix("pulumi:providers:"))
        else:
            packages.add(resource.type.split(":", 1)[0])
    return packages - BUILTIN_PACKAGES


PROVIDER_PACKAGES = ("postgresql", "docker", "random", "cloudflare", "kubernetes")
"""The official providers the program may declare; their plugin versions are the SDK packages' (requirements.txt)."""


def install_plugins(packages: Iterable[str] = PROVIDER_PACKAGES) -> tuple[list[str], list[str]]:
    """Install the missing official provider plugins at their pinned versions, all at once.

    Returns (installed, failed) as "name version"; a machine that can't reach the plugin downloads (as
    here) gets every missing plugin in `failed`, after one attempt each, and nothing else changes."""
    check_engine()
    missing = missing_plugins(required_plugin_versions(sorted(packages)))
    if not missing:
        return [], []

    def install(entry: str) -> bool:
        name, _, version = entry.partition(" ")
        command = [str(ENGINE_PATH), "plugin", "install", "resource", name, version]
        try:
            return subprocess.run(command, env=engine_env(), capture_output=True, text=True, timeout=600).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(missing)) as pool:
        outcomes = list(pool.map(install, missing))
    installed = [entry for entry, ok in zip(missing, outcomes) if ok]
    failed = [entry for entry, ok in zip(missing, outcomes) if not ok]
    return installed, failed
