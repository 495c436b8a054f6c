"""Render a `Preview` as text (terminal), markdown (the PR comment) or JSON.
"""


from __future__ import annotations

from typing import Any, Optional

from fleet.offline import policies
from fleet.preview.changes import (
    CREATE,
    DELETE,
    OP_ORDER,
    REPLACE,
    SYMBOLS,
    Preview,
    ResourceChange,
)

# ---------------------------------------------------------------- rendering


KIND_LABELS = {"added": "+ added", "removed": "− removed", "purge": "− PURGE", "changed": "~ changed"}
DETAILS_INLINE_MAX = 8
"""A one-tenant change with at most this many resource changes lists them inline; more go in <details>."""
TABLE_INLINE_MAX = 10
"""More tenants than this and the tenant table goes in <details> too (the headline and ⚠ lines stay visible)."""
MAX_DETAIL_LINES = 400
"""Resource lines in Markdown beyond this are cut (a PR comment holds 65,536 characters)."""


def format_counts(counts: dict[str, int]) -> str:
    """`+9 ~1 ±2 −8`, zeros left out; `no resource change` when all are zero."""
    parts = [f"{SYMBOLS[op]}{counts[op]}" for op in OP_ORDER if counts.get(op)]
    return " ".join(parts) or "no resource change"


def value_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_resource(change: ResourceChange) -> str:
    """`± santarita-backend-0 (Container): replace on cpus 0.5 → 1; in place memory 512 → 1024` (secret values never shown)."""
    text = f"{SYMBOLS[change.op]} {change.name} ({change.kind})"
    if change.op == DELETE and change.retained:
        return f"{text}: retained on the server"
    if change.op in (CREATE, DELETE):
        return text

    def shown(key: str) -> str:
        if key in change.values:
            old, new = change.values[key]
            return f"{key} {value_text(old)} → {value_text(new)}"
        return f"{key} (secret)" if key in change.secret_keys else key

    forcing = [shown(key) for key in change.replace_keys if key in change.keys] + [key for key in change.replace_keys if key not in change.keys]
    others = [shown(key) for key in change.keys if key not in change.replace_keys]
    if change.op == REPLACE:
        detail = f"replace on {', '.join(forcing)}" + (f"; in place {', '.join(others)}" if others else "")
    else:
        detail = ", ".join(others)
    if change.caused_by:
        detail += f" (new {', '.join(change.caused_by)})"
    return f"{text}: {detail}"


HEADLINE_KINDS = (("added", "added"), ("removed", "removed"), ("purge", "PURGE"), ("changed", "changed"))


def _headline(preview: Preview) -> str:
    if not preview.tenants:
        return "no tenant changes" + (" (shared resources change)" if preview.shared else "")
    noun = "1 tenant changes" if len(preview.tenants) == 1 else f"{len(preview.tenants)} tenants change"
    parts = []
    for kind, label in HEADLINE_KINDS:
        names = [tenant.tenant for tenant in preview.tenants if tenant.kind == kind]
        if names:
            parts.append(f"{label} {', '.join(names)}")
    return f"{noun}: {'; '.join(parts)}"


def _verdict_text(preview: Preview) -> list[str]:
    if preview.violations is None:
        return ["Policies: not checked (the head's spec is invalid)."]
    return policies.format_violations(preview.violations, preview.policy_count).splitlines()


def render_text(preview: Preview) -> str:
    """The preview for a terminal."""
    lines = [f"Fleet plan: stack {preview.stack}, base {preview.base_label} → working tree (offline, under mocks)"]
    if preview.problems:
        lines.append(f"The head's fleet spec is invalid ({len(preview.problems)} problem(s)); nothing was compared:")
        lines += [f"  - {problem}" for problem in preview.problems]
        return "\n".join(lines) + "\n"
    if preview.base_problems:
        lines.append("The base can't be read by this checkout's code, so there is no comparison:")
        lines += [f"  - {problem}" for problem in preview.base_problems]
    else:
        lines.append(_headline(preview))
    for tenant in preview.tenants:
        lines.append("")
        lines.append(f"{KIND_LABELS[tenant.kind]} {tenant.tenant}: {'; '.join(tenant.words)}  [{format_counts(tenant.counts())}]")
        lines += [f"    {describe_resource(change)}" for change in tenant.resources]
    if preview.shared:
        lines.append("")
        lines.append(f"shared: [{format_counts({op: sum(1 for c in preview.shared if c.op == op) for op in OP_ORDER})}]")
        lines += [f"    {describe_resource(change)}" for change in preview.shared]
    if preview.warnings:
        lines.append("")
        lines += preview.warnings
    if preview.notes:
        lines.append("")
        lines += [f"note: {note}" for note in preview.notes]
    lines.append("")
    lines += _verdict_text(preview)
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """Text as an inline code span of a list item (entities are not decoded there: only backticks need care)."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def _md_label(label: str) -> str:
    """`origin/main (1a2b3c4)` -> `` `origin/main` (1a2b3c4) ``."""
    ref, _, commit = label.partition(" ")
    return f"`{ref}` {commit}".strip()


def _md(text: str) -> str:
    """Text for a Markdown table cell or list item."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _md_policies(preview: Preview) -> list[str]:
    """The head's policy verdict, violations grouped by tenant (mandatory first); many go in <details>."""
    if preview.violations is None:
        return ["**Policies:** not checked (the head's spec is invalid)"]
    count = f" {preview.policy_count}" if preview.policy_count else ""
    if not preview.violations:
        return [f"**Policies:** ✅ all{count} passed"]
    mandatory = sum(1 for violation in preview.violations if violation.mandatory)
    advisory = len(preview.violations) - mandatory
    verdict = "❌ a deploy would be refused" if mandatory else "⚠️ advisory only, a deploy may go ahead"
    head = f"**Policies:** {verdict}: {mandatory} mandatory, {advisory} advisory violation(s)"
    groups: dict[str, list[Any]] = {}
    for violation in preview.violations:
        groups.setdefault(violation.tenant or "", []).append(violation)
    items = []
    for tenant in sorted(groups, key=lambda name: (name == "", name)):
        items.append(f"- **{tenant}**" if tenant else "- **fleet-wide**")
        for violation in sorted(groups[tenant], key=lambda v: (not v.mandatory, v.policy, v.resource or "")):
            message = violation.message.removeprefix(f"tenant {tenant}: ") if tenant else violation.message
            items.append(f"  - {'**mandatory**' if violation.mandatory else 'advisory'} `{violation.policy}`: {_md(message)}")
    if len(preview.violations) > 10:
        return [head, "", "<details><summary>violations by tenant</summary>", "", *items, "", "</details>"]
    return [head, *items]


