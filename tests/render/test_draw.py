"""`headwater.render.draw`: what lands on which pixels — boxes, translucent masks, keypoints, labels, flags,
placeholders — checked on real images decoded and drawn by Pillow."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from headwater.droplet import ClassAnnotation, ImageAnnotation, Instance, MultiInstance, encode_droplet
from headwater.droplet import Image as DropletImage
from headwater.droplet.geometry import Point, Rectangle
from headwater.droplet.schema import AttributeValue, BoundingBox, Keypoint, Segmentation
from headwater.render import RenderError, RenderOptions, class_colour, render

GREY = (128, 128, 128)


def png(size=(200, 100), colour=GREY) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def droplet(classes: dict[str, list[Instance]], groups: dict[str, list[MultiInstance]] | None = None):
    names = set(classes) | set(groups or {})
    return ImageAnnotation(DropletImage(["a.png"]), {
        n: ClassAnnotation(classes.get(n, []), (groups or {}).get(n, [])) for n in sorted(names)})


def box(x1, y1, x2, y2, confidence=None) -> Instance:
    return Instance(bounding_box=BoundingBox(Rectangle(Point(x1, y1), Point(x2, y2)), confidence=confidence))


NO_LABELS = RenderOptions(labels=False)


def test_a_box_has_its_colour_on_its_edges_and_not_inside():
    out = render(png(), droplet({"cat": [box(0.25, 0.2, 0.75, 0.8)]}), options=NO_LABELS)
    colour = class_colour("cat")
    img = out.image
    assert out.problem is None and out.flags == [] and img.size == (200, 100)
    # the rectangle spans x 50..149, y 20..79; the coloured line is inside those bounds
    for xy in [(50, 50), (149, 50), (100, 20), (100, 79), (51, 21)]:
        assert img.getpixel(xy) == colour, xy
    assert img.getpixel((100, 50)) == GREY  # inside: the image untouched
    assert img.getpixel((30, 50)) == GREY and img.getpixel((100, 5)) == GREY  # outside, away from the halo
    assert img.getpixel((49, 50)) == (0, 0, 0)  # the dark halo that keeps it readable on light images


def test_a_mask_fill_is_translucent_and_outlined():
    square = [[Point(0.2, 0.2), Point(0.8, 0.2), Point(0.8, 0.8), Point(0.2, 0.8)]]
    d = droplet({"road": [Instance(segmentation=Segmentation(square))]})
    img = render(png(colour=(0, 0, 255)), d, options=NO_LABELS).image
    inside = img.getpixel((100, 50))
    assert isinstance(inside, tuple)
    colour = class_colour("road")
    assert inside != colour and inside != (0, 0, 255)
    for got, over, under in zip(inside, colour, (0, 0, 255), strict=True):  # a blend of the two
        assert min(over, under) <= got <= max(over, under)
    assert img.getpixel((40, 50)) == colour  # the outline at x = 0.2 * 200
    assert img.getpixel((10, 50)) == (0, 0, 255)


def test_even_odd_polygons_leave_the_hole_clear():
    outer = [Point(0.1, 0.1), Point(0.9, 0.1), Point(0.9, 0.9), Point(0.1, 0.9)]
    hole = [Point(0.4, 0.4), Point(0.6, 0.4), Point(0.6, 0.6), Point(0.4, 0.6)]
    img = render(png(), droplet({"donut": [Instance(segmentation=Segmentation([outer, hole]))]}),
                 options=RenderOptions(labels=False)).image
    assert img.getpixel((100, 50)) == GREY  # in the hole
    assert img.getpixel((40, 30)) != GREY  # in the ring


def test_keypoints_visible_filled_occluded_hollow_absent_not_drawn():
    kps = {"nose": Keypoint(Point(0.25, 0.5)), "ear": Keypoint(Point(0.75, 0.5), occluded=True), "tail": None}
    d = droplet({"dog": [Instance(keypoints=kps)]})
    img = render(png(), d, options=NO_LABELS).image
    colour = class_colour("dog")
    assert img.getpixel((50, 50)) == colour  # a filled dot
    assert img.getpixel((150, 50)) == GREY  # a hollow ring: its centre shows the image …
    ring = [img.getpixel((150 + dx, 50)) for dx in range(-8, 9)]
    assert colour in ring  # … and the ring around it has the class colour
    hidden = render(png(), d, options=RenderOptions(labels=False, keypoints=False)).image
    assert hidden.getpixel((50, 50)) == GREY


def test_filters_classes_confidence_and_layers():
    d = droplet({"cat": [box(0.25, 0.2, 0.75, 0.8, confidence=0.3)], "dog": [box(0.05, 0.05, 0.2, 0.95)]})
    cat, dog = class_colour("cat"), class_colour("dog")
    only_dog = render(png(), d, options=RenderOptions(classes=frozenset({"dog"}), labels=False)).image
    assert only_dog.getpixel((50, 50)) == GREY and only_dog.getpixel((10, 50)) == dog
    confident = render(png(), d, options=RenderOptions(min_confidence=0.5, labels=False)).image
    assert confident.getpixel((50, 50)) == GREY and confident.getpixel((10, 50)) == dog  # no confidence: kept
    low = render(png(), d, options=RenderOptions(min_confidence=0.2, labels=False)).image
    assert low.getpixel((50, 50)) == cat
    assert render(png(), d, options=RenderOptions(boxes=False, labels=False)).image.tobytes() == \
        Image.open(io.BytesIO(png())).convert("RGB").tobytes()


def test_labels_draw_unicode_names_confidence_counts_and_attributes():
    inst = Instance(bounding_box=BoundingBox(Rectangle(Point(0.1, 0.4), Point(0.5, 0.9)), confidence=0.93),
                    attributes={"colour": [AttributeValue("rot", confidence=0.5)]})
    group = MultiInstance(bounding_box=BoundingBox(Rectangle(Point(0.6, 0.4), Point(0.9, 0.9))), count=12)
    d = droplet({"猫 Ölfass 🐈": [inst], "<img src=x onerror=alert(1)>": [box(0.6, 0.1, 0.9, 0.3)]},
                {"猫 Ölfass 🐈": [group]})
    plain = render(png((400, 300)), d, options=RenderOptions(labels=False)).image
    labelled = render(png((400, 300)), d, options=RenderOptions(attributes=True)).image
    without_attrs = render(png((400, 300)), d).image
    assert labelled.tobytes() != plain.tobytes() and labelled.tobytes() != without_attrs.tobytes()
    # the plate of the label sits just above the box, in the class colour
    assert labelled.getpixel((42, 118)) == class_colour("猫 Ölfass 🐈")


def test_a_multi_instance_box_is_dashed():
    d = droplet({}, {"crowd": [MultiInstance(bounding_box=BoundingBox(Rectangle(Point(0.1, 0.1), Point(0.9, 0.9))),
                                             count=3)]})
    img = render(png(), d, options=NO_LABELS).image
    top = [img.getpixel((x, 10)) for x in range(20, 180)]
    assert class_colour("crowd") in top and (0, 0, 0) in top  # colour dashes over the dark halo


def test_coordinates_outside_are_clipped_and_flagged():
    d = droplet({"cat": [box(0.5, -0.2, 1.3, 0.5)], "dog": [box(0.1, 0.1, 0.2, 0.2)]},
                {"dog": [MultiInstance(bounding_box=BoundingBox(Rectangle(Point(-1, 0), Point(0.5, 0.5))))]})
    out = render(png(), d, options=NO_LABELS)
    assert out.flags == ["cat instance 0: coordinates outside [0, 1], drawn clipped",
                         "dog multi-instance 0: coordinates outside [0, 1], drawn clipped"]
    assert out.image.getpixel((199, 25)) == class_colour("cat")  # the right edge at the image's border
    assert out.image.getpixel((150, 0)) == class_colour("cat")


@pytest.mark.parametrize("image, problem", [
    (None, "image missing"),
    (FileNotFoundError("pool://imgs/7.jpg: not in pool"), "image missing: pool://imgs/7.jpg: not in pool"),
    (b"\xff\xd8\xff\xe0 a JPEG header and nothing else", "not decodable: "),
    (b"", "not decodable: "),
])
def test_a_missing_or_bad_image_is_a_placeholder_naming_the_problem(image, problem):
    out = render(image, droplet({"cat": [box(0.1, 0.1, 0.5, 0.5)]}), max_size=96)
    assert out.problem is not None and out.problem.startswith(problem)
    assert out.image.size == (96, 96) and out.image.mode == "RGB"
    assert render(image, droplet({})).image.size == (256, 256)


def test_a_cut_jpeg_and_a_bad_droplet_are_placeholders_too():
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "JPEG")
    cut = render(buf.getvalue()[:200], encode_droplet(droplet({})), max_size=64)
    assert cut.problem is not None and cut.problem.startswith("not decodable")
    bad = render(png(), b'{"image": 3}', max_size=64)
    assert bad.problem is not None and bad.problem.startswith("droplet not decodable: $.image")


def test_bad_arguments_raise():
    with pytest.raises(RenderError, match="max_size must be a positive"):
        render(png(), droplet({}), max_size=0)


def test_other_image_modes_become_rgb():
    cases: list[tuple[str, int | tuple[int, ...]]] = [("L", 128), ("RGBA", (128, 128, 128, 255)), ("P", 3),
                                                      ("I;16", 300)]
    for mode, colour in cases:
        buf = io.BytesIO()
        Image.new(mode, (50, 40), colour).save(buf, "PNG")
        out = render(buf.getvalue(), droplet({"cat": [box(0.1, 0.1, 0.9, 0.9)]}), max_size=25)
        assert out.problem is None and out.image.mode == "RGB" and out.image.size == (25, 20), mode


def test_rendering_on_threads_gives_the_same_pixels():
    from concurrent.futures import ThreadPoolExecutor

    d = droplet({f"class {i} 猫": [box(0.1 * i, 0.1, 0.1 * i + 0.08, 0.9, confidence=0.5)] for i in range(9)})
    photo = png((300, 200))
    serial = render(photo, d).image.tobytes()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: render(photo, d).image.tobytes(), range(32)))
    assert all(r == serial for r in results)


def test_the_region_of_interest_is_outlined_in_white():
    region = [[Point(0.5, 0.0), Point(1.0, 0.0), Point(1.0, 1.0), Point(0.5, 1.0)]]
    d = ImageAnnotation(DropletImage(["a.png"]), {}, mask=region)
    img = render(png(), d).image
    assert img.getpixel((100, 50)) == (255, 255, 255) and img.getpixel((150, 50)) == GREY
    assert render(png(), d, options=RenderOptions(masks=False)).image.getpixel((100, 50)) == GREY
