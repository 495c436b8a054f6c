"""Drive the real Pulumi engine (the CLI built by ./scripts/setup) through the Automation API.

Everything that knows where the engine lives, which environment it needs and how its
errors look is in this module; `python -m fleet up|preview|refresh|destroy` and the e2e
tests only call the functions below:

    stack = stack_for("dev", program, config={"tenants": "acme"})
    result = run("up", stack)            # {"operation": "up", "changes": {"create": 3}, ...}

The engine is not Pulumi's released binary (it can't be downloaded on these machines):
it is built from its Go module in engine/ into .cache/engine/bin, next to two shims that
let it run Python dynamic providers and policy packs without the `python` language host.
Inline programs need no language host at all: this Python process serves the program.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.automation import errors as auto_errors

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = PROJECT_ROOT / ".cache"
ENGINE_ROOT = CACHE_DIR / "engine"
ENGINE_BIN = ENGINE_ROOT / "bin"
ENGINE_PATH = ENGINE_BIN / "pulumi"
PULUMI_HOME = CACHE_DIR / "pulumi"
# Deployed state is not a cache: it lives outside .cache so that wiping the cache never forgets what is deployed.
DEFAULT_BACKEND_DIR = PROJECT_ROOT / "state"
VERSION_FILE = PROJECT_ROOT / "engine" / "VERSION"

PROJECT_NAME = "tenant-fleet"
#: Passphrase for local development and tests only, used when neither the caller nor
#: $PULUMI_CONFIG_PASSPHRASE / $PULUMI_CONFIG_PASSPHRASE_FILE provides one. Anything whose
#: state leaves this machine must set its own passphrase.
LOCAL_DEV_PASSPHRASE = "tenant-fleet-local"
#: Scripts the engine looks up on PATH; ./scripts/setup writes them next to the engine.
SHIMS = ("pulumi-resource-pulumi-python", "pulumi-analyzer-policy-python")
OPERATIONS = ("up", "preview", "refresh", "destroy")

SETUP_HINT = "run ./scripts/setup from the project root"


class EngineMissing(Exception):
    """The engine (or one of its shims) is not installed, or is too old: ./scripts/setup fixes it."""


class EngineError(Exception):
    """An engine operation failed: a locked stack, a missing stack, or a failed command."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        stack: str | None = None,
        reason: str = "command-failed",
        stdout: str = "",
        stderr: str = "",
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.stack = stack
        #: "concurrent-update", "stack-not-found", "program-failed", "policy-violation" or "command-failed"
        self.reason = reason
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code


def pinned_version() -> str:
    """The engine version this project pins, from engine/VERSION (without a leading v)."""
    return VERSION_FILE.read_text().strip().removeprefix("v")


def resolve_passphrase(passphrase: str | None = None) -> str:
    """The secrets passphrase: the argument, else $PULUMI_CONFIG_PASSPHRASE(_FILE), else LOCAL_DEV_PASSPHRASE."""
    if passphrase:
        return passphrase
    if os.environ.get("PULUMI_CONFIG_PASSPHRASE"):
        return os.environ["PULUMI_CONFIG_PASSPHRASE"]
    passphrase_file = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if passphrase_file:
        return Path(passphrase_file).read_text().rstrip("\r\n")
    return LOCAL_DEV_PASSPHRASE


def backend_url(backend_dir: str | os.PathLike[str] | None = None) -> str:
    """The file:// URL of the state backend (default: state/ under the project root, git-ignored)."""
    return "file://" + str(Path(backend_dir or DEFAULT_BACKEND_DIR).resolve())


