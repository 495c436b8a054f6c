"""ServerLockdown: once per PostgreSQL server, PUBLIC loses CONNECT and TEMPORARY on the databases every server has.

Without it any tenant's role can connect to `postgres` and `template1` and create TEMP tables there. What
PostgreSQL shows every role regardless (database and role names, pg_stat_database) is in docs/isolation.md.
"""

from __future__ import annotations

import pulumi
import pulumi_postgresql as postgresql

from fleet.model import derive, privileges, type_tokens
from fleet.model.spec import PostgresServer


class ServerLockdown(pulumi.ComponentResource):
    """A Grant of no privileges to PUBLIC on each of `postgres` and `template1` (fleet.model.privileges.SHARED_DATABASES).

    On a managed server (`superuser: false`) the admin is granted CONNECT first, so the lockdown never locks it
    out; there the revoke works only where the admin owns the database (`fleet verify` says whether it did).
    """

    def __init__(self, key: str, server: PostgresServer, provider: pulumi.ProviderResource, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_tokens.COMPONENT_TYPE.format("ServerLockdown"), derive.server_lockdown_name(key), None, opts)
        on_server = pulumi.ResourceOptions(parent=self, provider=provider, delete_before_replace=True)
        for database in privileges.SHARED_DATABASES:
            admin_first: list[pulumi.Resource] = []
            if not server.superuser:
                admin_first.append(
                    postgresql.Grant(
                        f"{derive.server_lockdown_name(key)}-{database}-admin",
                        database=database,
                        role=server.admin_user,
                        object_type="database",
                        privileges=["CONNECT", "TEMPORARY"],
                        opts=on_server,
                    )
                )
            postgresql.Grant(
                f"{derive.server_lockdown_name(key)}-{database}-revoke-public",
                database=database,
                role="public",
                object_type="database",
                privileges=[],
                opts=pulumi.ResourceOptions.merge(on_server, pulumi.ResourceOptions(depends_on=admin_first)),
            )
        self.register_outputs({})
