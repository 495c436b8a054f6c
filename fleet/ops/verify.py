"""`fleet verify`: isolation, PUBLIC grants, limits and hostnames checked against the live servers.
"""


from __future__ import annotations

import http.client
import socket
import ssl
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import psycopg

from fleet.model import db_limits, derive
from fleet.model.spec import AlertThresholds
from fleet.postgres import role_settings
from fleet.postgres.privileges import shared_databases_open_to_public

Outcome = Literal["pass", "fail", "skip"]
FLAG_THRESHOLD = AlertThresholds().connections_percent / 100
"""A figure is flagged when it reaches this share of its limit (a tenant's plan may set its own: `alerts:`)."""
BACKUP_STALE_HOURS = AlertThresholds().backup_age_hours
"""A newest backup older than this (a daily job plus slack) is flagged, unless the tenant's plan sets its own."""
HTTP_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5


# ---------------------------------------------------------------- verify


@dataclass(frozen=True)
class Check:
    """One verified fact about one tenant."""

    tenant: str
    check: str
    """`login`, `isolation`, `public connect`, `public temporary`, `connection limit`, `owner`, `owner role`,
    `shared databases`, `role attributes`, `role memberships`, `http`, ..."""
    outcome: Outcome
    detail: str
    target: Optional[str] = None
    """The other tenant (isolation) or the hostname (http)."""

    @property
    def ok(self) -> bool:
        return self.outcome != "fail"

    def line(self) -> str:
        """`tenant: check target: detail`."""
        subject = f"{self.check} {self.target}" if self.target else self.check
        return f"{self.tenant}: {subject}: {self.detail}"

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


def connect(access, database: str):

    return psycopg.connect(access.dsn(database, with_password=True, connect_timeout=CONNECT_TIMEOUT_SECONDS), autocommit=True)


def try_login(access, database: str) -> tuple[bool, str]:
    """(connected, why not): log in to `database` with `access`'s user and password, and leave at once."""

    try:
        with connect(access, database) as connection:
            user, db = connection.execute("select current_user, current_database()").fetchone()
        return True, f"connected as {user} to {db}"
    except psycopg.Error as error:
        return False, server_message(error)


def server_message(error: Exception) -> str:
    """The server's own reason (`permission denied for database "x"`), without libpq's preamble and DETAIL."""
    text = str(error).strip()
    if "FATAL:" in text:
        text = text.split("FATAL:", 1)[1]
    return " ".join(text.split("DETAIL:", 1)[0].split())


def _database_facts(access, tenants) -> tuple[dict[str, dict], dict[str, dict], set[tuple[str, str]]]:
    """(databases by name, roles by name, (role, database) pairs with CONNECT) for the tenants of one server."""
    databases = [entry.database for entry in tenants]
    roles = [entry.role for entry in tenants]
    owners = [entry.owner for entry in tenants] + [derive.jobs_role_name(entry.spec) for entry in tenants]
    with access.connect() as connection:
        database_rows = connection.execute(
            """
            select d.datname, pg_get_userbyid(d.datdba),
                   has_database_privilege('public', d.oid, 'CONNECT'), has_database_privilege('public', d.oid, 'TEMPORARY'), d.datconnlimit
            from pg_database d where d.datname = any(%s)
            """,
            [databases],
        ).fetchall()
        role_rows = connection.execute(
            """
            select r.rolname, r.rolconnlimit, r.rolcanlogin,
                   r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
                   array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid where m.member = r.oid order by 1)
            from pg_roles r where r.rolname = any(%s)
            """,
            [roles + owners],
        ).fetchall()
        grants = connection.execute(
            """
            select r.rolname, d.datname from pg_roles r cross join pg_database d
            where r.rolname = any(%s) and d.datname = any(%s) and has_database_privilege(r.oid, d.oid, 'CONNECT')
            """,
            [roles, databases],
        ).fetchall()
    by_database = {
        name: {"owner": owner, "public_connect": connect, "public_temporary": temporary, "connection_limit": limit}
        for name, owner, connect, temporary, limit in database_rows
    }
    by_role = {
        name: {"connection_limit": limit, "login": login, "attributes": _attributes(flags), "member_of": list(member_of)}
        for name, limit, login, *flags, member_of in role_rows
    }
    for name, settings in role_settings.role_settings(access, roles + [derive.jobs_role_name(entry.spec) for entry in tenants]).items():
        if name in by_role:
            by_role[name]["settings"] = settings
    return by_database, by_role, {(role, database) for role, database in grants}


ROLE_ATTRIBUTES = ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS")
"""Attributes a tenant's role must never have: each lets it reach past its own database."""


def _attributes(flags: list[bool]) -> list[str]:
    return [name for name, on in zip(ROLE_ATTRIBUTES, flags) if on]


