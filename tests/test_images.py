"""scripts/images.py, the way scripts/image and scripts/docker call it: a layer from an overlay's upper folder
(whiteouts included), an image assembled from it, and that image streamed as `docker load` reads it."""

import gzip
import hashlib
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parent.parent / "scripts" / "images.py"


def images(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([sys.executable, str(IMAGES), *args], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return result


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    """An overlay's upper folder after `rm /etc/gone` of a lower file and a write of /etc/kept."""
    if os.geteuid() != 0:
        pytest.fail("a whiteout (a 0/0 character device) needs root to make", pytrace=False)
    root = tmp_path / "upper"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "kept").write_text("kept\n")
    os.mknod(root / "etc" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    return root


def test_a_layer_turns_a_whiteout_into_an_oci_whiteout(upper: Path, tmp_path: Path):
    layer = tmp_path / "layer.tar.gz"
    diff_id = images("layer", str(upper), str(layer)).stdout.decode().strip()
    plain = gzip.decompress(layer.read_bytes())
    assert diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    with tarfile.open(layer) as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert set(members) == {"etc", "etc/kept", "etc/.wh.gone"}
        assert members["etc/.wh.gone"].isreg() and members["etc/.wh.gone"].size == 0
        assert tar.extractfile("etc/kept").read() == b"kept\n"


def test_the_docker_archive_names_the_image_and_its_config_and_layers(upper: Path, tmp_path: Path):
    layer = tmp_path / "layer.tar.gz"
    diff_id = images("layer", str(upper), str(layer)).stdout.decode().strip()
    archive = tmp_path / "image.tar"
    images("assemble", "--name", "driftwatch.local/test:1", "--config", '{"Cmd": ["sh"]}', "--output", str(archive),
           f"{diff_id}={layer}")  # fmt: skip
    image_id = images("image-id", str(archive)).stdout.decode().strip()
    stream = tmp_path / "docker.tar"
    stream.write_bytes(images("docker-archive", str(archive), "--tag", "driftwatch.local/test:1").stdout)
    with tarfile.open(stream) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
        assert manifest["RepoTags"] == ["driftwatch.local/test:1"]
        config = tar.extractfile(manifest["Config"]).read()
        assert "sha256:" + hashlib.sha256(config).hexdigest() == image_id
        assert json.loads(config)["rootfs"]["diff_ids"] == [diff_id]
        (layer_path,) = manifest["Layers"]
        assert tar.extractfile(layer_path).read() == layer.read_bytes()
        # Still the OCI layout too: containerd's import reads index.json.
        assert {"oci-layout", "index.json"} <= set(tar.getnames())
