"""More malicious checkpoints (issue 16): hand-written pickles that reach code by other opcodes
than a plain ``REDUCE`` of one ``GLOBAL`` (nested globals, ``STACK_GLOBAL``, ``INST``/``OBJ``,
protocol-5 out-of-band buffers), in both torch containers, and zip checkpoints whose member
names try to leave the archive. Each payload is first shown to be live with plain ``pickle``;
the loader must refuse the file and run nothing."""

from __future__ import annotations

import io
import pickle
import shlex
import zipfile
from pathlib import Path

import pytest
import torch

from detector.checkpoints import load_checkpoint
from detector.errors import CheckpointError, UnsafeCheckpoint

from . import checkpoint_factory as cf


def _s(text: str) -> bytes:
    """A protocol-0 string argument (``S'...'\\n``)."""
    return b"S" + repr(text).encode() + b"\n"


def _payloads(marker: Path) -> dict[str, bytes]:
    """Raw pickles, each touching ``marker`` when unpickled naively."""
    touch = f"touch {shlex.quote(str(marker))}"
    return {
        # getattr(__import__('os'), 'system')(touch): GLOBALs nested inside REDUCE arguments
        "nested-globals": b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(" + _s("os")
        + b"tR" + _s("system") + b"tR(" + _s(touch) + b"tR.",
        # protocol 4: the callable named by STACK_GLOBAL from two strings on the stack
        "stack-global": b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c"
        + bytes([len(touch)]) + touch.encode() + b"\x94\x85\x94R\x94.",
        # protocol 0 INST: instantiate os.system with the marked arguments
        "inst": b"(" + _s(touch) + b"ios\nsystem\n.",
        # protocol 1 OBJ: the class (callable) taken from the stack after the mark
        "obj": b"(cos\nsystem\n" + _s(touch) + b"o.",
    }  # fmt: skip


@pytest.mark.parametrize("payload", ["nested-globals", "stack-global", "inst", "obj"])
def test_payloads_are_live(tmp_path: Path, payload: str) -> None:
    """Control: plain ``pickle.loads`` runs each payload (so the refusals below mean it)."""
    marker = tmp_path / "pwned"
    pickle.loads(_payloads(marker)[payload])
    assert marker.exists()


def _legacy_file(path: Path, main_pickle: bytes) -> Path:
    """A torch legacy-format file whose object pickle is ``main_pickle``."""
    with path.open("wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)  # torch's legacy magic number
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)  # fmt: skip
        f.write(main_pickle)
        pickle.dump([], f, protocol=2)
    return path


def _zip_file(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("container", ["legacy", "zip"])
@pytest.mark.parametrize("payload", ["nested-globals", "stack-global", "inst", "obj"])
def test_other_code_paths_in_a_pickle_are_refused(
    tmp_path: Path, container: str, payload: str
) -> None:
    marker = tmp_path / "pwned"
    raw = _payloads(marker)[payload]
    path = tmp_path / "evil.pth"
    if container == "legacy":
        _legacy_file(path, raw)
    else:
        _zip_file(path, {"archive/data.pkl": raw, "archive/version": b"3\n",
                         "archive/byteorder": b"little"})  # fmt: skip
    with pytest.raises(UnsafeCheckpoint, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_protocol_5_out_of_band_buffers_are_refused(tmp_path: Path, container: str) -> None:
    """``NEXT_BUFFER``/``READONLY_BUFFER`` ask the loader for buffers it was never given: a
    refusal with a reason, not a crash."""
    raw = b"\x80\x05\x97\x98."  # PROTO 5, NEXT_BUFFER, READONLY_BUFFER, STOP
    path = tmp_path / "buffers.pth"
    if container == "legacy":
        _legacy_file(path, raw)
    else:
        _zip_file(path, {"archive/data.pkl": raw, "archive/version": b"3\n"})
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "evil_name",
    ["../../escaped.sh", "/tmp/absolute-escape.sh", "archive/data/../../../escaped.sh",
     "archive\\..\\..\\escaped.sh"],
)  # fmt: skip
def test_zip_members_that_leave_the_archive_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evil_name: str
) -> None:
    """A torch.save archive never names a member outside itself; one that does is crafted.
    The loader refuses it and nothing is written anywhere (it never extracts)."""
    good = tmp_path / "good.pth"
    torch.save(cf.tiny_state_dict(), good)
    with zipfile.ZipFile(good) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[evil_name] = b"#!/bin/sh\ntouch pwned\n"
    path = _zip_file(tmp_path / "slip.pth", members)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafeCheckpoint, match="outside the archive"):
        load_checkpoint(path)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/absolute-escape.sh").exists()


def test_an_archive_with_only_ordinary_names_still_loads(tmp_path: Path) -> None:
    """Control for the test above: the same archive without the escaping member is accepted
    by the container reader (it then fails only as what it is: a tiny, non-Xception dict)."""
    good = tmp_path / "good.pth"
    torch.save(cf.tiny_state_dict(), good)
    buf = io.BytesIO(good.read_bytes())
    assert zipfile.is_zipfile(buf)
    try:
        load_checkpoint(good)
    except UnsafeCheckpoint as exc:  # pragma: no cover - would mean the reader refuses all zips
        pytest.fail(f"an ordinary torch.save archive was called unsafe: {exc}")
    except CheckpointError:
        pass  # not a detector: expected for a tiny state dict


def test_a_colon_in_the_archive_name_is_not_an_escape(tmp_path: Path) -> None:
    """torch names the archive after the file: ``ckpt:v2.pth`` holds ``ckpt:v2/data.pkl``."""
    path = tmp_path / "ckpt:v2.pth"
    torch.save(cf.tiny_state_dict(), path)
    with zipfile.ZipFile(path) as z:
        assert any(":" in n for n in z.namelist())
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpoint)
