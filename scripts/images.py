"""Write the real node's local images as OCI archives, with no registry and no container engine.

Two test and demo images of the real node:

- `pause`: the pod sandbox, Kubernetes' own `build/pause/linux/pause.c` compiled with `gcc -static`;
- `toolbox`: busybox-static with its applet links (`sh`, `cat`, `env`, `sleep`, `httpd`, ...),
  `/etc/passwd`, `/etc/group` and a world-writable `/tmp`.

And the pieces `scripts/image` builds Driftwatch's own image with: `layer` packs one folder (a Debian root,
an overlay's upper folder) as a gzip layer, `assemble` writes the image from layers made that way.

For Docker (`scripts/docker`): `docker-archive` streams an OCI archive with the docker `manifest.json` added,
which Docker 20.10's `docker load` needs (it reads no `index.json`), and `image-id` prints the ID the image
gets, so that an image already loaded is not loaded again.

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
from typing import IO, Any, BinaryIO

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
    return write_oci_image([(_digest(layer), compressed)], name, config, output)


def write_layer_file(root: Path, output: Path) -> str:
    """Pack `root` as a gzip layer file, keeping owners and modes (a Debian root has files of group shadow);
    an overlayfs whiteout (a 0/0 character device) becomes an OCI whiteout `.wh.NAME`. Written through a
    file, not memory (a virtualenv is hundreds of MB), compressed by pigz. Returns the layer's diff ID."""
    plain = output.with_suffix(".plain")
    with tarfile.open(plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            arcname = str(path.relative_to(root))
            info = tar.gettarinfo(str(path), arcname=arcname)
            info.mtime = EPOCH
            info.uname = info.gname = ""
            if info.ischr() and info.devmajor == 0 and info.devminor == 0:
                # An empty file, with nothing of the device to read (opening one fails).
                whiteout = tarfile.TarInfo(str(Path(arcname).parent / f".wh.{path.name}"))
                whiteout.mtime = EPOCH
                tar.addfile(whiteout)
            elif info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    diff_id = _file_digest(plain)
    with output.with_suffix(".tmp").open("wb") as compressed:
        subprocess.run(["pigz", "-n", "-6", "-c", str(plain)], check=True, stdout=compressed)
    plain.unlink()
    output.with_suffix(".tmp").replace(output)
    return diff_id


def write_oci_image(
    layers: list[tuple[str, bytes | Path]], name: str, config: Mapping[str, object], output: Path
) -> str:
    """Write an OCI archive of `layers` (diff ID, gzip blob or file holding it), base first; returns the image
    config digest (its ID)."""
    blobs: dict[str, bytes | Path] = {}
    descriptors = []
    for _, blob in layers:
        digest = _digest(blob) if isinstance(blob, bytes) else _file_digest(blob)
        size = len(blob) if isinstance(blob, bytes) else blob.stat().st_size
        blobs[digest] = blob
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id for diff_id, _ in layers]},
        "history": [{"created_by": "scripts/images.py"} for _ in layers],
    }
    config_blob = _json(image_config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _descriptor("application/vnd.oci.image.config.v1+json", config_blob),
        "layers": descriptors,
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
    files: dict[str, bytes | Path] = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _json(index),
        **{f"blobs/sha256/{digest[7:]}": blob for digest, blob in blobs.items()},
        **{f"blobs/sha256/{_digest(blob)[7:]}": blob for blob in (config_blob, manifest_blob)},
    }
    temporary = output.with_suffix(".tmp")
    with tarfile.open(temporary, mode="w") as tar:
        for path, blob in files.items():
            info = tarfile.TarInfo(path)
            info.mtime, info.mode = EPOCH, 0o644
            if isinstance(blob, bytes):
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
            else:
                info.size = blob.stat().st_size
                with blob.open("rb") as handle:
                    tar.addfile(info, handle)
    temporary.replace(output)
    return _digest(config_blob)


def _oci_manifest(archive: tarfile.TarFile) -> dict[str, Any]:
    """The one image manifest of an OCI archive written by `write_oci_image`."""
    index = json.load(_member(archive, "index.json"))
    (descriptor,) = index["manifests"]
    return json.load(_member(archive, _blob_path(descriptor["digest"])))


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = archive.extractfile(name)
    if handle is None:
        raise ValueError(f"{name} is not a file of the archive")
    return handle


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def docker_image_id(oci_archive: Path) -> str:
    """The ID Docker gives the image of `oci_archive`: the digest of its config."""
    with tarfile.open(oci_archive) as archive:
        return str(_oci_manifest(archive)["config"]["digest"])


def write_docker_archive(oci_archive: Path, tag: str, output: BinaryIO) -> None:
    """Stream `oci_archive` to `output` with a docker `manifest.json` naming it `tag` (no copy on disk: the
    archive of the app image is hundreds of MB)."""
    with tarfile.open(oci_archive) as archive, tarfile.open(fileobj=output, mode="w|") as stream:
        manifest = _oci_manifest(archive)
        docker_manifest = [
            {
                "Config": _blob_path(manifest["config"]["digest"]),
                "RepoTags": [tag],
                "Layers": [_blob_path(layer["digest"]) for layer in manifest["layers"]],
            }
        ]
        for member in archive:
            stream.addfile(member, archive.extractfile(member) if member.isfile() else None)
        blob = _json(docker_manifest)
        info = tarfile.TarInfo("manifest.json")
        info.mtime, info.mode, info.size = EPOCH, 0o644, len(blob)
        stream.addfile(info, io.BytesIO(blob))


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


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


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
    layer = sub.add_parser("layer", help="pack a folder as a gzip layer; prints its diff ID")
    layer.add_argument("root", type=Path)
    layer.add_argument("output", type=Path)
    assemble = sub.add_parser("assemble", help="write an OCI archive from layers written by `layer`")
    assemble.add_argument("--name", required=True)
    assemble.add_argument("--config", required=True, help="the image's runtime config (JSON)")
    assemble.add_argument("--output", type=Path, required=True)
    assemble.add_argument("layers", nargs="+", help="DIFF_ID=LAYER_FILE, base first")
    docker = sub.add_parser("docker-archive", help="stream an OCI archive as `docker load` reads it, to stdout")
    docker.add_argument("archive", type=Path)
    docker.add_argument("--tag", required=True, help="the name docker load gives it, e.g. driftwatch.local/redis:7")
    identity = sub.add_parser("image-id", help="print the ID Docker gives the image of an OCI archive")
    identity.add_argument("archive", type=Path)
    args = parser.parse_args()
    if args.image == "docker-archive":
        write_docker_archive(args.archive, args.tag, sys.stdout.buffer)
        return
    if args.image == "image-id":
        print(docker_image_id(args.archive))
        return
    if args.image == "layer":
        print(write_layer_file(args.root, args.output))
        return
    if args.image == "assemble":
        pairs = [(item.split("=", 1)[0], Path(item.split("=", 1)[1])) for item in args.layers]
        image_id = write_oci_image(list(pairs), args.name, json.loads(args.config), args.output)
    elif args.image == "pause":
        image_id = build_pause(args.source, args.name, args.output)
    else:
        image_id = build_toolbox(args.busybox, args.name, args.output)
    print(f"{args.name} {image_id} {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
