"""`fleet backup` and `fleet restore`.
"""


from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from rich.table import Table

from components.backup import APP_ENV_ENV, PASSWORD_ENV, TARGET_ENV
from fleet.cli.common import (
    FAIL_STYLE,
    add_common_options,
    human_bytes,
    load,
    make_console,
    print_json,
    progress,
)
from fleet.errors import EXIT_FAILED, EXIT_OK, FleetError, InputError
from fleet.ops import backups, env_backup, restore

# ---------------------------------------------------------------- backup


def cmd_backup(args: argparse.Namespace) -> int:
    """Back up tenants (pg_dump -Fc, verified, retention after success); exit 1 when any failed."""

    if args.target_env:
        return _backup_job(args)
    if args.retention_days is not None or args.retention_weeks or args.retention_months:
        raise FleetError("--retention-days/-weeks/-months are for the scheduled job (--target-env); operators' backups use each tenant's retention")
    inventory = load(args)
    names = None if args.all else args.tenant
    tenants = [entry.name for entry in inventory.select(names)]
    show = progress(args.json)
    total = len(tenants)
    position = {name: index for index, name in enumerate(tenants, 1)}

    def started(tenant: str) -> None:
        show(f"[{position[tenant]}/{total}] {tenant}: dumping...")

    def done(result) -> None:
        show(f"[{position[result.tenant]}/{total}] {result.tenant}: {_backup_outcome(result)}")

    def run() -> list:
        return backups.backup_many(inventory, tenants, on_start=started, on_done=done)

    if args.daily_at:
        for _ in backups.run_daily(lambda: _report_backups(run(), args.json, inventory.backups_dir) == EXIT_OK, args.daily_at):
            pass
        return EXIT_OK
    return _report_backups(run(), args.json, inventory.backups_dir)


def _backup_outcome(result) -> str:
    if not result.ok:
        return f"FAILED: {result.error}"
    pruned = f", pruned {len(result.pruned)}" if result.pruned else ""
    return f"ok {human_bytes(result.bytes)}, {result.tables} tables, {result.rows} rows, {result.seconds:.1f} s{pruned}"


def _report_backups(results: list, json_output: bool, folder: Path) -> int:
    failed = [result for result in results if not result.ok]
    if json_output:
        print_json({"dir": str(folder), "ok": not failed, "backups": [result.to_mapping() for result in results]})
    else:
        table = Table(title=f"backups in {folder}", title_justify="left")
        for column in ("tenant", "server", "result", "file", "size", "tables", "rows", "pruned"):
            table.add_column(column, overflow="fold")
        for result in results:
            table.add_row(
                result.tenant,
                result.server,
                "ok" if result.ok else f"[{FAIL_STYLE}]FAILED[/]: {result.error}",
                Path(result.path).name if result.path else "-",
                human_bytes(result.bytes) if result.ok else "-",
                str(result.tables) if result.ok else "-",
                str(result.rows) if result.ok else "-",
                str(len(result.pruned)),
            )
        console = make_console()
        console.print(table)
        console.print(f"{len(results) - len(failed)} of {len(results)} tenant(s) backed up" + (f"; failed: {', '.join(r.tenant for r in failed)}" if failed else "."))
    return EXIT_FAILED if failed else EXIT_OK


