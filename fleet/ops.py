"""`verify` and `status` against the live servers: is every tenant isolated and healthy, and how full is it.

Both read the fleet through `fleet.inventory` (names from fleet.derive, passwords from a SecretSource)
and talk to the real servers: PostgreSQL as the admin and as each tenant's role, the proxy over HTTP
with each tenant hostname as the Host header, Docker through its Engine API.

`verify_fleet` returns one `Check` per fact (pass, fail or skip), each naming the tenant, the check
and, for pairs, the other tenant or the hostname, so a failure reads
`santarita: isolation gurupi: role tenant_santarita_app connected to database tenant_gurupi`.
`fleet_status` returns one `TenantStatus` per tenant with the figures the server reports and flags
for anything at or above 80 % of a limit.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Optional

from fleet import derive
from fleet.backup import Clock, newest_backup, utc_now

Outcome = Literal["pass", "fail", "skip"]
FLAG_THRESHOLD = 0.8
"""A tenant is flagged when a figure reaches this share of its limit."""
BACKUP_STALE_HOURS = 26
"""A newest backup older than this (a daily job plus slack) is flagged."""
HTTP_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5


# ---------------------------------------------------------------- verify


@dataclass(frozen=True)
class Check:
    """One verified fact about one tenant."""

    tenant: str
    check: str
    """`login`, `isolation`, `public connect`, `public temporary`, `connection limit`, `owner`, `http`."""
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


def _connect(access, database: str):
    import psycopg

    return psycopg.connect(access.dsn(database, with_password=True, connect_timeout=CONNECT_TIMEOUT_SECONDS), autocommit=True)


def try_login(access, database: str) -> tuple[bool, str]:
    """(connected, why not): log in to `database` with `access`'s user and password, and leave at once."""
    import psycopg

    try:
        with _connect(access, database) as connection:
            user, db = connection.execute("select current_user, current_database()").fetchone()
        return True, f"connected as {user} to {db}"
    except psycopg.Error as error:
        return False, _server_message(error)


def _server_message(error: Exception) -> str:
    """The server's own reason (`permission denied for database "x"`), without libpq's preamble and DETAIL."""
    text = str(error).strip()
    if "FATAL:" in text:
        text = text.split("FATAL:", 1)[1]
    return " ".join(text.split("DETAIL:", 1)[0].split())


def _database_facts(access, tenants) -> tuple[dict[str, dict], dict[str, dict], set[tuple[str, str]]]:
    """(databases by name, roles by name, (role, database) pairs with CONNECT) for the tenants of one server."""
    databases = [entry.database for entry in tenants]
    roles = [entry.role for entry in tenants]
    with access.connect() as connection:
        database_rows = connection.execute(
            """
            select d.datname, pg_get_userbyid(d.datdba),
                   has_database_privilege('public', d.oid, 'CONNECT'), has_database_privilege('public', d.oid, 'TEMPORARY')
            from pg_database d where d.datname = any(%s)
            """,
            [databases],
        ).fetchall()
        role_rows = connection.execute(
            "select rolname, rolconnlimit, rolcanlogin from pg_roles where rolname = any(%s)", [roles]
        ).fetchall()
        grants = connection.execute(
            """
            select r.rolname, d.datname from pg_roles r cross join pg_database d
            where r.rolname = any(%s) and d.datname = any(%s) and has_database_privilege(r.oid, d.oid, 'CONNECT')
            """,
            [roles, databases],
        ).fetchall()
    by_database = {name: {"owner": owner, "public_connect": connect, "public_temporary": temporary} for name, owner, connect, temporary in database_rows}
    by_role = {name: {"connection_limit": limit, "login": login} for name, limit, login in role_rows}
    return by_database, by_role, {(role, database) for role, database in grants}


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
        except Exception as error:  # noqa: BLE001 - a server we can't read fails its tenants, not the run
            checks.extend(Check(entry.name, "server", "fail", f"cannot read server {server_key}: {error}") for entry in chosen)
            continue
        for entry in chosen:
            checks.extend(_catalog_checks(entry, databases, roles))
        checks.extend(_login_checks(inventory, chosen, neighbours, grants, workers))
    return checks


