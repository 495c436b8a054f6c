"""A tiny component and dynamic resource that tests/e2e/test_engine.py deploys with the real engine.

The provider class lives at module level in an importable module because the engine
stores it pickled in the state and the dynamic-provider shim (pulumi.dynamic, run with
PYTHONPATH=<project root>) unpickles it by importing `tests.e2e.engine_probe`.
Its side effect is a file per resource in `ledger_dir`, so a test can see that
create, update and delete really ran, rather than trusting the engine's summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

# Inputs whose change forces a new resource; every other tracked input updates in place.
IDENTITY_INPUTS = ("label", "ledger_dir")
TRACKED_INPUTS = (*IDENTITY_INPUTS, "size", "password")


def _ledger_file(props: dict[str, Any]) -> Path:
    return Path(props["ledger_dir"]) / f"{props['label']}.json"


class LedgerProvider(ResourceProvider):
    """Writes one JSON file per resource; the password input arrives as a secret and is never written."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        path = _ledger_file(props)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"size": props["size"], "revision": 1}))
        except OSError as exc:
            raise RuntimeError(f"ledger entry {props['label']!r}: create failed: {exc}") from exc
        return CreateResult(id_=f"ledger-{props['label']}", outs={**props, "revision": 1})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in TRACKED_INPUTS if olds.get(key) != news.get(key)]
        replaces = [key for key in IDENTITY_INPUTS if key in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        revision = int(olds.get("revision", 1)) + 1
        _ledger_file(news).write_text(json.dumps({"size": news["size"], "revision": revision}))
        return UpdateResult(outs={**news, "revision": revision})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        # Conservative: only ever removes the one file this resource created.
        _ledger_file(props).unlink(missing_ok=True)


class LedgerEntry(pulumi.dynamic.Resource):
    """A dynamic resource backed by LedgerProvider."""

    size: pulumi.Output[int]
    revision: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        *,
        label: str,
        size: int,
        ledger_dir: str,
        password: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            LedgerProvider(),
            name,
            {
                "label": label,
                "size": size,
                "ledger_dir": ledger_dir,
                "password": password,
                "revision": None,
            },
            opts,
        )


class Probe(pulumi.ComponentResource):
    """A component holding one LedgerEntry, in the shape the project's components use."""

    def __init__(
        self,
        name: str,
        *,
        size: int,
        ledger_dir: str,
        password: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tenant-fleet:test:Probe", name, None, opts)
        self.entry = LedgerEntry(
            f"{name}-entry",
            label=name,
            size=size,
            ledger_dir=ledger_dir,
            password=password,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.size = self.entry.size
        self.register_outputs({"size": self.size})
