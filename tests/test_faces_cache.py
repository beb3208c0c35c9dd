"""The face-box cache records which finder drew its boxes: one file per finder (HOG keeps the
file name it had before finders were named), each line naming its finder; a finder given to
another finder's cache is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.finders import ENV, SERVED, configured_finder, make_finder
from detector.training.manifest import RegionCache, Sample

from .conftest import SAMPLES


def test_one_file_per_finder_and_hog_keeps_its_old_name(tmp_path: Path) -> None:
    hog = RegionCache(tmp_path, 1.3, "hog")
    served = RegionCache(tmp_path, 1.3, SERVED)
    assert hog.file.name == "regions-4e27b6ca5e.jsonl"  # the pre-finder name for crop 1.3
    assert served.file.name == f"regions-{SERVED}-4e27b6ca5e.jsonl"


def test_lines_name_their_finder_and_are_reused(tmp_path: Path) -> None:
    sample = Sample(SAMPLES / "astronaut.jpg", 0)
    cache = RegionCache(tmp_path, 1.3, "hog")
    [region] = cache.regions([sample])
    assert region.found and region.crop is not None
    [line] = cache.file.read_text().splitlines()
    assert json.loads(line)["finder"] == "hog"
    again = RegionCache(tmp_path, 1.3, "hog")
    [back] = again.regions([sample])
    assert back.crop is not None and back.crop.as_list() == region.crop.as_list()
    assert len(again.file.read_text().splitlines()) == 1  # read back, not recomputed


def test_a_finder_given_must_be_the_caches(tmp_path: Path) -> None:
    cache = RegionCache(tmp_path, 1.3, "hog")
    with pytest.raises(ValueError, match="box cache"):
        cache.regions([Sample(SAMPLES / "astronaut.jpg", 0)], finder=make_finder("hog-up"))


def test_environment_chooses_the_finder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert configured_finder() == SERVED
    monkeypatch.setenv(ENV, "hog")
    assert configured_finder() == "hog"
    assert RegionCache(tmp_path).finder == "hog"
    assert make_finder().name == "hog"
