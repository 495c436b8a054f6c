"""The tenant registry: a `tenants` table that apps read to route requests, kept in sync by `pulumi up`.

`TenantRegistryTable` creates the table (never drops it); `TenantRegistryRow` upserts one row per tenant
and marks it inactive on delete. Rows hold names only, never a password (docs/architecture.md, "Registry").
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import psycopg
import pulumi
from psycopg import errors, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.providers import (
    RESOURCE_NAME_KEY,
    FleetDynamicResource,
    failure_context,
    is_unknown,
    resource_label,
)

__all__ = [
    "COLUMNS",
    "CONNECT_TIMEOUT_SECONDS",
    "TenantRegistryTable",
    "TenantRegistryTableArgs",
    "TenantRegistryTableProvider",
    "TenantRegistryRow",
    "TenantRegistryRowArgs",
    "TenantRegistryRowProvider",
    "connect",
    "create_table_sql",
]

CONNECT_TIMEOUT_SECONDS = 15

# The table's columns, in order: (name, SQL type and constraints). Append only: a column once
# published is read by apps; `ensure_table` adds the ones an older table lacks.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "text PRIMARY KEY"),
    ("display_name", "text NOT NULL"),
    ("plan", "text NOT NULL"),
    ("user_limit", "integer NOT NULL"),
    ("connections_limit", "integer NOT NULL"),
    ("db_connections", "integer NOT NULL"),
    ("backup_retention_days", "integer NOT NULL"),
    ("status", "text NOT NULL"),
    ("active", "boolean NOT NULL DEFAULT true"),
    ("db_host", "text NOT NULL"),
    ("db_port", "integer NOT NULL"),
    ("db_name", "text NOT NULL"),
    ("db_user", "text NOT NULL"),
    ("hostnames", "text[] NOT NULL"),
    ("custom_domains", "text[] NOT NULL DEFAULT '{}'"),
    ("created_at", "timestamptz NOT NULL DEFAULT now()"),
    ("updated_at", "timestamptz NOT NULL DEFAULT now()"),
    ("removed_at", "timestamptz"),
    ("limits", "jsonb NOT NULL DEFAULT '{}'"),
    ("contact_name", "text"),
    ("contact_email", "text"),
    ("contact_phone", "text"),
    ("subscription_status", "text NOT NULL DEFAULT 'active'"),
    ("subscription_expires", "date"),
    ("region", "text"),
    ("db_password", "text"),  # only with a credentials reader; only that role may SELECT it
    ("usage", "jsonb NOT NULL DEFAULT '{}'"),  # written by the apps (readers may UPDATE it), read by the PR summary
    ("usage_at", "timestamptz"),
    ("app_version", "text"),
    ("modules", "text[] NOT NULL DEFAULT '{}'"),
    ("jobs", "jsonb NOT NULL DEFAULT '{}'"),  # the last run of the tenant's jobs: {migrations: {applied, at}}
)
APP_WRITTEN = ("usage", "usage_at")
"""Columns the apps keep (`UPDATE tenants SET usage = ..., usage_at = now()`); `pulumi up` never writes them."""
# Row values the program sets (the rest are bookkeeping kept by the provider).
ROW_FIELDS = (
    "display_name", "plan", "user_limit", "connections_limit", "db_connections", "backup_retention_days",
    "status", "db_host", "db_port", "db_name", "db_user", "hostnames", "custom_domains", "limits",
    "contact_name", "contact_email", "contact_phone", "subscription_status", "subscription_expires", "region", "db_password",
    "app_version", "modules", "jobs",
)
SECRET_COLUMN = "db_password"
"""The tenant's database password, for one shared app that serves every tenant (`fleet:registry.credentials_reader`)."""
ACCESS = ("readers", "credentials_reader")
"""Who may read the table: `readers` every column but SECRET_COLUMN, `credentials_reader` all of it. Updated in place."""
_INT_FIELDS = frozenset({"user_limit", "connections_limit", "db_connections", "backup_retention_days", "db_port"})
_LIST_FIELDS = frozenset({"hostnames", "custom_domains", "modules"})
_JSON_FIELDS = frozenset({"limits", "jobs"})
# Where the registry is: a change means another table, so the resource is replaced.
LOCATION = ("host", "port", "database", "schema", "table")
# How the provider logs in: a change updates the recorded inputs, nothing in the database.
CREDENTIALS = ("admin_user", "admin_password", "sslmode")
_STATUSES = ("active", "suspended", "offboarded", "purged")