def _catalog_checks(entry, databases: dict[str, dict], roles: dict[str, dict]) -> list[Check]:
    checks = []
    database, role = databases.get(entry.database), roles.get(entry.role)
    if database is None:
        return [Check(entry.name, "database", "fail", f"database {entry.database} does not exist on {entry.server_key}")]
    if role is None:
        return [Check(entry.name, "role", "fail", f"role {entry.role} does not exist on {entry.server_key}")]
    owner_ok = database["owner"] == entry.role
    checks.append(Check(entry.name, "owner", "pass" if owner_ok else "fail", f"database {entry.database} is owned by {database['owner']}" + ("" if owner_ok else f", expected {entry.role}")))
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
    if role["login"] != entry.active:
        checks.append(Check(entry.name, "role login", "fail", f"role {entry.role} has {'LOGIN' if role['login'] else 'NOLOGIN'} but the tenant is {entry.spec.status}"))
    return checks


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
                checks.append(Check(entry.name, "login", "pass" if connected else "fail", why if connected else f"role {entry.role} refused on its own database {entry.database}: {why}"))
            else:
                checks.append(Check(entry.name, "login", "fail" if connected else "pass", f"suspended, but role {entry.role} {why}" if connected else f"suspended: login refused ({why})"))
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
            path = environment.images.health_path if hostname == entry.api_hostname else "/"
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
    if http:
        checks.extend(verify_http(inventory, chosen, address=proxy, insecure=insecure, workers=workers))
    order = {name: index for index, name in enumerate(entry.name for entry in chosen)}
    return sorted(checks, key=lambda check: (order.get(check.tenant, 0), check.check, check.target or ""))


# ---------------------------------------------------------------- status


@dataclass
class TenantStatus:
    """One tenant's figures, as the servers report them."""

    tenant: str
    plan: str
    status: str
    server: str
    database: str
    size_bytes: Optional[int] = None
    connections: Optional[int] = None
    """Sessions of the tenant's role (what its connection limit counts)."""
    connection_limit: Optional[int] = None
    """The role's limit on the server (-1: none)."""
    planned_limit: int = 0
    containers: str = "-"
    """`running 2/2`, `none (suspended)`, `unknown (...)`, or `-` when this stack has no app layer."""
    newest_backup: Optional[str] = None
    backup_age_hours: Optional[float] = None
    flags: list[str] = field(default_factory=list)
    error: Optional[str] = None

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ServerStatus:
    """One server's connections against its max_connections."""

    server: str
    connections: Optional[int] = None
    max_connections: Optional[int] = None
    flags: list[str] = field(default_factory=list)
    error: Optional[str] = None

    def to_mapping(self) -> dict[str, Any]:
        return asdict(self)


def _share_flag(label: str, used: Optional[int], limit: Optional[int]) -> Optional[str]:
    if used is None or limit is None or limit <= 0:
        return None
    share = used / limit
    return f"{label} {used}/{limit} ({share:.0%})" if share >= FLAG_THRESHOLD else None


def _server_figures(access, tenants) -> tuple[dict[str, int], dict[str, int], dict[str, int], int, int]:
    """(database sizes, sessions per role, role limits, all client sessions, max_connections) of one server."""
    with access.connect() as connection:
        sizes = dict(connection.execute("select datname, pg_database_size(oid) from pg_database where datname = any(%s)", [[t.database for t in tenants]]).fetchall())
        sessions = dict(
            connection.execute(
                "select usename, count(*) from pg_stat_activity where usename = any(%s) and backend_type = 'client backend' group by usename",
                [[t.role for t in tenants]],
            ).fetchall()
        )
        limits = dict(connection.execute("select rolname, rolconnlimit from pg_roles where rolname = any(%s)", [[t.role for t in tenants]]).fetchall())
        total = connection.execute("select count(*) from pg_stat_activity where backend_type = 'client backend'").fetchone()[0]
        max_connections = int(connection.execute("show max_connections").fetchone()[0])
    return sizes, sessions, limits, int(total), max_connections