def engine_env(
    backend_dir: str | os.PathLike[str] | None = None, passphrase: str | None = None
) -> dict[str, str]:
    """The full environment (os.environ plus overrides) in which to run the engine."""
    python_path = [str(PROJECT_ROOT)]
    if os.environ.get("PYTHONPATH"):
        python_path += [p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p and p != str(PROJECT_ROOT)]
    env = dict(os.environ)
    env.update(
        {
            # The engine and its shims first, so a stray older `pulumi` can't win.
            "PATH": os.pathsep.join([str(ENGINE_BIN), os.environ.get("PATH", os.defpath)]),
            # The shims run this interpreter: the venv, with pulumi and the providers' deps.
            "PULUMI_PYTHON_CMD": sys.executable,
            # Dynamic providers are unpickled in the shim's process, which imports their
            # module (components.providers..., tests.e2e...) by name.
            "PYTHONPATH": os.pathsep.join(python_path),
            "PULUMI_HOME": str(PULUMI_HOME),
            "PULUMI_BACKEND_URL": backend_url(backend_dir),
            "PULUMI_CONFIG_PASSPHRASE": resolve_passphrase(passphrase),
            # Resolved into PULUMI_CONFIG_PASSPHRASE above; two sources would conflict.
            "PULUMI_CONFIG_PASSPHRASE_FILE": "",
            # Inline programs get a fresh work dir without Pulumi.<stack>.yaml: reuse the
            # encryption salt recorded in the state instead of minting a new one each run.
            "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_SUPPRESS_NEO_LINK": "true",
            "PULUMI_NEO": "false",
            "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        }
    )
    return env


def check_engine() -> str:
    """Raise EngineMissing unless the engine and both shims are installed; return the engine's version."""
    if not os.access(ENGINE_PATH, os.X_OK):
        raise EngineMissing(
            f"the Pulumi engine is not installed (expected {ENGINE_PATH}): {SETUP_HINT}"
            " (it builds the engine from engine/; about 4 minutes the first time)"
        )
    missing = [shim for shim in SHIMS if not os.access(ENGINE_BIN / shim, os.X_OK)]
    if missing:
        raise EngineMissing(f"engine shim(s) missing from {ENGINE_BIN}: {', '.join(missing)}: {SETUP_HINT}")
    return _engine_version(str(ENGINE_PATH), ENGINE_PATH.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _engine_version(path: str, _mtime_ns: int) -> str:
    try:
        out = subprocess.run(
            [path, "version"],
            env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_HOME": str(PULUMI_HOME)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise EngineMissing(f"the Pulumi engine at {path} does not run ({exc}): {SETUP_HINT}") from exc
    version = out.removeprefix("v")
    want = pinned_version()
    if not _version_at_least(version, want):
        raise EngineMissing(f"the Pulumi engine at {path} reports {out or 'no version'}, need v{want} or newer: {SETUP_HINT}")
    return version


def _version_at_least(have: str, want: str) -> bool:
    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) if part.isdigit() else 0 for part in version.split("-")[0].split("."))

    try:
        return key(have) >= key(want) and key(have)[0] == key(want)[0]
    except ValueError:
        return False


@lru_cache(maxsize=1)
def _pulumi_command() -> auto.PulumiCommand:
    check_engine()
    # root/bin/pulumi is the engine; the SDK also puts root/bin first on PATH for
    # every command it runs, which is where the shims are.
    return auto.PulumiCommand(root=str(ENGINE_ROOT))


def stack_for(
    stack_name: str,
    program: Callable[[], None],
    *,
    backend_dir: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
    passphrase: str | None = None,
) -> auto.Stack:
    """Create or select `stack_name` of project tenant-fleet with an inline `program` and set its config.

    `config` and `secrets` map keys (bare keys get the project's namespace) to values;
    non-string values are stored as JSON. Secrets are encrypted with the passphrase.
    Without `work_dir`, the workspace (Pulumi.yaml, Pulumi.<stack>.yaml) lives in a
    temporary directory removed with the returned stack, so config never goes stale:
    every call sets the whole config again.
    """
    check_engine()
    backend = Path(backend_dir or DEFAULT_BACKEND_DIR).resolve()
    backend.mkdir(parents=True, exist_ok=True)
    PULUMI_HOME.mkdir(parents=True, exist_ok=True)
    url = backend_url(backend)
    scratch = None
    if work_dir is None:
        # The SDK would mkdtemp a work dir and never remove it; this one goes with the stack.
        work_dir = scratch = tempfile.mkdtemp(prefix="tenant-fleet-")
    options = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        pulumi_home=str(PULUMI_HOME),
        env_vars=engine_env(backend, passphrase),
        project_settings=auto.ProjectSettings(
            name=PROJECT_NAME, runtime="python", backend=auto.ProjectBackend(url=url)
        ),
        secrets_provider="passphrase",
        pulumi_command=_pulumi_command(),
    )
    try:
        stack = auto.create_or_select_stack(
            stack_name=stack_name, project_name=PROJECT_NAME, program=program, opts=options
        )
        values: dict[str, auto.ConfigValue] = {}
        for key, value in (config or {}).items():
            values[key] = auto.ConfigValue(value=_config_text(value), secret=False)
        for key, value in (secrets or {}).items():
            values[key] = auto.ConfigValue(value=_config_text(value), secret=True)
        if values:
            stack.set_all_config(values)
    except auto_errors.CommandError as exc:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        raise _engine_error(exc, "select", stack_name, url) from exc
    if scratch:
        weakref.finalize(stack, shutil.rmtree, scratch, ignore_errors=True)
    return stack


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run(
    op: str,
    stack: auto.Stack,
    *,
    on_output: Callable[[str], None] | None = print,
    policy_packs: Iterable[str | os.PathLike[str]] | None = None,
    **engine_options: Any,
) -> dict[str, Any]:
    """Run `op` (up, preview, refresh or destroy) on `stack`; return its change summary and duration.

    The result: {"operation", "stack", "changes": {op_type: count}, "duration_s", and for
    up also "outputs" (secret values replaced by "[secret]")}. `policy_packs` (paths) only
    apply to up and preview. Extra keyword arguments go to the Automation API call as is
    (e.g. expect_no_changes=True, target=[urn], diff=True).
    """
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}: expected one of {', '.join(OPERATIONS)}")
    packs = [str(Path(p).resolve()) for p in policy_packs or ()]
    if packs and op not in ("up", "preview"):
        raise ValueError(f"policy packs apply to up and preview only, not {op}")
    kwargs: dict[str, Any] = {"on_output": on_output, "color": "never", **engine_options}
    if packs:
        kwargs["policy_packs"] = packs
    started = time.monotonic()
    try:
        result = getattr(stack, op)(**kwargs)
    except auto_errors.CommandError as exc:
        raise _engine_error(exc, op, stack.name, _backend_of(stack)) from exc
    summary: dict[str, Any] = {
        "operation": op,
        "stack": stack.name,
        "changes": _changes(result),
        "duration_s": round(time.monotonic() - started, 3),
    }
    if op == "up":
        summary["outputs"] = {
            name: "[secret]" if output.secret else output.value for name, output in result.outputs.items()
        }
    return summary


