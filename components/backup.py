"""ScheduledBackup: a container per active tenant that runs `python -m fleet backup` every day.

It runs the pinned ops image as the tenant's own role (it can read its tenant's database and nothing
else), with the plan's retention, into the backups folder the program resolved. docs/architecture.md
("Scheduled backup") says why a suspended tenant has none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

import pulumi
import pulumi_docker as docker

from fleet.model import derive, type_tokens
from fleet.model.derive import next_run
from fleet.model.spec import Environment, Plan, TenantSpec

TARGET_ENV = "FLEET_BACKUP_TARGET"
PASSWORD_ENV = "FLEET_BACKUP_PASSWORD"
APP_ENV_ENV = "FLEET_BACKUP_APP_ENV"
"""The tenant's app env (JSON: service -> lines) that the job seals beside each dump (`fleet:backups.env_recipient`)."""
CONTAINER_BACKUP_DIR = "/backups"
DEFAULT_SCHEDULE = "02:00"
MEMORY_MB = 256
"""Memory limit of a backup job (pg_dump streams; it needs little)."""
CPUS = "0.25"
"""CPU limit of a backup job (Docker's `cpus`): a nightly dump must not starve the tenants' apps."""


CONTAINER_VOLUMES_DIR = "/volumes"
"""Where a job sees the tenant's volume folders (read-only), to archive them beside each dump."""


def backup_target(tenant: TenantSpec, environment: Environment, plan: Optional[Plan] = None) -> dict[str, object]:
    """What the job connects to (no secret): the tenant's database, as its role, at the address containers use;
    and its volumes as the job's container sees them (only when its plan has any, so other jobs are unchanged)."""
    server = environment.servers[tenant.database.server]
    target: dict[str, object] = {
        "tenant": tenant.name,
        "server": tenant.database.server,
        "host": server.app_host or server.host,
        "port": server.port,
        "sslmode": server.sslmode,
        "user": derive.role_name(tenant),
        "database": derive.database_name(tenant),
    }
    volumes = derive.volume_folders(tenant, plan, environment) if plan is not None else {}
    if volumes:
        target["volumes"] = {name: f"{CONTAINER_VOLUMES_DIR}/{name}" for name in volumes}
    if environment.backups.env_recipient:  # only then, so other stacks' jobs are unchanged
        target["env_recipient"] = environment.backups.env_recipient
    return target


def backup_command(tenant: TenantSpec, plan: Plan, schedule: str) -> list[str]:
    """The job's command line: the fleet CLI's backup verb, daily, with the tenant's retention tiers.

    The weekly and monthly flags appear only when set, so a fleet without them keeps its jobs' command (a
    changed command replaces the job's container)."""
    tiers = derive.retention(tenant, plan)
    return [
        "python", "-m", "fleet", "backup",
        "--tenant", tenant.name,
        "--target-env",
        "--dir", CONTAINER_BACKUP_DIR,
        "--retention-days", str(tiers.daily),
        *(["--retention-weeks", str(tiers.weekly)] if tiers.weekly else []),
        *(["--retention-months", str(tiers.monthly)] if tiers.monthly else []),
        "--daily-at", schedule,
    ]


@dataclass(frozen=True)
class ScheduledBackupArgs:
    """Inputs of ScheduledBackup."""

    tenant: TenantSpec
    """The tenant whose database is backed up."""
    plan: Plan
    """Its plan (backup_retention_days)."""
    environment: Environment
    """The stack's environment (server address, backup folder)."""
    provider: pulumi.ProviderResource
    """The docker provider of the host that runs the job."""
    password: pulumi.Input[str]
    """The tenant role's password (TenantDatabase.password, a secret)."""
    image: str
    """The pinned ops image (`fleet:images.ops`), e.g. `ghcr.io/acme/tenant-fleet-ops:1.4.0`."""
    backup_dir: str
    """Absolute backups folder on the Docker host, mounted at /backups (the program resolves `fleet:backups.dir`)."""
    schedule: str = DEFAULT_SCHEDULE
    """Daily time (UTC, HH:MM) of the backup (`fleet:backups.schedule`)."""
    app_env: Optional[Mapping[str, pulumi.Input[list[str]]]] = None
    """The tenant's app env per service (TenantApp.env), sealed beside each dump; None: backups carry no env."""


class ScheduledBackup(pulumi.ComponentResource):
    """A tenant's daily backup job; no container while the tenant is suspended."""

    container: Optional[docker.Container]

    def __init__(self, name: str, args: ScheduledBackupArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(type_tokens.COMPONENT_TYPE.format("ScheduledBackup"), name, None, opts)
        tenant, plan, environment = args.tenant, args.plan, args.environment
        if ":" not in args.image or args.image.endswith(":latest"):
            raise ValueError(f"ops image {args.image!r} must be pinned (a version tag or a digest, never latest)")
        next_run(datetime.now(timezone.utc), args.schedule)  # refuses a bad HH:MM now, not in the job's log
        self.container = None
        if tenant.status == "active":
            target = json.dumps(backup_target(tenant, environment, plan), sort_keys=True)
            volumes = derive.volume_folders(tenant, plan, environment)
            app_env = pulumi.Output.from_input(dict(args.app_env) if args.app_env is not None else None)
            envs = pulumi.Output.all(args.password, app_env).apply(
                lambda values: sorted(
                    [f"{TARGET_ENV}={target}", f"{PASSWORD_ENV}={values[0]}"]
                    + ([f"{APP_ENV_ENV}={json.dumps(values[1], sort_keys=True)}"] if values[1] is not None else [])
                )
            )
            secret_envs: pulumi.Output[list[str]] = pulumi.Output.secret(envs)  # annotated: mypy can't infer secret()'s type from an Output
            labels = {**derive.labels(tenant, "backend"), "component": "backup"}
            self.container = docker.Container(
                derive.names(tenant).backup_job,
                image=args.image,
                command=backup_command(tenant, plan, args.schedule),
                envs=secret_envs,
                labels=[docker.ContainerLabelArgs(label=key, value=value) for key, value in labels.items()],
                # Only this tenant's folder: a job can read its own backups and no neighbour's.
                mounts=[
                    docker.ContainerMountArgs(type="bind", source=f"{args.backup_dir}/{tenant.name}", target=f"{CONTAINER_BACKUP_DIR}/{tenant.name}"),
                    *(
                        docker.ContainerMountArgs(type="bind", source=folder, target=f"{CONTAINER_VOLUMES_DIR}/{name}", read_only=True)
                        for name, folder in volumes.items()
                    ),
                ],
                memory=MEMORY_MB,
                memory_swap=MEMORY_MB,
                cpus=CPUS,
                restart="unless-stopped",
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
        self.register_outputs({})
