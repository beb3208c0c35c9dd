"""``deepfake-bot check`` on videos and animations: per-track JSON and table rows, contact
sheets with ``--annotate``, refusals in the same JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from bot.main import main

from .conftest import SAMPLES
from .video_clips import encode_animation, encode_video, moving_face, no_face, two_faces


@pytest.fixture()
def videos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEEPFAKE_BOT_FACE_FINDER", "hog")  # fast; same Finder boundary
    d = tmp_path / "in"
    d.mkdir()
    (d / "two.mp4").write_bytes(encode_video(two_faces(), seconds=1.0))
    (d / "anim.gif").write_bytes(encode_animation(moving_face(), frames=5))
    (d / "empty_room.webm").write_bytes(
        encode_video(no_face(), seconds=1.0, fps=4, container="webm", codec="libvpx-vp9")
    )
    clip = encode_video(moving_face(), seconds=1.0)
    (d / "cut.mp4").write_bytes(clip[: len(clip) // 2])
    (d / "face.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    return d


def test_check_json_answers_videos_per_track(
    videos: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", str(videos), "--json", "--weights", str(tiny_checkpoint)])
    assert code == 1  # the faceless and the cut clip get no verdict
    rows = {Path(r["path"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"two.mp4", "anim.gif", "empty_room.webm", "cut.mp4", "face.jpg"}
    two = rows["two.mp4"]
    assert two["kind"] == "video" and two["error"] is None and two["rule"] == "mean"
    assert len(two["tracks"]) == 2 and all(t["frames"] == 10 for t in two["tracks"])
    assert two["p_fake"] == max(t["p_fake"] for t in two["tracks"])
    for track in two["tracks"]:
        assert {"p_fake", "frames", "first_s", "last_s", "boxes_sample"} <= set(track)
    assert rows["anim.gif"]["kind"] == "video" and rows["anim.gif"]["frames_sampled"] == 5
    assert rows["face.jpg"]["kind"] == "image" and rows["face.jpg"]["error"] is None
    for name, words in (("empty_room.webm", "any of the 4 frames"), ("cut.mp4", "damaged")):
        row = rows[name]
        assert row["kind"] == "video" and row["verdict"] is None and row["tracks"] == []
        assert words in row["error"]


def test_check_table_and_contact_sheet(
    videos: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # no folding of the words checked below
    out_dir = tmp_path / "out"
    clip = videos / "two.mp4"
    assert main(["check", str(clip), "--annotate", str(out_dir), "--weights",
                 str(tiny_checkpoint)]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "track 1" in table and "track 2" in table and "10 frames sampled" in table
    sheet = out_dir / "two.sheet.jpg"
    with Image.open(sheet) as img:
        assert img.format == "JPEG" and img.width > 360