def _backend_of(stack: auto.Stack) -> str | None:
    env = getattr(stack.workspace, "env_vars", None) or {}
    return env.get("PULUMI_BACKEND_URL")


def _changes(result: Any) -> dict[str, int]:
    if isinstance(result, auto.PreviewResult):
        counts = result.change_summary
    else:
        counts = result.summary.resource_changes
    return {str(kind): int(count) for kind, count in (counts or {}).items()}


def _engine_error(
    exc: auto_errors.CommandError, operation: str, stack_name: str, backend: str | None = None
) -> EngineError:
    code, stdout, stderr = _split_command_error(exc)
    if isinstance(exc, auto_errors.ConcurrentUpdateError):
        reason = "concurrent-update"
        where = backend.removeprefix("file://") if backend else "<backend>"
        message = (
            f"{operation} on stack {stack_name!r}: the stack is locked by another update. Wait for it to"
            " finish; if none is running (a run that crashed), delete the lock file(s) in"
            f" {where}/.pulumi/locks/organization/{PROJECT_NAME}/{stack_name}/"
        )
    elif isinstance(exc, auto_errors.StackNotFoundError):
        reason = "stack-not-found"
        message = f"{operation}: no stack named {stack_name!r} in {backend or 'this backend'}"
    else:
        if isinstance(exc, auto_errors.InlineSourceRuntimeError):
            reason = "program-failed"
        elif "[mandatory]" in stdout:
            reason = "policy-violation"
        else:
            reason = "command-failed"
        message = f"{operation} on stack {stack_name!r} failed (exit {code}):\n{_explain(stdout, stderr)}"
    return EngineError(
        message, operation=operation, stack=stack_name, reason=reason, stdout=stdout, stderr=stderr, exit_code=code
    )


