"""`fleet admin-credentials`: a tenant's first admin login and one-time password, from the deployed stack, shown once.

The password is a secret output of the stack (`admin_credentials`), so only whoever can decrypt the stack reads it.
Showing it records a stack tag; a second showing needs `again` (and says when it was first shown). Bump the
tenant's `admin.rotation` for a new password.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from fleet.engine import driver as engine
from fleet.errors import FleetError
from fleet.program import ADMIN_CREDENTIALS_OUTPUT

SHOWN_TAG = "fleet-admin-shown-{tenant}"
"""Stack tag holding when a tenant's admin password was shown (UTC)."""


def admin_credentials(
    stack: str, root: Path, tenant: str, *, again: bool = False, backend_dir: Optional[str | os.PathLike[str]] = None, passphrase: Optional[str] = None
) -> dict[str, str]:
    """{email, password} of a tenant's first admin; raises FleetError when absent or already shown (unless `again`)."""
    scratch = tempfile.mkdtemp(prefix=f"tenant-fleet-admin-{stack}-")
    try:
        stack_file = Path(root) / f"Pulumi.{stack}.yaml"
        if stack_file.exists():
            shutil.copy(stack_file, Path(scratch) / stack_file.name)
        try:
            # Select only: reading credentials must never create a stack.
            workspace_stack = engine.stack_for(stack, lambda: None, work_dir=scratch, backend_dir=backend_dir, passphrase=passphrase, create=False)
            outputs = workspace_stack.outputs()
            tag = SHOWN_TAG.format(tenant=tenant)
            shown = workspace_stack.workspace.list_tags(stack).get(tag)
        except (engine.EngineMissing, engine.EngineError) as error:
            raise FleetError(f"cannot read stack {stack} through the engine: {error}") from None
        admins = outputs[ADMIN_CREDENTIALS_OUTPUT].value if ADMIN_CREDENTIALS_OUTPUT in outputs else {}
        if tenant not in (admins or {}):
            raise FleetError(f"stack {stack} has no first admin for {tenant} (its plan needs first_admin:, and an up must have run)")
        if shown and not again:
            raise FleetError(f"{tenant}'s admin password was shown already ({shown}); add --again to show it once more, or bump admin.rotation for a new one")
        workspace_stack.workspace.set_tag(stack, tag, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return {"email": str(admins[tenant]["email"]), "password": str(admins[tenant]["password"])}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
