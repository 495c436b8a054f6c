"""A tenant's generated app env, sealed beside each of its backups: only the holder of the private key opens it.

The env (every service's variables, secrets included) is encrypted to the public key in
`fleet:backups.env_recipient` with libsodium's sealed boxes (PyNaCl). Whoever writes backups needs only
that public key; the private key stays offline with the operator (docs/operations.md, "The app's env in
backups").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from fleet.errors import FleetError
from fleet.postgres import dumps

ENV_SUFFIX = ".env.sealed"
"""`<tenant>-<stamp>.env.sealed`, beside `<tenant>-<stamp>.dump`."""


class EnvBackupError(FleetError):
    """A sealed env could not be written or opened; the message says which file and why."""


def env_file_path(dump: Path) -> Path:
    """Where a backup's sealed env goes."""
    return dump.with_name(f"{dump.stem}{ENV_SUFFIX}")


def _key_bytes(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EnvBackupError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise EnvBackupError(f"{what} is {len(raw)} bytes, not the 32 of a Curve25519 key")
    return raw


def fingerprint(recipient: str) -> str:
    """A short, stable name of a public key (the manifest records which key a backup's env needs)."""
    return hashlib.sha256(_key_bytes(recipient, "the recipient key")).hexdigest()[:16]


def new_keypair() -> tuple[str, str]:
    """(public, private) keys, base64: the public one for `fleet:backups.env_recipient`, the private one for the operator."""
    private = PrivateKey.generate()
    return base64.b64encode(bytes(private.public_key)).decode(), base64.b64encode(bytes(private)).decode()


def seal(env: Mapping[str, list[str]], recipient: str) -> bytes:
    """The env (service -> `NAME=value` lines) as JSON, sealed to `recipient` (base64 public key)."""
    payload = json.dumps({"services": {name: list(lines) for name, lines in sorted(env.items())}}, sort_keys=True).encode()
    return SealedBox(PublicKey(_key_bytes(recipient, "the recipient key"))).encrypt(payload)


def write_sealed_env(dump: Path, env: Mapping[str, list[str]], recipient: str) -> dict[str, Any]:
    """Seal `env` beside `dump` (0600, never over an existing file); the manifest's entry for it."""
    path = env_file_path(dump)
    sealed = seal(env, recipient)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(sealed)
    return {"file": path.name, "bytes": len(sealed), "sha256": dumps.sha256_of(path), "services": sorted(env), "recipient": fingerprint(recipient)}


def open_sealed_env(path: Path, private_key: str) -> dict[str, list[str]]:
    """The env sealed in `path`, opened with the base64 private key (service -> lines)."""
    try:
        sealed = Path(path).read_bytes()
    except OSError as error:
        raise EnvBackupError(f"cannot read {path}: {error.strerror}") from None
    try:
        payload = SealedBox(PrivateKey(_key_bytes(private_key, "the private key"))).decrypt(sealed)
    except CryptoError:
        raise EnvBackupError(f"{path} does not open with this key (another recipient, or the file is damaged)") from None
    services = json.loads(payload)["services"]
    return {str(name): [str(line) for line in lines] for name, lines in services.items()}
