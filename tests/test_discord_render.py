"""Core replies as Discord embeds: colours per band, per-face fields within Discord's limits,
and packing into messages that Discord accepts (10 embeds, 6000 characters, upload size)."""

from __future__ import annotations

from bot.core import error_reply, verdict_reply
from bot.discord_bot.render import COLOURS, NO_VERDICT, Rendered, files_of, pack, render
from detector.config import Band
from detector.errors import DetectorBusy

from .standins.fakes import analysis


def test_one_colour_per_band_and_grey_without_a_verdict() -> None:
    for p, band in ((0.1, Band.REAL), (0.5, Band.UNCERTAIN), (0.9, Band.FAKE)):
        assert render(verdict_reply(analysis(p))).embed.colour == COLOURS[band]
    refusal = render(error_reply(DetectorBusy("full")))
    assert refusal.embed.colour == NO_VERDICT and refusal.image is None
    assert refusal.embed.title == "Busy right now"
    assert refusal.embed.description == DetectorBusy.user_message


def test_single_face_has_no_fields_and_many_faces_stay_within_25_fields() -> None:
    assert render(verdict_reply(analysis(0.4))).embed.fields == []
    many = render(
        verdict_reply(
            analysis(*[0.1] * 31 + [0.95]),
        ),
        number=3,
    )
    fields = many.embed.fields
    assert len(fields) == 25
    assert fields[0].name == "Face 1 (left)" and fields[-1].value == "8 more faces"
    assert len(many.embed) <= 6000


def test_annotated_image_is_attached_under_a_unique_name() -> None:
    from dataclasses import replace

    verdict = replace(verdict_reply(analysis(0.9)), image=b"jpeg bytes")
    item = render(verdict, number=2, label="x" * 300, model="m", elapsed_s=1.234, link="https://l")
    assert item.embed.image.url == "attachment://annotated-2.jpg"
    assert item.embed.author.name is not None and len(item.embed.author.name) == 256
    assert item.embed.footer.text == "m · checked in 1.2 s"
    assert item.embed.url == "https://l"
    (file,) = files_of([item])
    assert file.filename == "annotated-2.jpg"


def _item(chars: int, image: int = 0) -> Rendered:
    from dataclasses import replace

    verdict = replace(verdict_reply(analysis(0.9)), image=b"x" * image if image else None)
    item = render(verdict)
    item.embed.description = "d" * chars
    return item


def test_pack_respects_discords_per_message_limits() -> None:
    assert [len(m) for m in pack([_item(10) for _ in range(23)], max_upload_bytes=10**6)] == [
        10,
        10,
        3,
    ]
    assert [len(m) for m in pack([_item(2500) for _ in range(5)], max_upload_bytes=10**6)] == [
        2,
        2,
        1,
    ]
    sizes = [len(m) for m in pack([_item(10, image=400) for _ in range(5)], max_upload_bytes=1000)]
    assert sizes == [2, 2, 1]
    (only,) = pack([_item(10, image=2000)], max_upload_bytes=1000)
    assert only[0].image is None and only[0].embed.image.url is None
    assert "too large to attach" in (only[0].embed.description or "")
