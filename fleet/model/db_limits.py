"""Noisy-neighbour limits of a tenant's database: the per-role settings and the database's connection limit.

One place derives them from the plan (`database_limits`) and the tenant's `overrides.database`; the
component declares them, the policies bound them, `fleet verify` compares the live server with them and
the tests apply exactly these values (fleet.postgres.role_settings). Plain functions, no Pulumi, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.model.spec import DatabaseLimits, Plan, TenantSpec

JOBS_CONNECTIONS = 2
"""Connection limit of the container jobs' role (components/database.py)."""
OPERATIONS_CONNECTIONS = 2
"""Connections a tenant database keeps beyond its roles' limits, for a non-superuser admin's backup or check
(a superuser is not subject to a database's connection limit)."""

TIMEOUT_SETTINGS = ("statement_timeout", "idle_in_transaction_session_timeout")
"""Settings the official Role resource declares itself (its `statement_timeout`, `idle_in_transaction_session_timeout`)."""
MEMORY_SETTINGS = ("work_mem", "temp_file_limit")
"""Settings the official Role can't declare: the project's RoleSettings resource applies them."""


@dataclass(frozen=True)
class RoleLimits:
    """The limits of one login role, in the units PostgreSQL stores them (ms, kB)."""

    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    work_mem_kb: int
    temp_file_limit_kb: int

    def settings(self) -> dict[str, str]:
        """`ALTER ROLE ... SET name = value` pairs, as `pg_db_role_setting` shows them back (units PostgreSQL prints)."""
        return {
            "statement_timeout": f"{self.statement_timeout_ms}",
            "idle_in_transaction_session_timeout": f"{self.idle_in_transaction_timeout_ms}",
            "work_mem": f"{self.work_mem_kb}kB",
            "temp_file_limit": f"{self.temp_file_limit_kb}kB",
        }

    def memory_settings(self) -> dict[str, str]:
        """The part of `settings()` the RoleSettings resource applies."""
        return {name: value for name, value in self.settings().items() if name in MEMORY_SETTINGS}


def database_limits(tenant: TenantSpec, plan: Plan) -> DatabaseLimits:
    """The plan's `database_limits` with the tenant's `overrides.database` on top (validated within `max.database`)."""
    override = tenant.overrides.database
    if override is None:
        return plan.database_limits
    changes = {field: value for field, value in override.model_dump().items() if value is not None}
    return plan.database_limits.model_copy(update=changes)


def database_limit_bounds(plan: Plan) -> DatabaseLimits:
    """How far a tenant's `overrides.database` may go: `max.database`, else the plan's own values."""
    return (plan.max.database if plan.max is not None else None) or plan.database_limits


def app_role_limits(tenant: TenantSpec, plan: Plan) -> RoleLimits:
    """The app's login role: every query bounded by the plan's statement timeout."""
    limits = database_limits(tenant, plan)
    return _role_limits(limits, limits.statement_timeout_s)


def jobs_role_limits(tenant: TenantSpec, plan: Plan) -> RoleLimits:
    """The container jobs' role: the app's limits, with the longer statement timeout migrations need."""
    limits = database_limits(tenant, plan)
    return _role_limits(limits, limits.jobs_statement_timeout_s)


def _role_limits(limits: DatabaseLimits, statement_timeout_s: int) -> RoleLimits:
    return RoleLimits(
        statement_timeout_ms=statement_timeout_s * 1000,
        idle_in_transaction_timeout_ms=limits.idle_in_transaction_timeout_s * 1000,
        work_mem_kb=limits.work_mem_mb * 1024,
        temp_file_limit_kb=limits.temp_file_limit_mb * 1024,
    )


def database_connection_limit(tenant: TenantSpec, plan: Plan, *, jobs: bool) -> int:
    """The database's own CONNECTION LIMIT: its app role's, its jobs role's, and a few for operations.

    A second bound beside the roles' limits: no role added by hand can take the server's connections through it.
    """
    return plan.db_connections + (JOBS_CONNECTIONS if jobs else 0) + OPERATIONS_CONNECTIONS
