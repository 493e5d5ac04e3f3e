"""`headwater.render.thumbnails`: JPEGs decoded at reduced scale (draft) to the exact size, cheaply."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from headwater.render import RenderError, decode_image, render
from headwater.render.thumbnails import fit_size


def jpeg(size: tuple[int, int]) -> bytes:
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return jpeg((4000, 3000))


def test_sizes_keep_the_aspect_and_never_enlarge(photo):
    assert decode_image(photo, 256).size == (256, 192)
    assert decode_image(photo, 1000).size == (1000, 750)
    assert decode_image(jpeg((90, 300)), 100).size == (30, 100)
    assert decode_image(jpeg((64, 48)), 256).size == (64, 48)
    assert fit_size((4000, 3000), None) == (4000, 3000)
    with pytest.raises(RenderError):
        fit_size((10, 10), -1)


def test_the_draft_decode_costs_a_fraction_of_a_full_decode(photo):
    def best(fn) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    full = best(lambda: Image.open(io.BytesIO(photo)).convert("RGB"))
    thumb = best(lambda: decode_image(photo, 256))
    assert thumb < full / 3, (thumb, full)  # 1/8-scale DCT decode: typically ~10x less


def test_render_draws_at_output_scale_with_crisp_lines(photo):
    from headwater.droplet import decode_droplet
    from headwater.render import RenderOptions, class_colour

    d = decode_droplet(b'{"image":{"paths":["a.jpg"]},"classes":{"cat":{"instances":'
                       b'[{"boundingBox":{"rectangle":[[0.25,0.25],[0.75,0.75]]}}]}}}')
    out = render(photo, d, options=RenderOptions(labels=False), max_size=256)
    assert out.image.size == (256, 192)
    assert out.image.getpixel((64, 96)) == class_colour("cat")  # the exact colour: drawn after the resize
