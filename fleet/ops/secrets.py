"""Where the operations read secrets from: environment, the deployed stack through the engine, or a file.
"""


from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, Optional, Protocol

from fleet.engine import driver as engine
from fleet.errors import FleetError
from fleet.program import APP_ENVS_OUTPUT

SERVER_PASSWORD_ENV = "FLEET_SERVER_PASSWORD_"
DATABASE_PASSWORD_ENV = "FLEET_DATABASE_PASSWORD_"
DATABASE_PASSWORDS_OUTPUT = "database_passwords"
SERVER_PASSWORDS_CONFIG = "fleet:server_passwords"
SECRET_SOURCES_HELP = "auto (environment, then the deployed stack through the engine), env, engine, or a JSON file path"


def fleet_error(message: str) -> Exception:

    return FleetError(message)


def env_suffix(key: str) -> str:
    """`shared-1` -> `SHARED_1`: the part of an environment variable name that names a server or tenant."""
    return re.sub(r"[^A-Z0-9]", "_", key.upper())


# ---------------------------------------------------------------- secret sources


class SecretSource(Protocol):
    """Where passwords come from. Both methods return None when this source does not know the value."""

    description: str
    """How the source is named in messages (`environment`, `file secrets.json`, `stack dev (engine)`)."""

    def server_password(self, server_key: str) -> Optional[str]:
        """The admin password of a server, by its key in `fleet:servers`."""

    def database_password(self, tenant: str) -> Optional[str]:
        """The password of a tenant's login role."""


class StaticSecrets:
    """Passwords given as mappings (a JSON file's content, a test's clusters)."""

    def __init__(
        self,
        server_passwords: Optional[Mapping[str, str]] = None,
        database_passwords: Optional[Mapping[str, str]] = None,
        description: str = "given passwords",
    ) -> None:
        self._servers = dict(server_passwords or {})
        self._databases = dict(database_passwords or {})
        self.description = description

    def server_password(self, server_key: str) -> Optional[str]:
        return self._servers.get(server_key)

    def database_password(self, tenant: str) -> Optional[str]:
        return self._databases.get(tenant)


