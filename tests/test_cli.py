"""``deepfake-bot check`` end to end: real files, real (tiny) checkpoint, JSON and table output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bot.main import main

from .conftest import REPO, SAMPLES


@pytest.fixture()
def inputs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    (d / "nested").mkdir(parents=True)
    (d / "a_face.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    (d / "nested" / "b_face_as_png.jpg").write_bytes(b"")  # replaced below
    Image.open(SAMPLES / "astronaut.jpg").save(d / "nested" / "b_face_as_png.jpg", format="PNG")
    (d / "c_coffee.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    (d / "d_broken.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes()[:3000])
    (d / "notes.txt").write_text("not an image, and not picked up from folders")
    return d


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_check_json_one_object_per_input_and_nothing_lost(
    inputs: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jpg"
    code = main(["check", str(inputs), str(missing), "--json", "--weights", str(tiny_checkpoint)])
    assert code == 1  # some inputs got no verdict
    rows = {Path(str(r["path"])).name: r for r in _json_lines(capsys.readouterr().out)}
    assert set(rows) == {"a_face.jpg", "b_face_as_png.jpg", "c_coffee.jpg", "d_broken.jpg",
                         "missing.jpg"}
    for key in ("path", "verdict", "p_fake", "faces", "error"):
        assert all(key in r for r in rows.values())
    ok = rows["a_face.jpg"]
    assert ok["error"] is None and ok["verdict"] in {"no_manipulation_detected", "uncertain",
                                                      "likely_manipulated"}
    faces = ok["faces"]
    assert isinstance(faces, list) and len(faces) == 1
    assert len(faces[0]["box"]) == 4 and 0 <= faces[0]["p_fake"] <= 1
    assert ok["p_fake"] == faces[0]["p_fake"]
    # Mislabelled (PNG bytes named .jpg) is decoded by content: same face, same score.
    assert rows["b_face_as_png.jpg"]["error"] is None
    assert rows["b_face_as_png.jpg"]["p_fake"] == pytest.approx(ok["p_fake"], abs=0.02)
    for name, word in (("c_coffee.jpg", "face"), ("d_broken.jpg", "damaged"),
                       ("missing.jpg", "No such file")):
        assert rows[name]["verdict"] is None and rows[name]["p_fake"] is None
        assert word in str(rows[name]["error"])


def test_check_table_and_annotations(
    inputs: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wide table: at rich's default 80 columns a long temporary path folds over two lines,
    # and whether the name splits depended on the pytest folder's number.
    monkeypatch.setenv("COLUMNS", "400")
    out_dir = tmp_path / "annotated"
    face = inputs / "a_face.jpg"
    code = main(["check", str(face), "--annotate", str(out_dir), "--weights", str(tiny_checkpoint)])
    assert code == 0
    text = capsys.readouterr().out
    assert "a_face.jpg" in text and "%" in text
    written = list(out_dir.iterdir())
    assert [p.name for p in written] == ["a_face.annotated.jpg"]
    assert Image.open(written[0]).size == (512, 512)


def test_check_without_weights_says_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEEPFAKE_BOT_WEIGHTS", str(tmp_path / "nothing-here.safetensors"))
    code = main(["check", str(SAMPLES / "astronaut.jpg")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--weights" in err


def test_check_refuses_a_non_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "weights.pth"
    bogus.write_bytes(b"hello, not a checkpoint")
    assert main(["check", str(SAMPLES / "astronaut.jpg"), "--weights", str(bogus)]) == 2
    assert "weights.pth" in capsys.readouterr().err


def test_console_script_runs_as_a_subprocess(tiny_checkpoint: Path) -> None:
    exe = Path(sys.executable).parent / "deepfake-bot"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot.main"]
    proc = subprocess.run(
        [*cmd, "check", "--json", "--weights", str(tiny_checkpoint), str(SAMPLES)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning:detector"},
    )
    rows = _json_lines(proc.stdout)
    assert [Path(str(r["path"])).name for r in rows] == ["astronaut.jpg", "coffee.jpg"]
    assert rows[0]["error"] is None and rows[1]["error"] is not None
    assert proc.returncode == 1, proc.stderr
