"""TenantVolume: a tenant's persistent folder on the app host (`<root>/<tenant>/<volume>`), mounted into its backend.

Create makes the folder (0700, owned by the app's uid when given); refresh notices one that is gone; delete
does nothing, so removing a tenant or a volume from its plan keeps its files, as with its database. The folder
never changes under a tenant: a different path is refused rather than switching the app to an empty folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.providers import RESOURCE_NAME_KEY, FleetDynamicResource, failure_context, is_unknown, resource_label

__all__ = ["TenantVolume", "TenantVolumeArgs", "TenantVolumeProvider", "ensure_folder"]

FOLDER_MODE = 0o700
"""Only the owner (the app's uid, or whoever runs `pulumi up`) may enter: a tenant's files are its data."""


def ensure_folder(path: Path, uid: Optional[int]) -> None:
    """Create `path` (and its tenant folder) if missing; make it 0700 and owned by `uid` when given."""
    path.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o711)  # the tenant's folder: enterable, not listable, so one volume doesn't show the others
    path.chmod(FOLDER_MODE)
    if uid is not None and path.stat().st_uid != uid:
        os.chown(path, uid, -1)


@dataclass(frozen=True)
class TenantVolumeArgs:
    """Inputs of TenantVolume."""

    tenant: pulumi.Input[str]
    """Tenant name."""
    volume: pulumi.Input[str]
    """The volume's name in the plan (`uploads`)."""
    path: pulumi.Input[str]
    """Absolute folder on the app host (`fleet:volumes.root`/<tenant>/<volume>)."""
    uid: pulumi.Input[Optional[int]] = None
    """Owner of the folder (the app's uid in its container)."""


class TenantVolumeProvider(ResourceProvider):
    """Makes the folder, keeps its mode and owner, never deletes it."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        path = news.get("path")
        if not is_unknown(path) and (not isinstance(path, str) or not Path(path).is_absolute() or ".." in Path(path).parts):
            failures.append(CheckFailure("path", f"path must be absolute, without '..' (got {path!r})"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in ("path", "uid") if is_unknown(news.get(key))]
        changed += ["path"] if olds.get("path") != news.get("path") else []
        changed += ["uid"] if not is_unknown(news.get("uid")) and _normal(olds.get("uid")) != _normal(news.get("uid")) else []
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._ensure(props, "create")
        return CreateResult(props["path"], outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with failure_context(resource_label("TenantVolume", news), "update"):
            old_path = Path(str(olds.get("path")))
            if olds.get("path") != news.get("path") and old_path.is_dir() and any(old_path.iterdir()):
                raise ValueError(
                    f"the folder would change from {old_path} to {news.get('path')}, but {old_path} holds the tenant's files: "
                    "move them there by hand first (the app would otherwise start on an empty folder)"
                )
        return UpdateResult(self._ensure(news, "update"))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(str(props.get("path")))
        if not path.is_dir():
            return ReadResult("", {})  # gone: the next up makes it again (its files were lost outside the fleet)
        current = dict(props)
        if props.get("uid") is not None and path.stat().st_uid != int(props["uid"]):
            current["uid"] = path.stat().st_uid
        return ReadResult(id_, current)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Deliberately nothing: the files stay (removing a tenant never drops data).
        return None

    @staticmethod
    def _ensure(props: Mapping[str, Any], action: str) -> dict[str, Any]:
        with failure_context(resource_label("TenantVolume", dict(props)), action):
            ensure_folder(Path(props["path"]), _normal(props.get("uid")))
        return {RESOURCE_NAME_KEY: props.get(RESOURCE_NAME_KEY), **{key: props.get(key) for key in ("tenant", "volume", "path")}, "uid": _normal(props.get("uid"))}


def _normal(uid: Any) -> Optional[int]:
    return None if uid is None else int(uid)


class TenantVolume(FleetDynamicResource, module="volume", name="TenantVolume"):
    """A tenant's persistent folder (see the module docstring)."""

    path: pulumi.Output[str]

    def __init__(self, name: str, args: TenantVolumeArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        props = {RESOURCE_NAME_KEY: name, "tenant": args.tenant, "volume": args.volume, "path": args.path, "uid": args.uid}
        super().__init__(TenantVolumeProvider(), name, props, opts)
