"""Write the real node's local images as OCI archives, with no registry and no container engine.

Test and demo harness only, never part of the product. Two images:

- `pause`: the pod sandbox, Kubernetes' own `build/pause/linux/pause.c` compiled with `gcc -static`;
- `toolbox`: busybox-static with its applet links (`sh`, `cat`, `env`, `sleep`, `httpd`, ...),
  `/etc/passwd`, `/etc/group` and a world-writable `/tmp`.

Each archive is an OCI image layout (`oci-layout`, `index.json`, blobs) with one gzip layer, which
`ctr -n k8s.io images import` accepts under the name in its `io.containerd.image.name` annotation.
The layer is reproducible (sorted entries, fixed times and owners): the same inputs give the same
image ID, so an import of an unchanged image is a no-op.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

EPOCH = 0  # every file of a layer gets this mtime: the layer digest depends on content only
PAUSE_USER = "65535:65535"  # what the upstream pause image runs as
TOOLBOX_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}


def layer_from_tree(root: Path) -> bytes:
    """An uncompressed tar of `root` with reproducible metadata (owner root, mtime 0, sorted)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = EPOCH
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def write_oci_archive(root: Path, name: str, config: Mapping[str, object], output: Path) -> str:
    """Pack `root` as a one-layer image called `name`; returns the image config digest (its ID)."""
    layer = layer_from_tree(root)
    compressed = gzip.compress(layer, compresslevel=6, mtime=EPOCH)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        "history": [{"created_by": "scripts/images.py"}],
    }
    config_blob = _json(image_config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _descriptor("application/vnd.oci.image.config.v1+json", config_blob),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", compressed)],
    }
    manifest_blob = _json(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                **_descriptor("application/vnd.oci.image.manifest.v1+json", manifest_blob),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    files = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _json(index),
        **{f"blobs/sha256/{_digest(blob)[7:]}": blob for blob in (compressed, config_blob, manifest_blob)},
    }
    temporary = output.with_suffix(".tmp")
    with tarfile.open(temporary, mode="w") as tar:
        for path, blob in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(blob), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(blob))
    temporary.replace(output)
    return _digest(config_blob)


def build_pause(pause_source: Path, name: str, output: Path) -> str:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "root"
        root.mkdir()
        # pause.c prints VERSION with -v; the upstream Makefile defines it the same way.
        subprocess.run(
            ["gcc", "-Os", "-Wall", "-Werror", "-static", "-DVERSION=driftwatch-local", "-o", str(root / "pause"),
             str(pause_source)],
            check=True,
        )  # fmt: skip
        subprocess.run(["strip", str(root / "pause")], check=True)
        return write_oci_archive(root, name, {"Entrypoint": ["/pause"], "User": PAUSE_USER}, output)


def build_toolbox(busybox: Path, name: str, output: Path) -> str:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "root"
        (root / "bin").mkdir(parents=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        (root / "bin" / "busybox").chmod(0o755)
        applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        for relative, text in TOOLBOX_FILES.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
        for folder in ("tmp", "root", "var/www", "etc/config"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        config = {
            "Env": ["PATH=/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        }
        return write_oci_archive(root, name, config, output)


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="image", required=True)
    pause = sub.add_parser("pause", help="the pod sandbox image from Kubernetes' pause.c")
    pause.add_argument("--source", type=Path, required=True, help="path of build/pause/linux/pause.c")
    toolbox = sub.add_parser("toolbox", help="a busybox image with sh, cat, env, sleep, httpd")
    toolbox.add_argument("--busybox", type=Path, default=Path("/bin/busybox"))
    for command in (pause, toolbox):
        command.add_argument("--name", required=True, help="image reference, e.g. driftwatch.local/toolbox:1")
        command.add_argument("--output", type=Path, required=True, help="the OCI archive to write")
    args = parser.parse_args()
    if args.image == "pause":
        image_id = build_pause(args.source, args.name, args.output)
    else:
        image_id = build_toolbox(args.busybox, args.name, args.output)
    print(f"{args.name} {image_id} {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
