"""The data of a preview: resource changes, tenant changes, the whole preview, and one side of it.

Plain dataclasses filled by `diff` and `summary`, read by `render`.
"""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from fleet.model.spec import Fleet
from fleet.model.type_tokens import DATABASE, PASSWORD, ROLE
from fleet.offline.mocks import Evaluation
from fleet.offline.report import short_type

# Data-bearing resources: replacing or deleting one is worth a ⚠ line of its own.
CREATE, UPDATE, REPLACE, DELETE = "create", "update", "replace", "delete"
"""What happens to a resource."""
DATA_TYPES = {DATABASE: "database", ROLE: "role", PASSWORD: "password"}
SYMBOLS = {CREATE: "+", UPDATE: "~", REPLACE: "±", DELETE: "−"}
OP_ORDER = (CREATE, UPDATE, REPLACE, DELETE)


# ---------------------------------------------------------------- the comparison


@dataclass
class ResourceChange:
    """One resource that a deploy would create, update, replace or delete."""

    op: str
    type: str
    name: str
    tenant: Optional[str]
    keys: tuple[str, ...] = ()
    """Inputs that differ (update, replace)."""
    replace_keys: tuple[str, ...] = ()
    """The inputs among `keys` that force the replacement."""
    secret_keys: frozenset[str] = frozenset()
    retained: bool = False
    """A delete the engine skips on the server (retain_on_delete): the data stays."""
    caused_by: tuple[str, ...] = ()
    """Replaced resources whose new outputs (a new password, a new port) change this one's inputs."""
    values: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Old and new value of changed non-secret scalar inputs, for people."""

    @property
    def kind(self) -> str:
        return short_type(self.type)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"op": self.op, "type": self.type, "name": self.name}
        if self.keys:
            doc["inputs"] = list(self.keys)
        if self.replace_keys:
            doc["replace_on"] = list(self.replace_keys)
        if self.caused_by:
            doc["caused_by"] = list(self.caused_by)
        if self.retained:
            doc["retained"] = True
        return doc


@dataclass
class TenantChange:
    """What happens to one tenant: its kind of change, the words for it, its resource changes."""

    tenant: str
    kind: str
    """`added`, `removed`, `purge` or `changed`."""
    words: list[str]
    resources: list[ResourceChange]
    own_file_changed: bool
    plan: Optional[str] = None

    def counts(self) -> dict[str, int]:
        return {op: sum(1 for change in self.resources if change.op == op) for op in OP_ORDER}


@dataclass
class Preview:
    """The tenant-level comparison of a base and a head, with the head's policy verdicts."""

    stack: str
    base_label: str
    tenants: list[TenantChange] = field(default_factory=list)
    shared: list[ResourceChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    violations: Optional[list[Any]] = None
    """The head's policy violations (fleet.offline.policies.Violation); None when the check is unavailable."""
    policy_count: Optional[int] = None
    problems: list[str] = field(default_factory=list)
    """The head's spec problems (then nothing else was compared, exit 2)."""
    base_problems: list[str] = field(default_factory=list)
    """The base could not be read by this code (then no comparison, only the head's verdicts)."""

    @property
    def exit_code(self) -> int:
        """0 clean, 1 a mandatory policy fails, 2 the head's spec is invalid (as `fleet plan`)."""
        if self.problems:
            return 2
        if self.violations and any(getattr(violation, "mandatory", False) for violation in self.violations):
            return 1
        return 0

    def resource_changes(self) -> list[ResourceChange]:
        return [change for tenant in self.tenants for change in tenant.resources] + self.shared


@dataclass
class Side:
    """One side of the comparison: what the program declares, and the validated fleet it came from."""

    evaluation: Evaluation
    fleet: Optional[Fleet]
    """None when the side has no stack config (a new stack: nothing deployed yet)."""
    stack_file: dict[str, Any] = field(default_factory=dict)
    """The raw `config:` of Pulumi.<stack>.yaml, to tell which keys (secret ones too) changed."""