def verify_databases(inventory, tenants, *, workers: int = 8) -> list[Check]:
    """Per tenant: own login works, every other tenant's database on its server refuses it, PUBLIC closed, limit as planned."""
    checks: list[Check] = []
    servers: dict[str, list] = {}
    for entry in tenants:
        servers.setdefault(entry.server_key, []).append(entry)
    for server_key, chosen in sorted(servers.items()):
        # Isolation is between every tenant on the server, including those not selected for this run.
        neighbours = inventory.on_server(server_key)
        try:
            admin = inventory.admin_access(server_key)
            databases, roles, grants = _database_facts(admin, neighbours)
            shared_open = shared_databases_open_to_public(admin)
        except Exception as error:  # noqa: BLE001 - a server we can't read fails its tenants, not the run
            checks.extend(Check(entry.name, "server", "fail", f"cannot read server {server_key}: {error}") for entry in chosen)
            continue
        for entry in chosen:
            checks.extend(_catalog_checks(entry, databases, roles))
            checks.append(_shared_databases_check(entry, shared_open))
        checks.extend(_login_checks(inventory, chosen, neighbours, grants, workers))
    return checks


def _catalog_checks(entry, databases: dict[str, dict], roles: dict[str, dict]) -> list[Check]:
    checks = []
    database, role = databases.get(entry.database), roles.get(entry.role)
    if database is None:
        return [Check(entry.name, "database", "fail", f"database {entry.database} does not exist on {entry.server_key}")]
    if role is None:
        return [Check(entry.name, "role", "fail", f"role {entry.role} does not exist on {entry.server_key}")]
    checks.append(_owner_check(entry, database["owner"]))
    checks.extend(_owner_role_checks(entry, roles.get(entry.owner)))
    if derive.container_jobs(entry.spec, entry.plan):
        checks.append(_jobs_role_check(entry, derive.jobs_role_name(entry.spec), roles.get(derive.jobs_role_name(entry.spec))))
    for privilege in ("connect", "temporary"):
        granted = database[f"public_{privilege}"]
        checks.append(
            Check(
                entry.name,
                f"public {privilege}",
                "fail" if granted else "pass",
                f"PUBLIC {'has' if granted else 'has no'} {privilege.upper()} on {entry.database}",
            )
        )
    limit = role["connection_limit"]
    checks.append(
        Check(
            entry.name,
            "connection limit",
            "pass" if limit == entry.connection_limit else "fail",
            f"role {entry.role} limit {limit}" + ("" if limit == entry.connection_limit else f", plan {entry.plan_name} says {entry.connection_limit}"),
        )
    )
    checks.extend(_limit_checks(entry, database, role, roles))
    attributes = role.get("attributes") or []
    checks.append(
        Check(
            entry.name,
            "role attributes",
            "fail" if attributes else "pass",
            f"role {entry.role} has {', '.join(attributes)}" if attributes else f"role {entry.role} has none of {', '.join(ROLE_ATTRIBUTES)}",
        )
    )
    member_of = role.get("member_of") or []
    checks.append(
        Check(
            entry.name,
            "role memberships",
            "fail" if member_of else "pass",
            f"role {entry.role} is a member of {', '.join(member_of)}" if member_of else f"role {entry.role} is a member of no other role",
        )
    )
    if role["login"] != entry.active:
        checks.append(Check(entry.name, "role login", "fail", f"role {entry.role} has {'LOGIN' if role['login'] else 'NOLOGIN'} but the tenant is {entry.spec.status}"))
    return checks


def _limit_checks(entry, database: dict, role: dict, roles: dict[str, dict]) -> list[Check]:
    """The noisy-neighbour limits (fleet.model.db_limits) on the app and jobs roles and the database, as planned."""
    jobs = bool(derive.container_jobs(entry.spec, entry.plan))
    planned = [(entry.role, role, db_limits.app_role_limits(entry.spec, entry.plan).settings())]
    jobs_role = roles.get(derive.jobs_role_name(entry.spec))
    if jobs and jobs_role is not None:
        planned.append((derive.jobs_role_name(entry.spec), jobs_role, db_limits.jobs_role_limits(entry.spec, entry.plan).settings()))
    checks = []
    for name, facts, settings in planned:
        drift = role_settings.settings_drift(settings, facts.get("settings") or {})
        checks.append(
            Check(
                entry.name, "role settings", "fail" if drift else "pass",
                f"role {name}: {'; '.join(drift)}" if drift else f"role {name}: {', '.join(f'{key} {value}' for key, value in sorted(settings.items()))}",
            )
        )
    limit, expected = database.get("connection_limit"), db_limits.database_connection_limit(entry.spec, entry.plan, jobs=jobs)
    checks.append(
        Check(
            entry.name, "database connection limit", "pass" if limit == expected else "fail",
            f"database {entry.database} limit {limit}" + ("" if limit == expected else f", plan {entry.plan_name} says {expected}"),
        )
    )
    return checks


