"""The face finders this project can serve or compare, by name.

``make_finder`` builds one; every finder has the pipeline's one-function boundary
(:class:`detector.faces.Finder`). ``SERVED`` is the one chosen by the measured comparison in
BENCHMARKS.md ("Face finding"); the others stay for ``deepfake-bot bench-faces``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from detector.errors import FinderUnavailable
from detector.faces import DetectionPass, FaceFinder, FaceFinderOptions, Finder

SERVED = "mtcnn-rot"
ENV = "DEEPFAKE_BOT_FACE_FINDER"
ROTATIONS = (30.0, -30.0)


def _hog(max_faces: int) -> Finder:
    return FaceFinder(FaceFinderOptions(max_faces=max_faces))


def _hog_up(max_faces: int) -> Finder:
    # Every picture upsampled once at 1024 px: finds ~40 px faces, ~4x the time of a plain pass.
    passes = (DetectionPass(1024, 1), DetectionPass(400, 1, pad=0.3))
    return FaceFinder(FaceFinderOptions(passes=passes, max_faces=max_faces, label="hog-up"))


def _hog_rot(max_faces: int) -> Finder:
    from detector.finders.rotated import RotatedPasses

    return RotatedPasses(_hog(max_faces), ROTATIONS, max_faces, "hog-rot")


def _dlib_cnn(max_faces: int) -> Finder:
    from detector.finders.dlib_cnn import DlibCnnFinder, DlibCnnOptions

    return DlibCnnFinder(DlibCnnOptions(max_faces=max_faces))


def _mtcnn(max_faces: int) -> Finder:
    from detector.finders.mtcnn import MtcnnFinder, MtcnnOptions

    return MtcnnFinder(MtcnnOptions(max_faces=max_faces))


def _mtcnn_rot(max_faces: int) -> Finder:
    from detector.finders.rotated import RotatedPasses

    return RotatedPasses(_mtcnn(max_faces), ROTATIONS, max_faces, "mtcnn-rot")


def _blazeface(max_faces: int) -> Finder:
    from detector.finders.blazeface import BlazeFaceFinder, BlazeFaceOptions

    return BlazeFaceFinder(BlazeFaceOptions(max_faces=max_faces))


BUILDERS: dict[str, Callable[[int], Finder]] = {
    "hog": _hog,
    "hog-up": _hog_up,
    "hog-rot": _hog_rot,
    "dlib-cnn": _dlib_cnn,
    "mtcnn": _mtcnn,
    "mtcnn-rot": _mtcnn_rot,
    "blazeface": _blazeface,
}


def configured_finder() -> str:
    """The finder name an operator chose (``$DEEPFAKE_BOT_FACE_FINDER``), else the served one.
    Lets ``eval``/``train``/``calibrate`` crop with another finder without new options."""
    return os.environ.get(ENV) or SERVED


def make_finder(name: str | None = None, max_faces: int = 8) -> Finder:
    """The finder called ``name``; :class:`FinderUnavailable` when it is unknown or its package
    (or packaged weights) is not installed."""
    name = name or configured_finder()
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise FinderUnavailable(
            f"unknown face finder {name!r}: one of {', '.join(BUILDERS)}"
        ) from None
    try:
        return builder(max_faces)
    except ImportError as exc:
        raise FinderUnavailable(f"face finder {name!r} is not installed: {exc}") from exc
