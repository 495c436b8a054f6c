"""Kubeconfigs handed to one run through the environment variable FLEET_KUBECONFIGS (a CI secret).

`{"<kubernetes host key>": "<kubeconfig>"}`: each entry counts as the secret `fleet:kubeconfigs.<key>` for
this run only. The engine driver sets them on the run's scratch copy of the stack file (fleet.engine.kubeconfigs);
the stack file in the repository is never written, so a tenant stack's fingerprint doesn't change with them.
Values are never printed: problems name the variable and the key only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Optional

from fleet.errors import Problem, SpecError
from fleet.model.spec import SECRET_PLACEHOLDER, invalid_app_host_keys

KUBECONFIGS_ENV = "FLEET_KUBECONFIGS"


def kubeconfigs_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The kubeconfigs in $FLEET_KUBECONFIGS ({} when unset or blank); SpecError listing every problem."""
    text = (os.environ if environ is None else environ).get(KUBECONFIGS_ENV, "").strip()
    if not text:
        return {}
    try:
        data: Any = json.loads(text)
    except ValueError as error:
        # The message names where parsing stopped, never the text around it (it is a credential).
        position = f" at character {error.pos}" if isinstance(error, json.JSONDecodeError) else ""
        raise SpecError([Problem(KUBECONFIGS_ENV, None, "", f'is not JSON{position}; expected {{"<kubernetes host key>": "<kubeconfig>"}}')]) from None
    if not isinstance(data, dict):
        raise SpecError([Problem(KUBECONFIGS_ENV, None, "", f'must be a JSON object {{"<kubernetes host key>": "<kubeconfig>"}}, not a {type(data).__name__}')])
    problems = []
    bad_keys = set(invalid_app_host_keys(data))
    for key, value in data.items():
        if key in bad_keys:
            problems.append(Problem(KUBECONFIGS_ENV, None, repr(key), "keys are keys of fleet:kubernetes_hosts (DNS labels other than 'default')"))
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(KUBECONFIGS_ENV, None, repr(key), "must be the kubeconfig's text (a non-empty string)"))
    if problems:
        raise SpecError(problems)
    return dict(data)


def with_env_kubeconfigs(config: dict[str, Any], environ: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """`config` (a stack file's `fleet:` values, secrets as placeholders) with the keys of $FLEET_KUBECONFIGS added
    to `kubeconfigs` as placeholders, so validation sees which clusters have one, as the program will."""
    extra = kubeconfigs_from_env(environ)
    if not extra:
        return config
    present = config.get("kubeconfigs")
    merged = dict(present) if isinstance(present, dict) else {}
    merged.update(dict.fromkeys(extra, SECRET_PLACEHOLDER))
    return {**config, "kubeconfigs": merged}