def fleet_status(
    inventory,
    tenants=None,
    *,
    clock: Clock = utc_now,
    containers: Optional[Callable[[], list[dict]]] = None,
) -> tuple[list[TenantStatus], list[ServerStatus]]:
    """Figures per tenant and per server; a server or Docker that can't be read shows as an error, not a crash."""
    chosen = inventory.select(tenants)
    now = clock()
    rows = {entry.name: TenantStatus(entry.name, entry.plan_name, entry.spec.status, entry.server_key, entry.database, planned_limit=entry.connection_limit) for entry in chosen}
    servers: list[ServerStatus] = []
    by_server: dict[str, list] = {}
    for entry in chosen:
        by_server.setdefault(entry.server_key, []).append(entry)
    for server_key, entries in sorted(by_server.items()):
        server_row = ServerStatus(server_key)
        servers.append(server_row)
        try:
            sizes, sessions, limits, total, max_connections = _server_figures(inventory.admin_access(server_key), entries)
        except Exception as error:  # noqa: BLE001
            server_row.error = str(error)
            for entry in entries:
                rows[entry.name].error = f"server {server_key}: {error}"
            continue
        server_row.connections, server_row.max_connections = total, max_connections
        flag = _share_flag("connections", total, max_connections)
        if flag:
            server_row.flags.append(flag)
        for entry in entries:
            row = rows[entry.name]
            row.size_bytes = sizes.get(entry.database)
            row.connections = int(sessions.get(entry.role, 0))
            row.connection_limit = limits.get(entry.role)
            if row.size_bytes is None:
                row.error = f"database {entry.database} not found on {server_key}"
            flag = _share_flag("connections", row.connections, row.connection_limit)
            if flag:
                row.flags.append(flag)

    if inventory.environment.manages("app"):
        _container_states(inventory, chosen, rows, containers)

    for entry in chosen:
        row = rows[entry.name]
        backup = newest_backup(inventory.backups_dir, entry.name)
        if backup is None:
            row.flags.append("no backup")
            continue
        row.newest_backup = backup.path.name
        row.backup_age_hours = round(backup.age(now).total_seconds() / 3600, 1)
        if row.backup_age_hours > BACKUP_STALE_HOURS:
            row.flags.append(f"backup {row.backup_age_hours:.0f}h old")
    return [rows[entry.name] for entry in chosen], servers


def _container_states(inventory, chosen, rows: dict[str, TenantStatus], containers: Optional[Callable[[], list[dict]]]) -> None:
    try:
        listed = containers() if containers is not None else docker_containers(inventory.environment.docker_host.url)
    except Exception as error:  # noqa: BLE001 - no Docker here: say so in the column
        for entry in chosen:
            rows[entry.name].containers = f"unknown ({_one_line(error)})"
        return
    for entry in chosen:
        expected = sum(derive.replica_count(entry.plan, entry.spec, role) for role in derive.APP_ROLES)
        mine = [c for c in listed if (c.get("Labels") or {}).get("tenant") == entry.name and (c.get("Labels") or {}).get("component") in derive.APP_ROLES]
        running = sum(1 for c in mine if c.get("State") == "running")
        other = sorted({c.get("State", "?") for c in mine if c.get("State") != "running"})
        if expected == 0 and not mine:
            text = "none (suspended)"
        else:
            text = f"running {running}/{expected}" + (f", {', '.join(other)}" if other else "")
        rows[entry.name].containers = text
        if running < expected:
            rows[entry.name].flags.append(f"containers {running}/{expected} running")


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:80]


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def docker_containers(url: str, *, timeout: float = 5.0) -> list[dict]:
    """The fleet's containers (label managed-by=tenant-fleet), from the Docker Engine API at `url` (unix:// or tcp://)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "unix":
        connection: http.client.HTTPConnection = _UnixHTTPConnection(parsed.path, timeout)
    elif parsed.scheme in ("tcp", "http"):
        connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 2375, timeout=timeout)
    else:
        raise ValueError(f"docker host {url!r}: only unix:// and tcp:// are supported here")
    filters = urllib.parse.quote(json.dumps({"label": ["managed-by=tenant-fleet"]}))
    try:
        connection.request("GET", f"/containers/json?all=1&filters={filters}")
        response = connection.getresponse()
        body = response.read()
    except OSError as error:
        raise ConnectionError(f"no Docker at {url}: {error.strerror or error}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"docker API answered {response.status}: {body[:200].decode(errors='replace')}")
    return json.loads(body)