def _owner_check(entry, owner: str) -> Check:
    if owner == entry.owner:
        return Check(entry.name, "owner", "pass", f"database {entry.database} is owned by {owner}")
    if owner == entry.role:
        return Check(
            entry.name, "owner", "fail",
            f"database {entry.database} is owned by its login role {entry.role}: the app could DROP it or grant it away; "
            f"`fleet up` hands it to {entry.owner}",
        )
    return Check(entry.name, "owner", "fail", f"database {entry.database} is owned by {owner}, expected {entry.owner}")


def _jobs_role_check(entry, name: str, jobs: Optional[dict]) -> Check:
    """The container jobs' role: a member of the owner role and of nothing else, with no attribute (docs/jobs.md)."""
    if jobs is None:
        return Check(entry.name, "jobs role", "fail", f"role {name} does not exist on {entry.server_key}")
    problems = [*(jobs.get("attributes") or [])]
    problems += [f"member of {role}" for role in jobs.get("member_of") or [] if role != entry.owner]
    if entry.owner not in (jobs.get("member_of") or []):
        problems.append(f"not a member of {entry.owner}")
    if problems:
        return Check(entry.name, "jobs role", "fail", f"role {name} has {', '.join(problems)}")
    return Check(entry.name, "jobs role", "pass", f"role {name} is a member of {entry.owner} only, with no attributes")


def _owner_role_checks(entry, owner: Optional[dict]) -> list[Check]:
    """The owner role exists, never logs in, and has no attribute or membership that reaches past its database."""
    if owner is None:
        return [Check(entry.name, "owner role", "fail", f"role {entry.owner} does not exist on {entry.server_key}")]
    problems = [*(owner.get("attributes") or []), *(["LOGIN"] if owner["login"] else [])]
    problems += [f"member of {role}" for role in owner.get("member_of") or []]
    if problems:
        return [Check(entry.name, "owner role", "fail", f"role {entry.owner} has {', '.join(problems)}")]
    return [Check(entry.name, "owner role", "pass", f"role {entry.owner} is NOLOGIN, with no attributes or memberships")]


def _shared_databases_check(entry, shared_open: dict[str, list[str]]) -> Check:
    if shared_open:
        opened = "; ".join(f"{', '.join(what)} on {name}" for name, what in sorted(shared_open.items()))
        return Check(entry.name, "shared databases", "fail", f"PUBLIC has {opened} of server {entry.server_key}: every tenant's role can reach them")
    return Check(entry.name, "shared databases", "pass", f"PUBLIC has neither CONNECT nor TEMPORARY on the shared databases of {entry.server_key}")


def _login_checks(inventory, chosen, neighbours, grants: set[tuple[str, str]], workers: int) -> list[Check]:
    """Real logins as each tenant's role: its own database (refused while suspended), then every neighbour's."""
    attempts: list[tuple[Any, Any, Any]] = []  # (tenant, database owner tenant, access)
    checks: list[Check] = []
    for entry in chosen:
        try:
            access = inventory.tenant_access(entry.name)
        except Exception as error:  # noqa: BLE001 - no password: say so for this tenant, go on
            checks.append(Check(entry.name, "login", "fail", str(error)))
            continue
        attempts.append((entry, entry, access))
        attempts.extend((entry, other, access) for other in neighbours if other.name != entry.name)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(lambda attempt: try_login(attempt[2], attempt[1].database), attempts))
    own_login: dict[str, bool] = {}
    for (entry, other, _access), (connected, why) in zip(attempts, outcomes):
        if other is entry:
            own_login[entry.name] = connected
            if entry.active:
                checks.append(
                    Check(
                        entry.name,
                        "login",
                        "pass" if connected else "fail",
                        why if connected else f"role {entry.role} refused on its own database {entry.database}: {why}",
                    )
                )
            else:
                checks.append(
                    Check(
                        entry.name,
                        "login",
                        "fail" if connected else "pass",
                        f"suspended, but role {entry.role} {why}" if connected else f"suspended: login refused ({why})",
                    )
                )
    for (entry, other, _access), (connected, why) in zip(attempts, outcomes):
        if other is entry:
            continue
        granted = (entry.role, other.database) in grants
        if connected or granted:
            how = f"connected to database {other.database}" if connected else f"has CONNECT on database {other.database} (grant)"
            checks.append(Check(entry.name, "isolation", "fail", f"role {entry.role} {how}", target=other.name))
        elif entry.active and not own_login.get(entry.name):
            checks.append(Check(entry.name, "isolation", "skip", "not proven by a login: the role cannot log in at all (see login)", target=other.name))
        else:
            checks.append(Check(entry.name, "isolation", "pass", f"refused on {other.database}: {why}", target=other.name))
    return checks


