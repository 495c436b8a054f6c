"""What the operations commands know about a stack: every tenant's spec, plan, server, names and secrets.

`backup`, `restore`, `verify` and `status` all start here, so none of them re-derives a name or looks
for a password on its own:

    inventory = load_inventory("dev")                      # Pulumi.dev.yaml + tenants/, secrets from env or the engine
    for tenant in inventory.select(["santarita"]):
        access = inventory.admin_access(tenant.server_key)  # pgtools.ServerAccess as the server's admin
        tenant.database, tenant.role, tenant.hostnames      # fleet.derive's names

The spec side (tenant files, plans, the `fleet:` config of `Pulumi.<stack>.yaml`) is read offline.
Secrets come from a pluggable `SecretSource`:

* `EnvSecrets`: `FLEET_SERVER_PASSWORD_<KEY>` (admin password of server `<key>`) and
  `FLEET_DATABASE_PASSWORD_<TENANT>` (a tenant role's password); keys upper-cased, `-` as `_`.
* `FileSecrets`: a JSON file `{"server_passwords": {key: ...}, "database_passwords": {tenant: ...}}`
  (mode 0600, please), for operators without the engine and for tests.
* `EngineSecrets`: the deployed stack through the engine: the secret config `fleet:server_passwords`
  (decrypted with the stack's passphrase) and the secret output `database_passwords`.
* `ChainedSecrets`: the first source that knows a value wins. The CLI's default (`--secrets auto`) is
  the environment, then the engine, asked lazily (only when the environment lacks a value).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from fleet import derive
from fleet.spec import Environment, Fleet, Plan, PostgresServer, TenantSpec, absolute_folder, load_fleet

SERVER_PASSWORD_ENV = "FLEET_SERVER_PASSWORD_"
DATABASE_PASSWORD_ENV = "FLEET_DATABASE_PASSWORD_"
DATABASE_PASSWORDS_OUTPUT = "database_passwords"
SERVER_PASSWORDS_CONFIG = "fleet:server_passwords"
SECRET_SOURCES_HELP = "auto (environment, then the deployed stack through the engine), env, engine, or a JSON file path"


def _fleet_error(message: str) -> Exception:
    from fleet.cli import FleetError

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
            raise _fleet_error(f"cannot read the secrets file {path}: {error.strerror}") from None
        except ValueError as error:
            raise _fleet_error(f"the secrets file {path} is not JSON: {error}") from None
        if not isinstance(data, dict) or not set(data) <= {"server_passwords", "database_passwords"}:
            raise _fleet_error(f"the secrets file {path} must be an object with server_passwords and/or database_passwords")
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Not fatal (a CI secret mounted read-only may not be ours to chmod), but worth saying.
            import sys

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

    def server_password(self, server_key: str) -> Optional[str]:
        return self._load()[0].get(server_key)

    def database_password(self, tenant: str) -> Optional[str]:
        return self._load()[1].get(tenant)

    def _load(self) -> tuple[dict[str, str], dict[str, str]]:
        if self._loaded is None:
            self._loaded = read_stack_secrets(self.stack, self.root, backend_dir=self.backend_dir, passphrase=self.passphrase)
        return self._loaded


def read_stack_secrets(
    stack: str,
    root: Path,
    *,
    backend_dir: Optional[str | os.PathLike[str]] = None,
    passphrase: Optional[str] = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(server passwords by key, tenant role passwords by tenant) of a deployed stack, through the engine."""
    from fleet import engine

    stack_file = Path(root) / f"Pulumi.{stack}.yaml"
    scratch = tempfile.mkdtemp(prefix=f"tenant-fleet-ops-{stack}-")
    try:
        if stack_file.exists():
            shutil.copy(stack_file, Path(scratch) / stack_file.name)
        try:
            workspace_stack = engine.stack_for(stack, lambda: None, work_dir=scratch, backend_dir=backend_dir, passphrase=passphrase)
            config = workspace_stack.get_all_config()
            outputs = workspace_stack.outputs()
        except (engine.EngineMissing, engine.EngineError) as error:
            raise _fleet_error(f"cannot read the secrets of stack {stack} through the engine: {error}") from None
        except Exception as error:  # noqa: BLE001 - the Automation API raises CommandError for a bad passphrase
            raise _fleet_error(f"cannot read the secrets of stack {stack} through the engine: {str(error).strip().splitlines()[-1]}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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


class ChainedSecrets:
    """Ask each source in turn; the first that knows a value wins."""

    def __init__(self, *sources: SecretSource) -> None:
        self.sources = sources
        self.description = " then ".join(source.description for source in sources)

    def server_password(self, server_key: str) -> Optional[str]:
        return next((value for source in self.sources if (value := source.server_password(server_key))), None)

    def database_password(self, tenant: str) -> Optional[str]:
        return next((value for source in self.sources if (value := source.database_password(tenant))), None)


def secret_source(spec: str, stack: str, root: Path) -> SecretSource:
    """The source the CLI's `--secrets` names: auto, env, engine, or a JSON file path (then the environment)."""
    if spec == "auto":
        return ChainedSecrets(EnvSecrets(), EngineSecrets(stack, root))
    if spec == "env":
        return EnvSecrets()
    if spec == "engine":
        return EngineSecrets(stack, root)
    return ChainedSecrets(FileSecrets(spec), EnvSecrets())


# ---------------------------------------------------------------- the inventory


@dataclass(frozen=True)
class TenantEntry:
    """One tenant as the operations commands see it: spec, plan, placement and every derived name."""

    spec: TenantSpec
    plan: Plan
    server_key: str
    server: PostgresServer
    database: str
    """Its database (fleet.derive.database_name)."""
    role: str
    """Its login role (fleet.derive.role_name)."""
    hostnames: tuple[str, ...]
    """api-, app- and custom domains (fleet.derive.hostnames)."""
    api_hostname: str
    frontend_hostnames: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def plan_name(self) -> str:
        return self.spec.plan

    @property
    def active(self) -> bool:
        """Whether the tenant is active (not suspended)."""
        return self.spec.status == "active"

    @property
    def retention_days(self) -> int:
        """How long its backups are kept (the plan's backup_retention_days)."""
        return self.plan.backup_retention_days

    @property
    def connection_limit(self) -> int:
        """Its role's planned connection limit (the plan's db_connections)."""
        return self.plan.db_connections

    def to_mapping(self) -> dict[str, Any]:
        """JSON-able facts (no secrets)."""
        return {
            "tenant": self.name,
            "plan": self.plan_name,
            "status": self.spec.status,
            "server": self.server_key,
            "host": self.server.host,
            "port": self.server.port,
            "database": self.database,
            "role": self.role,
            "hostnames": list(self.hostnames),
        }


def tenant_entry(tenant: TenantSpec, plan: Plan, environment: Environment) -> TenantEntry:
    """A tenant's entry from its spec (all names through fleet.derive)."""
    return TenantEntry(
        spec=tenant,
        plan=plan,
        server_key=tenant.database.server,
        server=environment.servers[tenant.database.server],
        database=derive.database_name(tenant),
        role=derive.role_name(tenant),
        hostnames=tuple(derive.hostnames(tenant, environment)),
        api_hostname=derive.api_hostname(tenant, environment),
        frontend_hostnames=tuple(derive.frontend_hostnames(tenant, environment)),
    )


class Inventory:
    """Every tenant of a stack with its placement and names, and how to log in (from a SecretSource)."""

    def __init__(
        self,
        fleet: Fleet,
        secrets: SecretSource,
        *,
        stack: str = "dev",
        root: Optional[Path] = None,
        backups_dir: Optional[str | os.PathLike[str]] = None,
    ) -> None:
        from fleet.program import PROJECT_ROOT

        self.fleet = fleet
        self.secrets = secrets
        self.stack = stack
        self.root = Path(root or PROJECT_ROOT)
        self.environment: Environment = fleet.environment
        self.tenants: dict[str, TenantEntry] = {
            tenant.name: tenant_entry(tenant, fleet.plan_of(tenant), fleet.environment) for tenant in fleet.tenants
        }
        self.backups_dir = self.environment.backups.folder(self.root) if backups_dir is None else absolute_folder(backups_dir, self.root)
        """Folder of the tenants' backups (`fleet:backups.dir`, or the `backups_dir` given; relative to the project root)."""

    @property
    def pg_bin(self) -> Optional[str]:
        """`fleet:backups.pg_bin` (None: pgtools finds pg_dump/pg_restore)."""
        return self.environment.backups.pg_bin

    def select(self, names: Optional[Iterable[str]] = None) -> list[TenantEntry]:
        """The named tenants (all when None), sorted; an unknown name is an error that lists the known ones."""
        if names is None:
            return [self.tenants[name] for name in sorted(self.tenants)]
        wanted = list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in self.tenants]
        if unknown:
            raise _fleet_error(f"unknown tenant(s) {', '.join(unknown)} in stack {self.stack}; tenants: {', '.join(sorted(self.tenants)) or 'none'}")
        return [self.tenants[name] for name in sorted(wanted)]

    def tenant(self, name: str) -> TenantEntry:
        """One tenant by name."""
        return self.select([name])[0]

    def on_server(self, server_key: str) -> list[TenantEntry]:
        """The tenants whose database is on a server."""
        return [entry for entry in self.select() if entry.server_key == server_key]

    def server_password(self, server_key: str) -> str:
        """The admin password of a server, or an error saying where it was looked for."""
        if server_key not in self.environment.servers:
            raise _fleet_error(f"unknown server {server_key!r}; servers: {', '.join(sorted(self.environment.servers))}")
        password = self.secrets.server_password(server_key)
        if not password:
            raise _fleet_error(
                f"no admin password for server {server_key} (looked in: {self.secrets.description}); set "
                f"{SERVER_PASSWORD_ENV}{env_suffix(server_key)}, pass --secrets FILE, or deploy the stack with "
                f"`pulumi config set --secret --path 'fleet:server_passwords.{server_key}' ...`"
            )
        return password

    def tenant_password(self, tenant: str) -> str:
        """A tenant role's password, or an error saying where it was looked for."""
        password = self.secrets.database_password(tenant)
        if not password:
            raise _fleet_error(
                f"no database password for tenant {tenant} (looked in: {self.secrets.description}); set "
                f"{DATABASE_PASSWORD_ENV}{env_suffix(tenant)}, pass --secrets FILE, or deploy the stack (output {DATABASE_PASSWORDS_OUTPUT})"
            )
        return password

    def admin_access(self, server_key: str):
        """pgtools.ServerAccess to a server as its admin."""
        from fleet.pgtools import ServerAccess

        server = self.environment.servers[server_key]
        return ServerAccess(server.host, server.port, server.admin_user, self.server_password(server_key), server.sslmode)

    def tenant_access(self, name: str):
        """pgtools.ServerAccess to a tenant's server as the tenant's own role (what its app logs in as)."""
        from fleet.pgtools import ServerAccess

        entry = self.tenant(name)
        return ServerAccess(entry.server.host, entry.server.port, entry.role, self.tenant_password(name), entry.server.sslmode)