def _backup_job(args: argparse.Namespace) -> int:
    """The scheduled job's mode: one tenant, from FLEET_BACKUP_TARGET/FLEET_BACKUP_PASSWORD, no tenant files needed."""

    if not args.dir:
        raise FleetError("--target-env needs --dir (the backup folder)")
    try:
        data = json.loads(os.environ.get(TARGET_ENV, ""))
        target = backups.BackupTarget.from_mapping(data, os.environ.get(PASSWORD_ENV, ""), args.retention_days, args.retention_weeks, args.retention_months)
    except ValueError as error:
        raise FleetError(f"{TARGET_ENV} is not valid: {error}") from None
    except backups.BackupError as error:
        raise FleetError(f"{TARGET_ENV}: {error}") from None
    if target.env_recipient and os.environ.get(APP_ENV_ENV):
        try:
            app_env = {str(service): [str(line) for line in lines] for service, lines in json.loads(os.environ[APP_ENV_ENV]).items()}
        except (ValueError, AttributeError, TypeError):
            raise FleetError(f"{APP_ENV_ENV} is not a JSON object of service -> env lines") from None
        target = dataclasses.replace(target, app_env=app_env)
    if args.tenant and args.tenant != [target.tenant]:
        raise FleetError(f"--tenant {', '.join(args.tenant)} does not match {TARGET_ENV}'s tenant {target.tenant}")
    folder = Path(args.dir)
    show = progress(args.json)

    def run() -> bool:
        show(f"{target.tenant}: dumping...")
        result = backups.backup_one(target, folder)
        show(f"{target.tenant}: {_backup_outcome(result)}")
        return _report_backups([result], args.json, folder) == EXIT_OK

    if args.daily_at:
        for _ in backups.run_daily(run, args.daily_at):
            pass  # a failed night is logged; the job keeps its schedule
        return EXIT_OK
    return EXIT_OK if run() else EXIT_FAILED