def proxy_address(listen: str) -> tuple[str, int]:
    """Where to reach a proxy listen address from this machine: `:443` -> (127.0.0.1, 443)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return host, int(port)


def http_status(address: tuple[str, int], hostname: str, path: str, *, https: bool, timeout: float = HTTP_TIMEOUT_SECONDS, insecure: bool = False) -> tuple[int, str]:
    """(status, first line of the body) of GET `path` at the proxy with `hostname` as Host (and SNI for https)."""
    host, port = address
    if https:
        context = ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        connection: http.client.HTTPConnection = _SniHTTPSConnection(host, port, hostname, context, timeout)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": hostname, "User-Agent": "tenant-fleet verify", "Connection": "close"})
        response = connection.getresponse()
        body = response.read(512).decode("utf-8", errors="replace").strip()
        return response.status, body.splitlines()[0] if body else ""
    finally:
        connection.close()


class _SniHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the proxy's address with the tenant's hostname as SNI and certificate name."""

    def __init__(self, host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self._server_name)


def verify_http(inventory, tenants, *, address: Optional[str] = None, insecure: bool = False, workers: int = 8) -> list[Check]:
    """Every hostname of every tenant through the proxy: active tenants answer below 400, suspended ones 503 maintenance."""
    environment = inventory.environment
    if address is None:
        if not environment.manages("proxy") or not environment.proxy.listen:
            return [Check(entry.name, "http", "skip", "this stack does not manage the proxy (pass --proxy ADDRESS to check anyway)") for entry in tenants]
        address = environment.proxy.listen[0]
    where = proxy_address(address)
    https = environment.proxy.automatic_https
    requests = []
    for entry in tenants:
        for hostname in entry.hostnames:
            path = entry.health_paths.get(hostname, "/")
            requests.append((entry, hostname, path))

    def probe(request) -> Check:
        entry, hostname, path = request
        try:
            status, body = http_status(where, hostname, path, https=https, insecure=insecure)
        except (OSError, http.client.HTTPException) as error:
            return Check(entry.name, "http", "fail", f"GET {path} via {where[0]}:{where[1]}: {error}", target=hostname)
        answer = f"GET {path} -> {status}" + (f" {body[:60]}" if body else "")
        if entry.active:
            return Check(entry.name, "http", "pass" if status < 400 else "fail", answer, target=hostname)
        return Check(entry.name, "http", "pass" if status == 503 else "fail", f"suspended: {answer}" + ("" if status == 503 else " (expected 503 maintenance)"), target=hostname)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(probe, requests))


def verify_fleet(
    inventory,
    tenants=None,
    *,
    http: bool = True,
    proxy: Optional[str] = None,
    insecure: bool = False,
    workers: int = 8,
) -> list[Check]:
    """Every check for the chosen tenants (default: all), sorted by tenant; a failed check never stops the others."""
    chosen = inventory.select(tenants)
    checks = verify_databases(inventory, chosen, workers=workers)
    checks.extend(verify_backup_folders(Path(inventory.backups_dir), chosen))
    if http:
        checks.extend(verify_http(inventory, chosen, address=proxy, insecure=insecure, workers=workers))
    order = {name: index for index, name in enumerate(entry.name for entry in chosen)}
    return sorted(checks, key=lambda check: (order.get(check.tenant, 0), check.check, check.target or ""))


def verify_backup_folders(folder: Path, tenants) -> list[Check]:
    """Per tenant: its backups folder and every file in it readable by their owner only (a dump holds its data)."""
    checks = []
    for entry in tenants:
        tenant_folder = folder / entry.name
        if not tenant_folder.is_dir():
            checks.append(Check(entry.name, "backup files", "skip", f"no backups folder {tenant_folder} yet"))
            continue
        exposed = [
            f"{path.relative_to(folder)} ({stat.S_IMODE(path.stat().st_mode):o})"
            for path in [tenant_folder, *sorted(tenant_folder.iterdir())]
            if stat.S_IMODE(path.stat().st_mode) & 0o077
        ]
        checks.append(
            Check(
                entry.name,
                "backup files",
                "fail" if exposed else "pass",
                f"readable by others: {', '.join(exposed[:5])}" + (f" and {len(exposed) - 5} more" if len(exposed) > 5 else "")
                if exposed
                else f"{tenant_folder} and its files are readable by their owner only",
            )
        )
    return checks
