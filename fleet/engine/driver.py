"""Drive the engine built by ./scripts/setup through the Automation API: `stack_for(name, program)`, `run(op, stack)`.

Inline programs need no language host; two shims (written by ./scripts/setup) let the engine run dynamic
providers and policy packs. `run` returns {"operation", "changes": {op: count}, "duration_s", ...}.
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
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.automation import errors as auto_errors

from fleet.engine.messages import (
    EngineError as EngineError,  # re-exported: callers catch it from the driver
)
from fleet.engine.messages import EngineMissing, engine_error
from fleet.model.type_tokens import PROJECT_NAME
from fleet.paths import (
    DEFAULT_BACKEND_DIR,
    ENGINE_BIN,
    ENGINE_PATH,
    ENGINE_ROOT,
    PROJECT_ROOT,
    PULUMI_HOME,
    VERSION_FILE,
)
from fleet.sdk_internals import lean_up

#: Passphrase for local development and tests only, used when neither the caller nor
#: $PULUMI_CONFIG_PASSPHRASE / $PULUMI_CONFIG_PASSPHRASE_FILE provides one. Anything whose
#: state leaves this machine must set its own passphrase.
LOCAL_DEV_PASSPHRASE = "tenant-fleet-local"
#: Scripts the engine looks up on PATH; ./scripts/setup writes them next to the engine.
SHIMS = ("pulumi-resource-pulumi-python", "pulumi-analyzer-policy-python")
OPERATIONS = ("up", "preview", "refresh", "destroy")

SETUP_HINT = "run ./scripts/setup from the project root"


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


BACKEND_ENV = "PULUMI_BACKEND_URL"
"""Where the state lives when no folder is given: `postgres://user:pass@host:port/db?table=...` for a team, else state/."""


def backend_url(backend: str | os.PathLike[str] | None = None) -> str:
    """The state backend's URL: `backend` (a folder or a URL), else $PULUMI_BACKEND_URL, else state/ (git-ignored)."""
    if backend is None:
        backend = os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND_DIR
    text = str(backend)
    if "://" in text:
        return text
    return "file://" + str(Path(text).resolve())


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
    create: bool | None = None,
) -> auto.Stack:
    """Create or select `stack_name` of project tenant-fleet with an inline `program` and set its config.

    `config` and `secrets` map keys (bare keys get the project's namespace) to values;
    non-string values are stored as JSON. Secrets are encrypted with the passphrase.
    Without `work_dir`, the workspace (Pulumi.yaml, Pulumi.<stack>.yaml) lives in a
    temporary directory removed with the returned stack, so config never goes stale:
    every call sets the whole config again.
    """
    check_engine()
    url = backend_url(backend_dir)
    if url.startswith("file://"):
        Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    PULUMI_HOME.mkdir(parents=True, exist_ok=True)
    scratch = None
    if work_dir is None:
        # The SDK would mkdtemp a work dir and never remove it; this one goes with the stack.
        work_dir = scratch = tempfile.mkdtemp(prefix="tenant-fleet-")
    options = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        pulumi_home=str(PULUMI_HOME),
        env_vars=engine_env(url, passphrase),
        project_settings=auto.ProjectSettings(
            name=PROJECT_NAME, runtime="python", backend=auto.ProjectBackend(url=url)
        ),
        secrets_provider="passphrase",
        pulumi_command=_pulumi_command(),
    )
    try:
        # `create`: True for a stack known not to exist yet, False for one known to exist (one engine call saved).
        make = {None: auto.create_or_select_stack, True: auto.create_stack, False: auto.select_stack}[create]
        stack = make(stack_name=stack_name, project_name=PROJECT_NAME, program=program, opts=options)
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
        raise engine_error(exc, "select", stack_name, url) from exc
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
    lean: bool = False,
    **engine_options: Any,
) -> dict[str, Any]:
    """Run `op` (up, preview, refresh or destroy) on `stack`; return its change summary and duration.

    The result: {"operation", "stack", "changes": {op_type: count}, "duration_s", and for
    up also "outputs" (secret values replaced by "[secret]")}. `policy_packs` (paths) only
    apply to up and preview. Extra keyword arguments go to the Automation API call as is
    (e.g. expect_no_changes=True, target=[urn], diff=True). `lean` (an `up` with no options): skip the
    outputs and history the SDK reads after an up (fleet.sdk_internals.lean_up); no "outputs" then.
    """
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}: expected one of {', '.join(OPERATIONS)}")
    packs = [str(Path(p).resolve()) for p in policy_packs or ()]
    if packs and op not in ("up", "preview"):
        raise ValueError(f"policy packs apply to up and preview only, not {op}")
    kwargs: dict[str, Any] = {"on_output": on_output, "color": "never", **engine_options}
    if packs:
        kwargs["policy_packs"] = packs
    events_file = os.environ.get(EVENTS_ENV)
    if events_file and "on_event" not in kwargs:
        kwargs["on_event"] = _event_writer(Path(events_file))
    started = time.monotonic()
    try:
        if lean and op == "up" and not packs and not engine_options and on_output is None and not events_file:
            changes = lean_up(stack, stack.workspace.program)
            if changes is not None:
                return {"operation": op, "stack": stack.name, "changes": changes, "duration_s": round(time.monotonic() - started, 3)}
        result = getattr(stack, op)(**kwargs)
    except auto_errors.CommandError as exc:
        raise engine_error(exc, op, stack.name, _backend_of(stack)) from exc
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


EVENTS_ENV = "FLEET_ENGINE_EVENTS"
"""A file to append the engine's events to, one JSON line each (kind, op, type, urn): for watching a run from outside."""


def _event_writer(path: Path) -> Callable[[Any], None]:
    def write(event: Any) -> None:
        for kind in ("prelude_event", "resource_pre_event", "res_outputs_event", "res_op_failed_event", "summary_event", "cancel_event"):
            body = getattr(event, kind, None)
            if body is None:
                continue
            metadata = getattr(body, "metadata", None)
            line = {"sequence": event.sequence, "kind": kind}
            if metadata is not None:
                line.update({"op": getattr(metadata.op, "value", str(metadata.op)), "type": metadata.type, "urn": metadata.urn})
            with path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(line) + "\n")

    return write


def _backend_of(stack: auto.Stack) -> str | None:
    env = getattr(stack.workspace, "env_vars", None) or {}
    return env.get("PULUMI_BACKEND_URL")


def _changes(result: Any) -> dict[str, int]:
    if isinstance(result, auto.PreviewResult):
        counts = result.change_summary
    else:
        counts = result.summary.resource_changes
    return {str(kind): int(count) for kind, count in (counts or {}).items()}
