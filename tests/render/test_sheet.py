"""`headwater.render.sheet` and `.encoding`: contact sheet geometry, captions, flags; encoded formats."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from headwater.render import MEDIA_TYPES, Rendered, RenderError, RenderOptions, contact_sheet, encode, render
from headwater.render.sheet import sheet_size


def tile(colour="white", size=(300, 200), flags=()) -> Rendered:
    return Rendered(Image.new("RGB", size, colour), None, list(flags))


def test_sheet_dimensions_layout_and_empty_cells():
    sheet = contact_sheet([tile("white"), tile("red", (50, 80))], 3, 2, tile=100)
    assert sheet.size == (300, 200)
    assert sheet.getpixel((50, 50)) == (255, 255, 255)  # cell 0: fitted, centred
    assert sheet.getpixel((150, 50)) == (255, 0, 0)  # cell 1: small, not enlarged, centred
    assert sheet.getpixel((110, 50)) != (255, 0, 0)
    assert sheet.getpixel((250, 150)) == sheet.getpixel((5, 5))  # an empty cell: the background


def test_captions_add_a_band_and_flags_a_frame():
    captioned = contact_sheet([tile(), tile(flags=["cat instance 0: clipped"])], 2, 1, tile=128,
                              captions=["#0 a-very-long-uid-that-does-not-fit-the-cell-at-all", "#1 猫"])
    assert captioned.size == sheet_size(2, 1, tile=128, captions=True)
    assert captioned.size[1] > 128 and captioned.size[0] == 256
    assert captioned.getpixel((128, 64)) == (255, 140, 0)  # the flagged one's frame
    assert captioned.getpixel((0, 64)) != (255, 140, 0)


def test_sheet_refuses_what_does_not_fit():
    with pytest.raises(RenderError, match="do not fit a 1x1 grid"):
        contact_sheet([tile(), tile()], 1, 1)
    with pytest.raises(RenderError, match="cols must be a positive"):
        contact_sheet([], 0, 1)
    with pytest.raises(RenderError, match="1 captions for 2"):
        contact_sheet([tile(), tile()], 2, 1, captions=["x"])


def test_encode_formats():
    img = Image.new("RGB", (20, 10), "blue")
    for fmt in ("JPEG", "png", "WEBP", "jpg"):
        data = encode(img, fmt)
        back = Image.open(io.BytesIO(data))
        assert back.size == (20, 10) and MEDIA_TYPES[back.format or ""].startswith("image/")
    assert encode(Image.new("RGBA", (4, 4)), "JPEG")[:2] == b"\xff\xd8"
    with pytest.raises(RenderError, match="cannot encode 'GIF'"):
        encode(img, "GIF")
    with pytest.raises(RenderError, match="quality"):
        encode(img, "JPEG", quality=0)


def test_option_keys_differ_when_the_drawing_would():
    keys = {RenderOptions().key(), RenderOptions(labels=False).key(), RenderOptions(min_confidence=0.5).key(),
            RenderOptions(classes=frozenset({"cat"})).key(), RenderOptions(classes=frozenset({"dog"})).key(),
            RenderOptions(attributes=True).key(), RenderOptions(boxes=False, masks=False, keypoints=False,
                                                                labels=False).key()}
    assert len(keys) == 7
    assert RenderOptions(classes=frozenset({"a", "b"})).key() == RenderOptions(classes=frozenset({"b", "a"})).key()


def test_a_placeholder_fits_a_sheet_cell():
    bad = render(b"junk", b'{"image":{"paths":["x"]},"classes":{}}', max_size=64)
    assert bad.problem is not None
    assert contact_sheet([bad], 1, 1, tile=64).size == (64, 64)
