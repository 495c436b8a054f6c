"""The one error base of tenant-fleet, the spec's problem list, and the exit codes.

Every expected failure derives from `FleetError`; `python -m fleet` prints it as `Error: ...` (no traceback)
and exits with its `exit_code`. A `SpecError` lists every problem of the YAML at once, each naming the file,
the tenant and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

EXIT_OK = 0
"""Done."""
EXIT_FAILED = 1
"""The operation failed (for `plan`: a mandatory policy fails)."""
EXIT_INVALID = 2
"""The spec or the command line is invalid; nothing was declared."""
EXIT_NOT_DEPLOYED = 3
"""Nothing deployed because provider plugins are missing; the offline plan was shown instead."""


class FleetError(Exception):
    """An expected failure the user can fix; `main` prints it as `Error: ...` and exits with `exit_code`."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is and what is wrong."""

    file: str
    tenant: Optional[str]
    field: str
    message: str

    def __str__(self) -> str:
        who = f" tenant {self.tenant}:" if self.tenant else ""
        where = f" {self.field}:" if self.field else ""
        return f"{self.file}:{who}{where} {self.message}"


class SpecError(FleetError):
    """The spec is invalid; carries every problem found."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in the fleet spec:\n{lines}")


class InputError(FleetError):
    """A command-line argument or an input file is unusable (unreadable, malformed, out of range)."""

    exit_code = EXIT_INVALID
