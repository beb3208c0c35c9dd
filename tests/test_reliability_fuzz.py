"""Issue 16: property-based fuzzing of the decode path. Hypothesis mutates real encodings of
every allowed format (bytes overwritten, bits flipped, spans cut or repeated, header fields set
to extremes) and checks the decoder either returns a well-formed picture or raises a typed
``ImageError`` with a user message: never anything else. A fixed example budget in CI;
``RELIABILITY_LONG=1`` raises it (``scripts/reliability``)."""

from __future__ import annotations

import functools
import os
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.errors import ImageError
from detector.images import decode_image

from .reliability import corpus

LONG = os.environ.get("RELIABILITY_LONG") == "1"
BUDGET = 3000 if LONG else 150

_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"] + (
    ["HEIF"] if corpus.heif_encoder_available() else []
)


@functools.cache
def _base(fmt: str) -> bytes:
    return corpus.encode(corpus.face_picture(64), fmt)


_edit = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 4095), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.integers(1, 4096)),
    st.tuples(st.just("repeat"), st.integers(0, 4095), st.integers(1, 512)),
    st.tuples(st.just("extreme"), st.integers(0, 255), st.sampled_from([b"\xff\xff", b"\0\0",
                                                                         b"\x7f\xff\xff\xff"])),
)  # fmt: skip


def _apply(data: bytes, edits: list[tuple[object, ...]]) -> bytes:
    out = bytearray(data)
    for kind, a, b in edits:
        assert isinstance(a, int)
        if not out:
            break
        at = a % len(out)
        if kind in {"set", "extreme"}:
            assert isinstance(b, bytes)
            out[at : at + len(b)] = b
        elif kind == "flip":
            assert isinstance(b, int)
            out[at] ^= 1 << b
        elif kind == "cut":
            assert isinstance(b, int)
            del out[at : at + b]
        else:
            assert isinstance(b, int)
            out[at:at] = out[at : at + b]
    return bytes(out)


@settings(max_examples=BUDGET, deadline=None, derandomize=not LONG,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(fmt=st.sampled_from(_FORMATS), edits=st.lists(_edit, min_size=1, max_size=6))
def test_mutated_images_decode_or_raise_a_typed_error(
    fmt: str, edits: list[tuple[object, ...]]
) -> None:
    data = _apply(_base(fmt), edits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = decode_image(data)
        except ImageError as err:
            assert err.user_message.strip()
            return
    assert result.rgb.dtype == np.uint8 and result.rgb.ndim == 3 and result.rgb.shape[2] == 3
    assert (result.height, result.width) == result.rgb.shape[:2]
    assert not result.rgb.flags.writeable

