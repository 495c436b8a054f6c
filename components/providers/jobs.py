"""JobOutcome: fails a tenant's `up` when one of its container jobs exited non-zero, with the tail of its output.

The official docker provider runs the job (`attach`: it waits for the end) and reports `exit_code` and
`container_logs`; this resource reads them, so a failing job names the tenant and the job, and the app's
containers, which depend on it, are not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.providers import RESOURCE_NAME_KEY, FleetDynamicResource, failure_context, resource_label

__all__ = ["JobOutcome", "JobOutcomeArgs", "JobOutcomeProvider", "TAIL_LINES"]

TAIL_LINES = 20


@dataclass(frozen=True)
class JobOutcomeArgs:
    """Inputs of JobOutcome."""

    tenant: str
    job: str
    exit_code: pulumi.Input[Optional[int]]
    """The job container's exit code."""
    output: pulumi.Input[Optional[str]]
    """Its output (secret: it may print credentials)."""


class JobOutcomeProvider(ResourceProvider):
    """Create and update fail on a non-zero exit code; nothing else."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = any(olds.get(key) != news.get(key) for key in ("exit_code", "output"))
        return DiffResult(changes=changed, replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['tenant']}:{props['job']}", self._judge(props, "create"))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._judge(news, "update"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None

    @staticmethod
    def _judge(props: dict[str, Any], action: str) -> dict[str, Any]:
        with failure_context(resource_label("JobOutcome", props), f"{action} (tenant {props.get('tenant')}, job {props.get('job')})"):
            code = props.get("exit_code")
            if code not in (0, 0.0, None):
                lines = str(props.get("output") or "").rstrip().splitlines()[-TAIL_LINES:]
                tail = "\n".join(lines) or "(no output)"
                raise RuntimeError(f"job {props['job']} of tenant {props['tenant']} exited {int(code)}; its last {len(lines)} line(s):\n{tail}")
        return dict(props)


class JobOutcome(FleetDynamicResource, module="jobs", name="JobOutcome"):
    """Whether a tenant's container job succeeded (see the module docstring)."""

    def __init__(self, name: str, args: JobOutcomeArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {
            RESOURCE_NAME_KEY: name,
            "tenant": args.tenant,
            "job": args.job,
            "exit_code": args.exit_code,
            "output": pulumi.Output.secret(args.output),
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["output"]))
        super().__init__(JobOutcomeProvider(), name, props, opts)