# ---------------------------------------------------------------- SQL


def connect(props: dict[str, Any], database: Optional[str] = None):
    """A psycopg connection as the admin of the registry server (autocommit)."""

    return psycopg.connect(
        host=props["host"],
        port=int(props["port"]),
        user=props["admin_user"],
        password=props.get("admin_password") or None,
        dbname=database or props["database"],
        sslmode=props.get("sslmode") or "prefer",
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name="tenant-fleet registry",
        autocommit=True,
    )


def _table(props: dict[str, Any]):

    return sql.Identifier(props.get("schema") or "public", props["table"])


def create_table_sql(props: dict[str, Any]):
    """CREATE TABLE IF NOT EXISTS for the registry table, and the index apps look hosts up with."""

    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in COLUMNS)
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(props.get("schema") or "public")),
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(_table(props), columns),
        *[
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(_table(props), sql.Identifier(name), sql.SQL(kind.replace(" PRIMARY KEY", "")))
            for name, kind in COLUMNS
        ],
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (hostnames)").format(sql.Identifier(f"{props['table']}_hostnames_idx"), _table(props)),
    ]


def _ensure_database(props: dict[str, Any]) -> None:
    """Create the registry database when it does not exist yet (connecting to `postgres`)."""

    with connect(props, "postgres") as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (props["database"],)).fetchone()
        if exists is None:
            try:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(props["database"])))
            except errors.DuplicateDatabase:
                pass  # two creates racing: the other one won


def _ensure_table(props: dict[str, Any]) -> None:
    _ensure_database(props)
    with connect(props) as connection, connection.transaction():
        # Serialize concurrent ensures (two stacks sharing a registry): IF NOT EXISTS is not race-free.
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tenant-fleet registry {props['table']}",))
        for statement in create_table_sql(props):
            connection.execute(statement)
        for statement in access_sql(connection, props):
            connection.execute(statement)


def access_sql(connection, props: dict[str, Any]) -> list:
    """Who reads the table: nobody through PUBLIC; `readers` every column but the password; `credentials_reader`
    all of it. A table-level SELECT a reader had (which would include the password) is taken back."""
    readers = [str(role) for role in props.get("readers") or []]
    credentials_reader = props.get("credentials_reader") or None
    wanted = [*readers, *([credentials_reader] if credentials_reader else [])]
    missing = [role for role in wanted if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None]
    if missing:
        raise LookupError(f"registry reader role(s) {', '.join(missing)} do not exist on the registry's server: create them (with their login) first")
    table = _table(props)
    visible = sql.SQL(", ").join(sql.Identifier(name) for name, _ in COLUMNS if name != SECRET_COLUMN)
    statements = [sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC").format(table)]
    schema = sql.Identifier(props.get("schema") or "public")
    app_written = sql.SQL(", ").join(sql.Identifier(name) for name in APP_WRITTEN)
    for role in readers:
        statements += [
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(role)),
            sql.SQL("REVOKE SELECT, UPDATE ON TABLE {} FROM {}").format(table, sql.Identifier(role)),
            sql.SQL("GRANT SELECT ({}) ON TABLE {} TO {}").format(visible, table, sql.Identifier(role)),
            sql.SQL("GRANT UPDATE ({}) ON TABLE {} TO {}").format(app_written, table, sql.Identifier(role)),
        ]
    if credentials_reader:
        statements += [
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(credentials_reader)),
            sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(table, sql.Identifier(credentials_reader)),
            sql.SQL("GRANT UPDATE ({}) ON TABLE {} TO {}").format(app_written, table, sql.Identifier(credentials_reader)),
        ]
    return statements