def load_inventory(
    stack: str = "dev",
    *,
    root: Optional[Path] = None,
    tenants_dir: Optional[Path] = None,
    config: Optional[Mapping[str, Any] | Environment] = None,
    secrets: Optional[SecretSource] = None,
    backups_dir: Optional[str | os.PathLike[str]] = None,
) -> Inventory:
    """The inventory of a stack: `config` (the `fleet:` values) or `<root>/Pulumi.<stack>.yaml`, and the tenant files.

    Honours `fleet:tenants` (a shard's selection). Raises SpecError for an invalid spec, like `fleet plan`.
    """
    from fleet.plan import stack_config
    from fleet.program import PROJECT_ROOT

    root = Path(root or PROJECT_ROOT)
    tenants_dir = Path(tenants_dir or root / "tenants")
    if config is None:
        config = stack_config(stack, root)
    environment = config if isinstance(config, Environment) else dict(config)
    fleet = load_fleet(tenants_dir, environment, root=tenants_dir.parent, environment_display=f"Pulumi.{stack}.yaml")
    if fleet.environment.tenants is not None:
        fleet = fleet.select(set(fleet.environment.tenants))
    return Inventory(fleet, secrets or ChainedSecrets(EnvSecrets(), EngineSecrets(stack, root)), stack=stack, root=root, backups_dir=backups_dir)