# ---------------------------------------------------------------- restore


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a dump into a fresh database (or, confirmed, in place of the live one) and compare row counts."""

    if args.replace and args.into is not None:
        raise InputError("--replace restores into the live database's name; don't combine it with --into")
    dump = Path(getattr(args, "from"))
    if dump.is_dir():
        raise InputError(f"{dump} is a folder, not a dump file: name one of the .dump files in it")
    if not dump.is_file():
        raise InputError(f"{dump}: no such file")
    inventory = load(args)
    entry = inventory.tenant(args.tenant)
    if args.into is not None:
        problem = restore.restore_target_problem(args.into, entry.name, entry.database, (other.database for other in inventory.select()))
        if problem:
            raise InputError(problem)
    if args.replace and not args.yes:
        _confirm_replace(entry)
    show = progress(args.json)
    try:
        result = restore.restore_backup(
            inventory, entry.name, dump, into=args.into, replace=args.replace, force=args.force, on_step=lambda text: show(f"{entry.name}: {text}"),
            volumes=args.volumes,
        )
    except backups.BackupError as error:
        raise FleetError(str(error)) from None
    if args.json:
        print_json(result.to_mapping())
    else:
        console = make_console()
        if result.ok:
            console.print(
                f"restored {dump.name} into database {result.database} on {entry.server_key}: {result.tables} tables, {result.rows} rows, "
                f"row counts equal to the dump's ({result.seconds:.1f} s)"
            )
            if result.replaced:
                console.print(f"the former live database is kept as {result.previous_database} (connections to it are blocked); drop it once you are sure")
            for name, folder in result.volumes.items():
                console.print(f"volume {name} restored into {folder}; the live folder is untouched: swap them while the app is stopped")
        else:
            console.print(f"[{FAIL_STYLE}]restored into {result.database}, but row counts differ from the dump:[/]")
            for line in result.mismatches:
                console.print(f"  - {line}", markup=False)
            if args.replace:
                console.print("the live database was not touched")
    return EXIT_OK if result.ok else EXIT_FAILED


def _confirm_replace(entry) -> None:
    if not sys.stdin.isatty():
        raise FleetError(f"--replace swaps the restored copy in for {entry.name}'s live database {entry.database}; confirm with --yes (no terminal to ask on)")
    print(
        f"This replaces {entry.name}'s live database {entry.database} on {entry.server_key} with the restored copy;\n"
        f"open sessions are ended and the current database is renamed aside (kept). Type the tenant's name to confirm: ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    if sys.stdin.readline().strip() != entry.name:
        raise FleetError("not confirmed; nothing was changed")


# ---------------------------------------------------------------- the app's env in backups


def cmd_backup_key(args: argparse.Namespace) -> int:
    """Make the key pair that backups seal each tenant's app env with: the public key goes into the stack config, the
    private key into a file only the operator keeps (it opens every sealed env)."""
    public, private = env_backup.new_keypair()
    out = Path(args.out)
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"{out} exists; a new key would not open the envs sealed to the old one: choose another file") from None
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(private + "\n")
    print(f"private key written to {out} (0600): keep it offline; it opens every backup's env")
    print(f"add the public key to Pulumi.<stack>.yaml:\n  fleet:backups:\n    env_recipient: {public}")
    return EXIT_OK


def cmd_open_env(args: argparse.Namespace) -> int:
    """Print the app env sealed beside a backup (`<tenant>-<stamp>.env.sealed`), opened with the private key file."""
    sealed = Path(args.file)
    if sealed.suffix == backups.DUMP_SUFFIX:
        sealed = env_backup.env_file_path(sealed)
    try:
        private = Path(args.key).read_text().strip()
    except OSError as error:
        raise InputError(f"cannot read the key file {args.key}: {error.strerror}") from None
    try:
        env = env_backup.open_sealed_env(sealed, private)
    except env_backup.EnvBackupError as error:
        raise FleetError(str(error)) from None
    if args.json:
        print_json({"file": str(sealed), "services": env})
    else:
        for service, lines in env.items():
            print(f"# {service}")
            print("\n".join(lines))
    return EXIT_OK


def register(verbs) -> None:
    """Add the verbs `backup`, `restore`, `backup-key` and `open-env`."""
    backup = verbs.add_parser("backup", help="pg_dump -Fc tenants' databases, verify them, apply retention", description=cmd_backup.__doc__)
    add_common_options(backup)
    which = backup.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", action="append", help="this tenant (repeatable)")
    which.add_argument("--all", action="store_true", help="every tenant of the stack")
    backup.add_argument("--dir", help="backup folder (default: fleet:backups.dir)")
    backup.add_argument("--daily-at", metavar="HH:MM", help="keep running and back up every day at this UTC time")
    backup.add_argument("--target-env", action="store_true", help="scheduled job: connection from $FLEET_BACKUP_TARGET, password from $FLEET_BACKUP_PASSWORD")
    backup.add_argument("--retention-days", type=int, help="scheduled job: days whose every backup is kept (the tenant's retention)")
    backup.add_argument("--retention-weeks", type=int, default=0, help="scheduled job: weeks whose newest backup is kept")
    backup.add_argument("--retention-months", type=int, default=0, help="scheduled job: months whose newest backup is kept")
    backup.set_defaults(handler=cmd_backup)

    restore = verbs.add_parser("restore", help="restore a backup into a fresh database and compare row counts", description=cmd_restore.__doc__)
    add_common_options(restore)
    restore.add_argument("tenant", help="whose backup it is")
    restore.add_argument("--from", required=True, metavar="FILE", help="the .dump file")
    restore.add_argument("--into", metavar="NAME", help="name of the new database (default: <database>_restored_<time>)")
    restore.add_argument("--replace", action="store_true", help="then swap it in for the live database (the live one is renamed aside, kept)")
    restore.add_argument("--yes", action="store_true", help="don't ask to confirm --replace")
    restore.add_argument("--volumes", action="store_true", help="also restore the backup's volume archives, each into a fresh folder beside the live one")
    restore.add_argument("--force", action="store_true", help="restore a dump whose objects belong to neither this tenant's role nor another tenant's")
    restore.set_defaults(handler=cmd_restore)

    key = verbs.add_parser("backup-key", help="make the key pair that seals each tenant's app env in its backups", description=cmd_backup_key.__doc__)
    key.add_argument("--out", required=True, metavar="FILE", help="where the private key goes (created 0600, never overwritten)")
    key.set_defaults(handler=cmd_backup_key)

    opened = verbs.add_parser("open-env", help="show the app env sealed beside a backup", description=cmd_open_env.__doc__)
    opened.add_argument("file", help="the backup's .dump or its .env.sealed")
    opened.add_argument("--key", required=True, metavar="FILE", help="the private key file from `backup-key`")
    opened.add_argument("--json", action="store_true", help="JSON output")
    opened.set_defaults(handler=cmd_open_env)