def _split_command_error(exc: auto_errors.CommandError) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr) of a failed command; the SDK keeps them only in str(exc)."""
    text = str(exc)
    head, _, stderr = text.rpartition("\n stderr: ")
    head, _, stdout = head.partition("\n stdout: ")
    code_text = head.strip().removeprefix("code:").strip()
    code = int(code_text) if code_text.lstrip("-").isdigit() else None
    if not head and not stdout:  # not the SDK's format: keep the whole text
        return None, "", text
    return code, stdout, stderr


_SECTIONS = ("Diagnostics:", "Policies:", "Policy Violations:")
_NOISE_PREFIXES = ("an unhandled error occurred: ", "python inline source runtime error: ")


def _explain(stdout: str, stderr: str, limit: int = 40) -> str:
    """What a person needs from a failed run: diagnostics and policy violations, without tracebacks.

    The full output stays on EngineError.stdout / .stderr for debugging.
    """
    keep: list[str] = []
    seen: set[str] = set()
    section = ""
    continuing = False
    for line in stdout.splitlines():
        text = line.strip()
        if text and not line.startswith(" "):  # a top-level heading ends the section
            section = text if text in _SECTIONS else ""
            if section:
                keep.append(section)
            continue
        if not section or not text:
            continue
        indent = len(line) - len(line.lstrip())
        if section != "Diagnostics:" or indent <= 2:  # policy lines; resource headings
            keep.append(line.rstrip())
            continuing = False
        elif text.startswith(("error:", "warning:")):
            continuing = False
            body = text.split(":", 1)[1].strip()
            if body in ("preview failed", "update failed") or _is_shim_warning(body):
                continue
            while body.startswith(_NOISE_PREFIXES):
                body = next(body.removeprefix(p) for p in _NOISE_PREFIXES if body.startswith(p))
            if body not in seen:
                seen.add(body)
                keep.append(" " * indent + text.split(":", 1)[0] + ": " + body)
                continuing = True
        elif text.startswith("Traceback"):
            continuing = False  # a traceback ends the message; it stays in .stdout for debugging
        elif continuing:
            keep.append(line.rstrip())  # the rest of a multi-line message (e.g. every spec problem)
    keep = _drop_empty_headings(keep)
    if not keep:
        keep = [line.rstrip() for line in stdout.splitlines() if line.strip()][-limit:]
    for line in stderr.splitlines():
        body = line.strip().removeprefix("error:").strip()
        if body and body not in seen and body not in ("preview failed", "update failed"):
            seen.add(body)
            keep.append(line.rstrip())
    return "\n".join(keep[-limit:]) if keep else "(the engine printed nothing)"


def _drop_empty_headings(lines: list[str]) -> list[str]:
    """Remove headings (lines ending in ':') whose every line was filtered out."""

    def depth(line: str) -> int:
        return len(line) - len(line.lstrip())

    kept: list[str] = []
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else None
        is_heading = line.rstrip().endswith(":") and depth(line) <= 2
        if is_heading and (following is None or depth(following) <= depth(line)):
            continue
        kept.append(line)
    return kept if kept == lines else _drop_empty_headings(kept)


def _is_shim_warning(body: str) -> bool:
    # The engine warns that the policy shim comes "from $PATH" (it is not one of its
    # bundled plugins); that is how ./scripts/setup installs it, so it is no news.
    return body.startswith("using pulumi-") and f"from $PATH at {ENGINE_BIN}" in body


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
            exit_code=proc.returncode,
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

