"""The engine's errors, and how a failed engine command becomes a short message: diagnostics and policy violations, no tracebacks.

The full output stays on `EngineError.stdout` / `.stderr` for debugging.
"""


from __future__ import annotations

from pulumi.automation import errors as auto_errors

from fleet.errors import FleetError
from fleet.model.type_tokens import PROJECT_NAME
from fleet.paths import ENGINE_BIN


class EngineMissing(FleetError):
    """The engine (or one of its shims) is not installed, or is too old: ./scripts/setup fixes it."""


class EngineError(FleetError):
    """An engine operation failed: a locked stack, a missing stack, or a failed command."""

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        stack: str | None = None,
        reason: str = "command-failed",
        stdout: str = "",
        stderr: str = "",
        command_exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.stack = stack
        #: "concurrent-update", "stack-not-found", "engine-killed", "program-failed", "policy-violation" or "command-failed"
        self.reason = reason
        self.stdout = stdout
        self.stderr = stderr
        #: The engine command's own exit code (None when its output had none); `exit_code` is what the CLI exits with.
        self.command_exit_code = command_exit_code


def engine_error(
    exc: auto_errors.CommandError, operation: str, stack_name: str, backend: str | None = None
) -> EngineError:
    code, stdout, stderr = split_command_error(exc)
    if isinstance(exc, auto_errors.ConcurrentUpdateError):
        reason = "concurrent-update"
        where = backend.removeprefix("file://") if backend else "<backend>"
        message = (
            f"{operation} on stack {stack_name!r}: the stack is locked by another update"
            f" ({where}/.pulumi/locks/organization/{PROJECT_NAME}/{stack_name}). Wait for it to finish;"
            f" `python -m fleet unlock --stack {stack_name}` breaks the lock of a run that is gone (it asks first)"
        )
    elif isinstance(exc, auto_errors.StackNotFoundError):
        reason = "stack-not-found"
        message = f"{operation}: no stack named {stack_name!r} in {backend or 'this backend'}"
    elif code is not None and code < 0:
        reason = "engine-killed"
        in_flight = [line.strip() for line in stdout.splitlines() if line.strip()][-6:]
        message = (
            f"the engine running {operation} on stack {stack_name!r} was killed (signal {-code}). In flight when it died:\n  "
            + ("\n  ".join(in_flight) or "(nothing printed yet)")
            + "\nThe next `python -m fleet up` recovers: it releases the dead run's lock and resolves what was pending."
        )
    else:
        if isinstance(exc, auto_errors.InlineSourceRuntimeError):
            reason = "program-failed"
        elif "[mandatory]" in stdout:
            reason = "policy-violation"
        else:
            reason = "command-failed"
        message = f"{operation} on stack {stack_name!r} failed (exit {code}):\n{explain(stdout, stderr)}"
    return EngineError(
        message, operation=operation, stack=stack_name, reason=reason, stdout=stdout, stderr=stderr, command_exit_code=code
    )


def split_command_error(exc: auto_errors.CommandError) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr) of a failed command; the SDK keeps them only in str(exc)."""
    text = str(exc)
    head, _, stderr = text.rpartition("\n stderr: ")
    head, _, stdout = head.partition("\n stdout: ")
    code_text = head.strip().removeprefix("code:").strip()
    code = int(code_text) if code_text.lstrip("-").isdigit() else None
    if not head and not stdout:  # not the SDK's format: keep the whole text
        return None, "", text
    return code, stdout, stderr


_SECTIONS = ("Diagnostics:", "Policies:", "Policy Violations:")
_NOISE_PREFIXES = ("an unhandled error occurred: ", "python inline source runtime error: ")


def explain(stdout: str, stderr: str, limit: int = 40) -> str:
    """What a person needs from a failed run: diagnostics and policy violations, without tracebacks.

    The full output stays on EngineError.stdout / .stderr for debugging.
    """
    keep: list[str] = []
    seen: set[str] = set()
    section = ""
    continuing = False
    for line in stdout.splitlines():
        text = line.strip()
        if text and not line.startswith(" "):  # a top-level heading ends the section
            section = text if text in _SECTIONS else ""
            if section:
                keep.append(section)
            continue
        if not section or not text:
            continue
        indent = len(line) - len(line.lstrip())
        if section != "Diagnostics:" or indent <= 2:  # policy lines; resource headings
            keep.append(line.rstrip())
            continuing = False
        elif text.startswith(("error:", "warning:")):
            continuing = False
            body = text.split(":", 1)[1].strip()
            if body in ("preview failed", "update failed") or _is_shim_warning(body):
                continue
            while body.startswith(_NOISE_PREFIXES):
                body = next(body.removeprefix(p) for p in _NOISE_PREFIXES if body.startswith(p))
            if body not in seen:
                seen.add(body)
                keep.append(" " * indent + text.split(":", 1)[0] + ": " + body)
                continuing = True
        elif text.startswith("Traceback"):
            continuing = False  # a traceback ends the message; it stays in .stdout for debugging
        elif continuing:
            keep.append(line.rstrip())  # the rest of a multi-line message (e.g. every spec problem)
    keep = _drop_empty_headings(keep)
    if not keep:
        keep = [line.rstrip() for line in stdout.splitlines() if line.strip()][-limit:]
    for line in stderr.splitlines():
        body = line.strip().removeprefix("error:").strip()
        if body and body not in seen and body not in ("preview failed", "update failed"):
            seen.add(body)
            keep.append(line.rstrip())
    return "\n".join(keep[-limit:]) if keep else "(the engine printed nothing)"


def _drop_empty_headings(lines: list[str]) -> list[str]:
    """Remove headings (lines ending in ':') whose every line was filtered out."""

    def depth(line: str) -> int:
        return len(line) - len(line.lstrip())

    kept: list[str] = []
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else None
        is_heading = line.rstrip().endswith(":") and depth(line) <= 2
        if is_heading and (following is None or depth(following) <= depth(line)):
            continue
        kept.append(line)
    return kept if kept == lines else _drop_empty_headings(kept)


def _is_shim_warning(body: str) -> bool:
    # The engine warns that the policy shim comes "from $PATH" (it is not one of its
    # bundled plugins); that is how ./scripts/setup installs it, so it is no news.
    return body.startswith("using pulumi-") and f"from $PATH at {ENGINE_BIN}" in body
