"""The offboarding timer: how long an offboarded tenant's data is kept, and the purge proposed once that has passed.

`status: offboarded` with `offboarded_on` starts the plan's `offboarding.retain_days`. After them, the PR
preview proposes the tenant's purge as the reviewed diff to its file; nothing here, or anywhere, purges by
itself. Plain functions over dates: the caller passes `today` (never the wall clock here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Optional

from fleet.model.spec import Plan, TenantSpec

__all__ = ["OffboardingTimer", "offboarding_timer", "purge_proposal", "purge_snippet", "removed_file_proposal"]


@dataclass(frozen=True)
class OffboardingTimer:
    """An offboarded tenant's retention period."""

    tenant: str
    since: date
    """The day it was offboarded (`offboarded_on`)."""
    retain_days: int
    """Its plan's `offboarding.retain_days`."""

    @property
    def ends(self) -> date:
        """The last day its data is kept without a question; from the day after, its purge is proposed."""
        return self.since + timedelta(days=self.retain_days)

    def days_left(self, today: date) -> int:
        """Days until `ends` (0 on that day, negative after it)."""
        return (self.ends - today).days

    def ended(self, today: date) -> bool:
        """Whether the retention period is over (`today` is past `ends`)."""
        return today > self.ends

    def describe(self, today: date) -> str:
        """`kept until 2026-12-30 (12 days left)` or `retention ended on 2026-12-30 (3 days ago): purge proposed`."""
        left = self.days_left(today)
        if left >= 0:
            return f"offboarded {self.since.isoformat()}, kept until {self.ends.isoformat()} ({left} day{'s' if left != 1 else ''} left)"
        return f"offboarded {self.since.isoformat()}, retention ended on {self.ends.isoformat()} ({-left} day{'s' if left != -1 else ''} ago): purge proposed"


def offboarding_timer(tenant: TenantSpec, plan: Plan) -> Optional[OffboardingTimer]:
    """The timer of an offboarded tenant (None for any other status, or once its purge is requested)."""
    if tenant.status != "offboarded" or tenant.offboarded_on is None or tenant.purge is not None:
        return None
    return OffboardingTimer(tenant.name, tenant.offboarded_on, plan.offboarding.retain_days)


def purge_snippet(tenant: str, ends: date) -> str:
    """The YAML to add to the tenant's file: the reviewed request that drops its data after a final backup."""
    return f"purge: {{confirm: {tenant}, reason: \"offboarded; retention ended on {ends.isoformat()}\"}}"


def purge_proposal(timer: OffboardingTimer, today: date, tenants_folder: str = "tenants") -> Optional[str]:
    """What the PR preview says once the retention is over (None before): the exact line to add, never done for you."""
    if not timer.ended(today):
        return None
    return (
        f"⚠ {timer.tenant}: retention ended on {timer.ends.isoformat()} (offboarded {timer.since.isoformat()}, {timer.retain_days} days): "
        f"add `{purge_snippet(timer.tenant, timer.ends)}` to {tenants_folder}/{timer.tenant}.yaml to remove the data "
        "(a final backup is taken and verified first); the fleet never purges by itself"
    )


def removed_file_proposal(timer: OffboardingTimer, today: date, path: str, deleted_in: str) -> Optional[str]:
    """The preview's line for a tenant whose file was removed (its data kept): once the retention from the removal
    is over, how to bring the file back with its purge (None before)."""
    if not timer.ended(today):
        return None
    return (
        f"⚠ {timer.tenant}: retention ended on {timer.ends.isoformat()} (its file was removed on {timer.since.isoformat()} in {deleted_in[:7]}; "
        f"{timer.retain_days} days): restore it with `git show {deleted_in[:12]}^:{path} > {path}`, add "
        f"`{purge_snippet(timer.tenant, timer.ends)}` to it, and open that as a PR to remove the data "
        "(a final backup is taken and verified first); the fleet never purges by itself"
    )