def render_markdown(preview: Preview, *, command: Optional[str] = None) -> str:
    """The preview as a pull-request comment: short for one tenant, collapsed details for many."""
    lines = [f"### Fleet plan · stack `{preview.stack}` · base {_md_label(preview.base_label)}", ""]
    if preview.problems:
        lines.append(f"❌ **The fleet spec is invalid** ({len(preview.problems)} problem(s)); nothing is declared:")
        lines.append("")
        lines += [f"- {_md(problem)}" for problem in preview.problems]
        return "\n".join(lines) + "\n"
    if preview.base_problems:
        lines.append("The base can't be read by this pull request's code, so there is no comparison:")
        lines += [f"- {_md(problem)}" for problem in preview.base_problems]
        lines.append("")
    else:
        lines += [f"**{_headline(preview)}**", ""]
    if preview.warnings:
        lines += [f"- {_md(warning)}" for warning in preview.warnings]
        lines.append("")
    if preview.tenants:
        table = ["| | tenant | what happens | resources |", "|---|---|---|---|"]
        for tenant in preview.tenants:
            symbol = KIND_LABELS[tenant.kind].split(" ", 1)[0]
            table.append(f"| {symbol} | **{tenant.tenant}** | {_md('; '.join(tenant.words))} | {format_counts(tenant.counts())} |")
        if len(preview.tenants) > TABLE_INLINE_MAX:
            lines += [f"<details><summary>{len(preview.tenants)} tenants</summary>", "", *table, "", "</details>"]
        else:
            lines += table
        lines.append("")
    changes = preview.resource_changes()
    if changes:
        detail: list[str] = []
        groups = [(tenant.tenant, tenant.resources) for tenant in preview.tenants if tenant.resources]
        if preview.shared:
            groups.append(("shared", preview.shared))
        for name, group in groups:
            # a blank line first: a line right after a list item would continue that item
            detail += ["", f"**{name}**", ""] if detail else [f"**{name}**", ""]
            detail += [f"- {_code(describe_resource(change))}" for change in group]
        if len(detail) > MAX_DETAIL_LINES:
            cut = len(detail) - MAX_DETAIL_LINES
            detail = detail[:MAX_DETAIL_LINES] + [f"- … {cut} more lines: run the command below locally"]
        if len(preview.tenants) <= 1 and not preview.shared and len(changes) <= DETAILS_INLINE_MAX:
            lines += detail
        else:
            lines += [f"<details><summary>{len(changes)} resource changes</summary>", "", *detail, "", "</details>"]
        lines.append("")
    if preview.notes:
        lines += [f"<sub>{_md(note)}</sub><br>" for note in preview.notes]
        lines.append("")
    lines += _md_policies(preview)
    lines.append("")
    how = f" (`{command}`)" if command else ""
    lines.append(
        f"<sub>Offline plan{how}: the real program under mocks, no engine and no credentials. "
        "Ports and generated secrets are placeholders; the engine preview has the last word.</sub>"
    )
    return "\n".join(lines) + "\n"


def render_json(preview: Preview) -> dict[str, Any]:
    """The preview for machines."""
    violations = None if preview.violations is None else policies.violations_document(preview.violations)
    return {
        "stack": preview.stack,
        "base": preview.base_label,
        "exit_code": preview.exit_code,
        "problems": preview.problems,
        "base_problems": preview.base_problems,
        "tenants": {
            tenant.tenant: {
                "change": tenant.kind,
                "plan": tenant.plan,
                "words": tenant.words,
                "counts": tenant.counts(),
                "resources": [change.document() for change in tenant.resources],
            }
            for tenant in preview.tenants
        },
        "shared": [change.document() for change in preview.shared],
        "warnings": preview.warnings,
        "notes": preview.notes,
        "policies": {"checked": preview.violations is not None, "count": preview.policy_count, "violations": violations},
    }