def _table_exists(props: dict[str, Any]) -> bool:
    try:
        with connect(props) as connection:
            row = connection.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                (props.get("schema") or "public", props["table"]),
            ).fetchone()
    except Exception as error:  # noqa: BLE001 - a missing database means a missing table
        if _database_missing(error):
            return False
        raise
    return row is not None


def _database_missing(error: Exception) -> bool:
    """Whether a connection failed because the database does not exist (libpq reports no SQLSTATE for it)."""
    return 'database "' in str(error) and "does not exist" in str(error)


def _upsert(props: dict[str, Any]) -> None:

    values = {field: _normalize(field, props.get(field)) for field in ROW_FIELDS}
    names = ["name", *ROW_FIELDS]
    statement = sql.SQL(
        "INSERT INTO {table} ({columns}, active, removed_at) VALUES ({values}, true, NULL) "
        "ON CONFLICT (name) DO UPDATE SET {updates}, active = true, removed_at = NULL, updated_at = now()"
    ).format(
        table=_table(props),
        columns=sql.SQL(", ").join(sql.Identifier(name) for name in names),
        values=sql.SQL(", ").join(sql.Placeholder(name) for name in names),
        updates=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in ROW_FIELDS),
    )
    values = {field: Jsonb(value) if field in _JSON_FIELDS else value for field, value in values.items()}
    with connect(props) as connection:
        connection.execute(statement, {"name": props["name"], **values})


def _mark_inactive(props: dict[str, Any]) -> None:

    statement = sql.SQL("UPDATE {} SET active = false, removed_at = now(), updated_at = now() WHERE name = %s AND active").format(_table(props))
    with connect(props) as connection:
        connection.execute(statement, (props["name"],))


def _select_row(props: dict[str, Any]) -> Optional[dict[str, Any]]:

    statement = sql.SQL("SELECT {} FROM {} WHERE name = %s").format(
        sql.SQL(", ").join(sql.Identifier(name) for name in ("name", *ROW_FIELDS, "active")), _table(props)
    )
    with connect(props) as connection:
        return connection.cursor(row_factory=dict_row).execute(statement, (props["name"],)).fetchone()


# ---------------------------------------------------------------- inputs, as the providers see them


def _normalize(field: str, value: Any) -> Any:
    """Inputs as stored: ints for counts and ports (the wire has only doubles), sorted-free lists of strings."""
    if value is None or is_unknown(value):
        return value
    if field in _INT_FIELDS:
        return int(value)
    if field in _LIST_FIELDS or field == "readers":
        return [str(item) for item in value]
    if field == "subscription_expires":
        return value.isoformat() if hasattr(value, "isoformat") else str(value)  # a date read back, or the spec's text
    if field in _JSON_FIELDS:
        # Counts arrive as doubles from the engine; flags, text and nested records as they are.
        return {str(key): int(item) if isinstance(item, float) and item.is_integer() else item for key, item in dict(value).items()}
    if field == "schema":
        return value or "public"
    return value


def _label(kind: str, props: dict[str, Any]) -> str:
    where = f"{props.get('host')}:{props.get('port')}/{props.get('database')}"
    subject = f" {props['name']!r}" if kind == "TenantRegistryRow" and props.get("name") else ""
    return f"{resource_label(kind, props, quoted=False)}{subject} (registry {where})"


@contextlib.contextmanager
def _operation(kind: str, props: dict[str, Any], action: str) -> Iterator[None]:
    with failure_context(_label(kind, props), action):
        yield


def _diff(olds: dict[str, Any], news: dict[str, Any], fields: tuple[str, ...], replace: tuple[str, ...]) -> DiffResult:
    """Compare normalized old outputs with new inputs; an unknown new value counts as a change."""
    changed = [field for field in fields if is_unknown(news.get(field)) or _normalize(field, olds.get(field)) != _normalize(field, news.get(field))]
    replaces = [field for field in changed if field in replace]
    # Delete first: the old row is marked inactive, then the new one upserted active. The other order
    # would mark inactive the row just written whenever old and new name the same table (an alias host).
    return DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=bool(replaces))