class FileSecrets(StaticSecrets):
    """A JSON file: `{"server_passwords": {key: password}, "database_passwords": {tenant: password}}`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise fleet_error(f"cannot read the secrets file {path}: {error.strerror}") from None
        except ValueError as error:
            raise fleet_error(f"the secrets file {path} is not JSON: {error}") from None
        if not isinstance(data, dict) or not set(data) <= {"server_passwords", "database_passwords"}:
            raise fleet_error(f"the secrets file {path} must be an object with server_passwords and/or database_passwords")
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Not fatal (a CI secret mounted read-only may not be ours to chmod), but worth saying.

            print(f"warning: {path} is readable by other users; chmod 600 it", file=sys.stderr)
        super().__init__(data.get("server_passwords"), data.get("database_passwords"), f"file {path}")


class EnvSecrets:
    """`FLEET_SERVER_PASSWORD_<KEY>` and `FLEET_DATABASE_PASSWORD_<TENANT>` from the environment."""

    description = "environment"

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        self._environ = os.environ if environ is None else environ

    def server_password(self, server_key: str) -> Optional[str]:
        return self._environ.get(SERVER_PASSWORD_ENV + env_suffix(server_key)) or None

    def database_password(self, tenant: str) -> Optional[str]:
        return self._environ.get(DATABASE_PASSWORD_ENV + env_suffix(tenant)) or None


class EngineSecrets:
    """The deployed stack's secrets through the engine: config `fleet:server_passwords`, output `database_passwords`.

    Nothing runs until a value is asked for; the config and the outputs are then read once. The stack's
    `Pulumi.<stack>.yaml` (with its encryption salt) is copied into a scratch work dir, as `fleet up` does.
    """

    def __init__(
        self,
        stack: str,
        root: Path,
        *,
        backend_dir: Optional[str | os.PathLike[str]] = None,
        passphrase: Optional[str] = None,
    ) -> None:
        self.stack = stack
        self.root = Path(root)
        self.backend_dir = backend_dir
        self.passphrase = passphrase
        self.description = f"stack {stack} (engine)"
        self._loaded: Optional[tuple[dict[str, str], dict[str, str]]] = None
        self._app_envs: Optional[dict[str, Any]] = None

    def server_password(self, server_key: str) -> Optional[str]:
        return self._load()[0].get(server_key)

    def database_password(self, tenant: str) -> Optional[str]:
        return self._load()[1].get(tenant)

    def app_env(self, tenant: str) -> Optional[dict[str, list[str]]]:
        """The tenant's generated app env from the stack's secret output `app_envs` (None when not exported)."""
        if self._app_envs is None:
            self._app_envs = read_stack_output(self.stack, self.root, APP_ENVS_OUTPUT, backend_dir=self.backend_dir, passphrase=self.passphrase) or {}
        env = self._app_envs.get(tenant)
        return {str(service): [str(line) for line in lines] for service, lines in env.items()} if isinstance(env, dict) else None

    def _load(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._loaded is None:
            self._loaded = read_stack_secrets(self.stack, self.root, backend_dir=self.backend_dir, passphrase=self.passphrase)
        return self._loaded


def _deployed_config_and_outputs(
    stack: str, root: Path, what: str, *, backend_dir: Optional[str | os.PathLike[str]] = None, passphrase: Optional[str] = None
) -> tuple[MutableMapping[str, Any], MutableMapping[str, Any]]:
    """(config, outputs) of a deployed stack through the engine, from a scratch work dir holding its `Pulumi.<stack>.yaml`
    (with its encryption salt), as `fleet up` does; `what` names the reading in errors."""
    stack_file = Path(root) / f"Pulumi.{stack}.yaml"
    scratch = tempfile.mkdtemp(prefix=f"tenant-fleet-ops-{stack}-")
    try:
        if stack_file.exists():
            shutil.copy(stack_file, Path(scratch) / stack_file.name)
        try:
            workspace_stack = engine.stack_for(stack, lambda: None, work_dir=scratch, backend_dir=backend_dir, passphrase=passphrase)
            return workspace_stack.get_all_config(), workspace_stack.outputs()
        except (engine.EngineMissing, engine.EngineError) as error:
            raise fleet_error(f"cannot read {what} of stack {stack} through the engine: {error}") from None
        except Exception as error:  # noqa: BLE001 - the Automation API raises CommandError for a bad passphrase
            raise fleet_error(f"cannot read {what} of stack {stack} through the engine: {str(error).strip().splitlines()[-1]}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def read_stack_secrets(
    stack: str,
    root: Path,
    *,
    backend_dir: Optional[str | os.PathLike[str]] = None,
    passphrase: Optional[str] = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(server passwords by key, tenant role passwords by tenant) of a deployed stack, through the engine."""

    config, outputs = _deployed_config_and_outputs(stack, root, "the secrets", backend_dir=backend_dir, passphrase=passphrase)
    servers: dict[str, str] = {}
    if SERVER_PASSWORDS_CONFIG in config:
        raw = config[SERVER_PASSWORDS_CONFIG].value
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            value = None
        if isinstance(value, dict):
            servers = {str(key): str(password) for key, password in value.items()}
    databases: dict[str, str] = {}
    if DATABASE_PASSWORDS_OUTPUT in outputs and isinstance(outputs[DATABASE_PASSWORDS_OUTPUT].value, dict):
        databases = {str(key): str(password) for key, password in outputs[DATABASE_PASSWORDS_OUTPUT].value.items()}
    return servers, databases


def read_stack_output(
    stack: str, root: Path, name: str, *, backend_dir: Optional[str | os.PathLike[str]] = None, passphrase: Optional[str] = None
) -> Optional[Any]:
    """One output of a deployed stack (secrets revealed), through the engine; None when the stack has no such output."""
    _, outputs = _deployed_config_and_outputs(stack, root, f"output {name}", backend_dir=backend_dir, passphrase=passphrase)
    return outputs[name].value if name in outputs else None


class ChainedSecrets:
    """Ask each source in turn; the first that knows a value wins."""

    def __init__(self, *sources: SecretSource) -> None:
        self.sources = sources
        self.description = " then ".join(source.description for source in sources)

    def server_password(self, server_key: str) -> Optional[str]:
        return next((value for source in self.sources if (value := source.server_password(server_key))), None)

    def database_password(self, tenant: str) -> Optional[str]:
        return next((value for source in self.sources if (value := source.database_password(tenant))), None)

    def app_env(self, tenant: str) -> Optional[dict[str, list[str]]]:
        readers = [reader for source in self.sources if (reader := getattr(source, "app_env", None)) is not None]
        return next((value for reader in readers if (value := reader(tenant))), None)


def secret_source(spec: str, stack: str, root: Path) -> SecretSource:
    """The source the CLI's `--secrets` names: auto, env, engine, or a JSON file path (then the environment)."""
    if spec == "auto":
        return ChainedSecrets(EnvSecrets(), EngineSecrets(stack, root))
    if spec == "env":
        return EnvSecrets()
    if spec == "engine":
        return EngineSecrets(stack, root)
    return ChainedSecrets(FileSecrets(spec), EnvSecrets())
