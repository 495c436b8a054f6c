"""How the offline plan shows a Kubernetes object on one line: where it is, and what it runs or bounds."""

from __future__ import annotations

from typing import Any

from fleet.model import type_tokens


def _pod(inputs: dict[str, Any]) -> dict[str, Any]:
    return ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}


def kubernetes_inputs(type_: str, inputs: dict[str, Any]) -> str:
    """`ns=tenant-gurupi name=backend replicas=1 image=... cpu=500m memory=512Mi` and the like (secrets are already redacted)."""
    metadata = inputs.get("metadata") or {}
    spec = inputs.get("spec") or {}
    parts = [f"ns={metadata['namespace']}"] if metadata.get("namespace") else []
    if metadata.get("name"):
        parts.append(f"name={metadata['name']}")
    if type_ == type_tokens.KUBE_NAMESPACE:
        parts.append("labels=" + ",".join(f"{key}={value}" for key, value in sorted((metadata.get("labels") or {}).items())))
    elif type_ == type_tokens.KUBE_QUOTA:
        parts.append("hard=" + ",".join(f"{key}={value}" for key, value in sorted((spec.get("hard") or {}).items())))
    elif type_ == type_tokens.KUBE_LIMIT_RANGE:
        for limit in spec.get("limits") or []:
            parts.append("max=" + ",".join(f"{key}={value}" for key, value in sorted((limit.get("max") or {}).items())))
    elif type_ in (type_tokens.KUBE_DEPLOYMENT, type_tokens.KUBE_JOB):
        if "replicas" in spec:
            parts.append(f"replicas={spec['replicas']}")
        for container in _pod(inputs).get("containers") or []:
            limits = (container.get("resources") or {}).get("limits") or {}
            parts.append(f"image={container.get('image')} cpu={limits.get('cpu')} memory={limits.get('memory')}")
            probe = (container.get("readinessProbe") or {}).get("httpGet")
            if probe:
                parts.append(f"ready={probe.get('path')}:{probe.get('port')}")
    elif type_ == type_tokens.KUBE_SERVICE:
        parts.append("ports=" + ",".join(str(port.get("port")) for port in spec.get("ports") or []))
    elif type_ == type_tokens.KUBE_NETWORK_POLICY:
        sources = [rule for entry in spec.get("ingress") or [] for rule in entry.get("from") or []]
        parts.append("from=" + ",".join("namespace" if source == {"podSelector": {}} else str(next(iter(source.values()))) for source in sources))
    elif type_ == type_tokens.KUBE_DISRUPTION_BUDGET:
        parts.append(f"maxUnavailable={spec.get('maxUnavailable')}")
    elif type_ == type_tokens.KUBE_INGRESS:
        parts.append("hosts=" + ",".join(str(rule.get("host")) for rule in spec.get("rules") or []))
    elif type_ == type_tokens.KUBE_SECRET:
        parts.append(f"keys={len(inputs.get('stringData') or {}) if isinstance(inputs.get('stringData'), dict) else '[secret]'}")
    return " ".join(parts)