def _check_location(failures: list[CheckFailure], news: dict[str, Any]) -> None:
    for field in ("host", "database", "table", "admin_user"):
        value = news.get(field)
        if not is_unknown(value) and (not isinstance(value, str) or not value):
            failures.append(CheckFailure(field, f"{field} is required"))
    port: Any = news.get("port")  # anything the program sent: a bad value is a check failure
    if not is_unknown(port):
        try:
            if not 1 <= int(port) <= 65535:
                raise ValueError
        except (TypeError, ValueError):
            failures.append(CheckFailure("port", f"port must be 1..65535 (got {port!r})"))
    for field in ("database", "schema", "table"):
        value = news.get(field)
        if isinstance(value, str) and not is_unknown(value) and len(value.encode()) > 63:
            failures.append(CheckFailure(field, f"{field} {value!r} exceeds PostgreSQL's 63-byte identifiers"))


# ---------------------------------------------------------------- TenantRegistryTable


@dataclass(frozen=True)
class TenantRegistryTableArgs:
    """Inputs of TenantRegistryTable."""

    host: pulumi.Input[str]
    """Address of the PostgreSQL server holding the registry, reachable from where `pulumi up` runs. Changing it replaces the table resource."""
    port: pulumi.Input[int]
    """Its port. Changing it replaces the table resource."""
    admin_user: pulumi.Input[str]
    """Admin role the provider connects as (creates the database and table). Updated in place."""
    admin_password: pulumi.Input[str]
    """The admin's password: pass a secret (`fleet:server_passwords.<key>`). Updated in place."""
    database: pulumi.Input[str]
    """Registry database; created when missing. Changing it replaces the table resource."""
    sslmode: pulumi.Input[str] = "prefer"
    """libpq sslmode. Updated in place."""
    schema: pulumi.Input[str] = "public"
    """Schema of the table. Changing it replaces the table resource."""
    table: pulumi.Input[str] = "tenants"
    """Table name. Changing it replaces the table resource."""
    readers: pulumi.Input[Sequence[str]] = ()
    """Roles granted SELECT on every column but the password (apps that route by hostname). Updated in place."""
    credentials_reader: pulumi.Input[Optional[str]] = None
    """The one role granted SELECT on the password column too (a shared app serving every tenant). Updated in place."""


