"""Pack one static binary into a docker-archive that `ctr images import` loads.

No registry is reachable here, so scripts/setup-kubernetes builds the cluster's
images (pause, fleet-app) by hand: one layer holding the binary, an image
config, and the `manifest.json` that docker-archive readers look for. The
archive is deterministic (fixed mtimes, sorted entries), so the same binary
always gives the same image ID.

    python3 kubernetes/pack_image.py --binary pause --path /pause \
        --ref localhost/pause:3.10 --out pause.tar [--env K=V ...] [--port 8080]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path


def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for info, payload in entries:
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def _entry(name: str, mode: int, payload: bytes | None = None, directory: bool = False) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    if directory:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(payload or b"")
    return info, payload


def pack(binary: Path, path_in_image: str, ref: str, out: Path, env: list[str], port: int | None) -> str:
    """Write the archive to `out` and return the image's config digest (its ID)."""
    name = path_in_image.lstrip("/")
    layer = _tar_bytes([
        _entry("tmp/", 0o1777, directory=True),
        _entry(name, 0o755, binary.read_bytes()),
    ])
    layer_digest = hashlib.sha256(layer).hexdigest()
    container_config: dict[str, object] = {
        "Entrypoint": [path_in_image],
        "Env": ["PATH=/", *env],
        "WorkingDir": "/",
    }
    if port is not None:
        container_config["ExposedPorts"] = {f"{port}/tcp": {}}
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"kubernetes/pack_image.py {binary.name}"}],
    }, sort_keys=True).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{
        "Config": f"{config_digest}.json",
        "RepoTags": [ref],
        "Layers": [f"{layer_digest}/layer.tar"],
    }]).encode()
    archive = _tar_bytes([
        _entry(f"{layer_digest}/", 0o755, directory=True),
        _entry(f"{layer_digest}/layer.tar", 0o644, layer),
        _entry(f"{config_digest}.json", 0o644, config),
        _entry("manifest.json", 0o644, manifest),
    ])
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(archive)
    tmp.replace(out)
    return f"sha256:{config_digest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, required=True, help="static executable to put in the image")
    parser.add_argument("--path", required=True, help="its path inside the image, also the entrypoint")
    parser.add_argument("--ref", required=True, help="image reference, e.g. localhost/fleet-app:1.0.0")
    parser.add_argument("--out", type=Path, required=True, help="docker-archive to write")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE baked into the image config")
    parser.add_argument("--port", type=int, default=None, help="port the image exposes (documentation only)")
    args = parser.parse_args()
    print(pack(args.binary, args.path, args.ref, args.out, args.env, args.port))


if __name__ == "__main__":
    main()