class TenantRegistryTableProvider(ResourceProvider):
    """Creates the registry table (and database) if missing; delete leaves it in place."""

    _FIELDS = (*LOCATION, *CREDENTIALS, *ACCESS)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        _check_location(failures, news)
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return _diff(olds, news, self._FIELDS, LOCATION)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with _operation("TenantRegistryTable", props, "create"):
            _ensure_table(props)
        outs = self._outputs(props)
        return CreateResult(outs["qualified_name"], outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Only credentials changed: prove they work (and that the table is still there).
        with _operation("TenantRegistryTable", news, "update"):
            _ensure_table(news)
        return UpdateResult(self._outputs(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _operation("TenantRegistryTable", props, "read"):
            exists = _table_exists(props)
        return ReadResult(id_, dict(props)) if exists else ReadResult("", {})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Conservative: apps read this table and it holds the history of removed tenants. Dropping it
        # is a decision for a person with psql, not a side effect of removing the registry setting.
        return None

    @staticmethod
    def _outputs(props: dict[str, Any]) -> dict[str, Any]:
        outs = {field: _normalize(field, props.get(field)) for field in (*LOCATION, *CREDENTIALS, *ACCESS)}
        outs["qualified_name"] = f"{props.get('host')}:{int(props['port'])}/{props['database']}/{outs['schema']}.{props['table']}"
        outs[RESOURCE_NAME_KEY] = props.get(RESOURCE_NAME_KEY)
        return outs


class TenantRegistryTable(FleetDynamicResource, module="registry", name="TenantRegistryTable"):
    """The `tenants` table apps read to route requests; created if missing, never dropped."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    schema: pulumi.Output[str]
    table: pulumi.Output[str]
    """The table's name: pass it to the rows so they are written after the table exists."""
    qualified_name: pulumi.Output[str]
    """`host:port/database/schema.table`."""

    def __init__(self, name: str, args: TenantRegistryTableArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            "host": args.host,
            "port": args.port,
            "admin_user": args.admin_user,
            "admin_password": pulumi.Output.secret(args.admin_password),
            "sslmode": args.sslmode,
            "database": args.database,
            "schema": args.schema,
            "table": args.table,
            "readers": list(args.readers) if isinstance(args.readers, (list, tuple)) else args.readers,
            "credentials_reader": args.credentials_reader,
            "qualified_name": None,
            RESOURCE_NAME_KEY: name,
        }
        secret = pulumi.ResourceOptions(additional_secret_outputs=["admin_password"])
        super().__init__(TenantRegistryTableProvider(), name, props, pulumi.ResourceOptions.merge(secret, opts))


# ---------------------------------------------------------------- TenantRegistryRow


@dataclass(frozen=True)
class TenantRegistryRowArgs:
    """Inputs of TenantRegistryRow: where the registry is, and the tenant's row (names only, never a password)."""

    host: pulumi.Input[str]
    """Registry server address. With port, database, schema, table and name: the row's identity (a change replaces it)."""
    port: pulumi.Input[int]
    """Registry server port."""
    admin_user: pulumi.Input[str]
    """Admin role the provider connects as. Updated in place."""
    admin_password: pulumi.Input[str]
    """The admin's password, a secret. Updated in place."""
    database: pulumi.Input[str]
    """Registry database."""
    table: pulumi.Input[str]
    """Registry table; pass `TenantRegistryTable.table` so the row comes after the table."""
    name: pulumi.Input[str]
    """The tenant's name (the row's key)."""
    display_name: pulumi.Input[str]
    """Human name."""
    plan: pulumi.Input[str]
    """Plan name."""
    user_limit: pulumi.Input[int]
    """The plan's USER_LIMIT."""
    connections_limit: pulumi.Input[int]
    """The plan's CONNECTIONS_LIMIT."""
    db_connections: pulumi.Input[int]
    """The plan's database connection limit."""
    backup_retention_days: pulumi.Input[int]
    """The plan's backup retention."""
    status: pulumi.Input[str]
    """`active` or `suspended`."""
    db_host: pulumi.Input[str]
    """Address apps reach the tenant's database at."""
    db_port: pulumi.Input[int]
    """Its port."""
    db_name: pulumi.Input[str]
    """The tenant's database name."""
    db_user: pulumi.Input[str]
    """The tenant's login role (its password stays in the stack's secret outputs)."""
    hostnames: pulumi.Input[list[str]]
    """Every hostname the tenant is served on (api-, app-, custom domains)."""
    custom_domains: pulumi.Input[Sequence[str]] = ()
    """The custom domains among them."""
    limits: pulumi.Input[Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """The tenant's business limits by name (counts, `unlimited`, flags), a jsonb column."""
    contact_name: pulumi.Input[Optional[str]] = None
    contact_email: pulumi.Input[Optional[str]] = None
    contact_phone: pulumi.Input[Optional[str]] = None
    subscription_status: pulumi.Input[str] = "active"
    subscription_expires: pulumi.Input[Optional[str]] = None
    """YYYY-MM-DD."""
    region: pulumi.Input[Optional[str]] = None
    db_password: pulumi.Input[Optional[str]] = None
    """The tenant's database password (secret), only with a credentials reader."""
    app_version: pulumi.Input[Optional[str]] = None
    """The app version (image tag) the tenant runs, when its plan or file sets one."""
    modules: pulumi.Input[Sequence[str]] = ()
    """Modules installed in its database."""
    jobs: pulumi.Input[Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """What the tenant's jobs did last: `{migrations: {applied: {source: [files]}, at}}`."""
    sslmode: pulumi.Input[str] = "prefer"
    """libpq sslmode for the provider's connection."""
    schema: pulumi.Input[str] = "public"
    """Schema of the registry table."""


class TenantRegistryRowProvider(ResourceProvider):
    """Upserts one tenant's row; delete marks it inactive (never DELETE FROM)."""

    _REPLACE = (*LOCATION, "name")
    _FIELDS = (*LOCATION, "name", *CREDENTIALS, *ROW_FIELDS)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        _check_location(failures, news)
        status = news.get("status")
        if not is_unknown(status) and status not in _STATUSES:
            failures.append(CheckFailure("status", f"status must be one of {', '.join(_STATUSES)} (got {status!r})"))
        for field in ("name", "display_name", "plan", "db_host", "db_name", "db_user"):
            value = news.get(field)
            if not is_unknown(value) and (not isinstance(value, str) or not value):
                failures.append(CheckFailure(field, f"{field} is required"))
        hostnames = news.get("hostnames")
        if not is_unknown(hostnames) and not hostnames:
            failures.append(CheckFailure("hostnames", "hostnames needs at least one hostname"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        result = _diff(olds, news, self._FIELDS, self._REPLACE)
        if olds.get("active") is False and not result.changes:
            # Refresh found the row marked inactive (or edited by hand to inactive): the next up re-activates it.
            return DiffResult(changes=True, replaces=[], stables=[], delete_before_replace=False)
        return result

    def create(self, props: dict[str, Any]) -> CreateResult:
        with _operation("TenantRegistryRow", props, "create"):
            _upsert(props)
        return CreateResult(f"{props['table']}/{props['name']}", self._outputs(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with _operation("TenantRegistryRow", news, "update"):
            _upsert(news)
        return UpdateResult(self._outputs(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with _operation("TenantRegistryRow", props, "read"):
            row = _select_row(props)
        if row is None:
            return ReadResult("", {})  # gone (deleted by hand): refresh drops it, the next up writes it again
        outs = dict(props)
        outs.update({field: _normalize(field, row[field]) for field in ROW_FIELDS})
        outs["active"] = bool(row["active"])
        return ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Only ever this one row, and only its `active` flag: the row stays as the tenant's record.
        with _operation("TenantRegistryRow", props, "delete (mark inactive)"):
            try:
                _mark_inactive(props)
            except (errors.UndefinedTable, errors.InvalidSchemaName):
                return  # the table is gone already: nothing left to mark
            except Exception as error:  # noqa: BLE001
                if _database_missing(error):
                    return  # so is the whole database
                raise

    @classmethod
    def _outputs(cls, props: dict[str, Any]) -> dict[str, Any]:
        outs = {field: _normalize(field, props.get(field)) for field in cls._FIELDS}
        outs["active"] = True
        outs[RESOURCE_NAME_KEY] = props.get(RESOURCE_NAME_KEY)
        return outs


class TenantRegistryRow(FleetDynamicResource, module="registry", name="TenantRegistryRow"):
    """One tenant's row in the registry table: upserted on every change, marked inactive when the tenant goes."""

    name: pulumi.Output[str]
    status: pulumi.Output[str]
    plan: pulumi.Output[str]
    hostnames: pulumi.Output[list[str]]
    active: pulumi.Output[bool]
    """False when a refresh found the row inactive (the next up re-activates it)."""

    def __init__(self, name: str, args: TenantRegistryRowArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props: dict[str, Any] = {
            "host": args.host,
            "port": args.port,
            "admin_user": args.admin_user,
            "admin_password": pulumi.Output.secret(args.admin_password),
            "sslmode": args.sslmode,
            "database": args.database,
            "schema": args.schema,
            "table": args.table,
            "name": args.name,
            **{field: getattr(args, field) for field in ROW_FIELDS},
            "active": None,
            RESOURCE_NAME_KEY: name,
        }
        props["custom_domains"] = list(args.custom_domains) if isinstance(args.custom_domains, tuple) else args.custom_domains
        props["modules"] = list(args.modules) if isinstance(args.modules, tuple) else args.modules
        if args.db_password is not None:
            props[SECRET_COLUMN] = pulumi.Output.secret(args.db_password)
        secret = pulumi.ResourceOptions(additional_secret_outputs=["admin_password", SECRET_COLUMN])
        super().__init__(TenantRegistryRowProvider(), name, props, pulumi.ResourceOptions.merge(secret, opts))
