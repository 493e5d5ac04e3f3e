"""Drawing a droplet on its image: :func:`render` → :class:`Rendered`.

What is drawn, in this order so nothing hides what matters more: segmentation fills (translucent, so the
object stays visible), then outlines and boxes, keypoints, and last the labels (class name, confidence,
counts, attributes on request). Every class has its :func:`~headwater.render.colours.class_colour`;
every line and dot has a dark halo and every label a filled plate, so they read on dark and light images.

* Boxes are solid; a multi-instance box (a crowd) is dashed and labelled ``name ×count``.
* The droplet's region of interest (its ``mask``), when it has one, is a white outline.
* Keypoints are dots with their names; an occluded keypoint is a hollow ring; an absent one (``null``)
  is not drawn.
* A coordinate outside [0, 1] is clipped to the image and the droplet is flagged
  (:attr:`Rendered.flags` names the class and the instance), so a broken droplet is drawn and seen
  rather than refused.
* An image that is missing or cannot be decoded gives a placeholder tile naming the problem
  (:attr:`Rendered.problem`); :func:`render` never raises for it.

The overlay is drawn at the output scale (after the reduced-scale decode of :mod:`.thumbnails`), so
a thumbnail's lines are as crisp as a full-size rendering's.

Example:
    >>> import PIL.Image
    >>> from headwater.droplet import BoundingBox, ClassAnnotation, Image, Instance, Rectangle
    >>> from headwater.render import encode
    >>> photo = encode(PIL.Image.new("RGB", (400, 300), "gray"), "JPEG")
    >>> box = BoundingBox(Rectangle(Point(0.1, 0.1), Point(0.6, 1.2)), confidence=0.9)
    >>> droplet = ImageAnnotation(Image(["pool://imgs/1.jpg"]), {"cat": ClassAnnotation([Instance(bounding_box=box)])})
    >>> out = render(photo, droplet, max_size=200)
    >>> out.image.size, out.problem, out.flags
    ((200, 150), None, ['cat instance 0: coordinates outside [0, 1], drawn clipped'])
    >>> render(b"not an image", droplet, max_size=64).problem
    'not decodable: cannot identify image file'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageDraw

from ..droplet import (
    BoundingBox,
    DropletError,
    ImageAnnotation,
    Instance,
    MultiInstance,
    Point,
    Segmentation,
    decode_droplet,
)
from .colours import class_colour, text_colour
from .fonts import Font, label_font, printable, text_size
from .options import RenderOptions
from .placeholder import placeholder_tile
from .thumbnails import decode_image, fit_size

__all__ = ["Rendered", "render", "draw_droplet"]

_HALO = (0, 0, 0)
_REGION = (255, 255, 255)  # the outline of the droplet's region of interest
_FILL_ALPHA = 96  # of 255: the object stays visible under its mask
_DEFAULT_TILE = 256
_STREAM_REPR = re.compile(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>")  # Pillow names the stream it read

Colour = tuple[int, int, int]
XY = tuple[float, float]


@dataclass
class Rendered:
    """A rendering: the RGB ``image``; ``problem`` when the image could not be used (then ``image`` is a
    placeholder tile naming it); ``flags``: what was wrong with the droplet but drawn anyway."""

    image: Image.Image
    problem: str | None = None
    flags: list[str] = field(default_factory=list)


def render(image: bytes | BaseException | None, droplet: ImageAnnotation | bytes, *,
           options: RenderOptions = RenderOptions(), max_size: int | None = None) -> Rendered:  # noqa: B008 - frozen
    """Draw ``droplet`` on ``image`` (its encoded bytes), the longer side at most ``max_size`` pixels.

    ``image`` may also be the exception that reading it raised, or None when there is none: the result is
    then a placeholder tile (``max_size`` square, 256 when None) whose ``problem`` says why, as for bytes
    that do not decode and a droplet (given as JSON bytes) that does not parse. Raises only for bad
    arguments (:class:`~headwater.render.RenderError`, e.g. ``max_size=0``).
    """
    fit_size((1, 1), max_size)  # check max_size before anything can hide a bad one behind a placeholder
    tile = max_size or _DEFAULT_TILE
    if not isinstance(droplet, ImageAnnotation):
        try:
            droplet = decode_droplet(droplet)
        except DropletError as err:
            return _placeholder(f"droplet not decodable: {err}", tile)
    if image is None:
        return _placeholder("image missing", tile)
    if isinstance(image, BaseException):
        return _placeholder(f"image missing: {image}", tile)
    try:
        picture = decode_image(bytes(image), max_size)
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise many kinds for damaged bytes
        reason = _STREAM_REPR.sub("", str(err)).strip() or type(err).__name__
        return _placeholder(f"not decodable: {reason}", tile)
    flags = draw_droplet(picture, droplet, options)
    return Rendered(picture, None, flags)


def _placeholder(problem: str, size: int) -> Rendered:
    return Rendered(placeholder_tile(problem, size), problem, [])


def draw_droplet(image: Image.Image, droplet: ImageAnnotation, options: RenderOptions = RenderOptions()  # noqa: B008
                 ) -> list[str]:
    """Draw ``droplet`` onto the RGB ``image`` in place, at its size; returns the flags (see :class:`Rendered`)."""
    canvas = _Canvas(image, options)
    if droplet.mask and options.masks:  # the region of interest: only what lies inside it was annotated
        clipped = [False]
        canvas.outlines.extend((_REGION, [canvas.xy(p, clipped) for p in polygon])
                               for polygon in droplet.mask if polygon)
        if clipped[0]:
            canvas.flags.append("region of interest (mask): coordinates outside [0, 1], drawn clipped")
    for name, annotation in droplet.classes.items():
        if not options.shows(name):
            continue
        colour = class_colour(name)
        for i, instance in enumerate(annotation.instances):
            canvas.add_instance(name, f"{name} instance {i}", colour, instance)
        for i, group in enumerate(annotation.multi_instances):
            canvas.add_group(name, f"{name} multi-instance {i}", colour, group)
    canvas.finish()
    return canvas.flags


@dataclass
class _Label:
    anchor: tuple[int, int, int, int]  # the box it belongs to, in pixels
    lines: list[str]
    colour: Colour


class _Canvas:
    """One droplet's overlay: collects what to draw, then draws fills, lines, keypoints and labels in order."""

    def __init__(self, image: Image.Image, options: RenderOptions) -> None:
        self.image = image
        self.options = options
        self.width, self.height = image.size
        longest = max(self.width, self.height)
        self.line = max(2, round(longest / 400))
        self.font = label_font(max(10, min(22, round(longest / 40))))
        self.small_font = label_font(max(9, min(16, round(longest / 60))))
        self.flags: list[str] = []
        self.fills: list[tuple[Colour, list[list[XY]]]] = []
        self.outlines: list[tuple[Colour, list[XY]]] = []
        self.boxes: list[tuple[Colour, tuple[int, int, int, int], bool]] = []
        self.points: list[tuple[Colour, XY, bool, str]] = []
        self.labels: list[_Label] = []

    # -- collecting --------------------------------------------------------------------------------------
    def xy(self, point: Point, clipped: list[bool]) -> XY:
        x, y = point.x, point.y
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            clipped[0] = True
            x, y = min(1.0, max(0.0, x)), min(1.0, max(0.0, y))
        return x * self.width, y * self.height

    def _box(self, box: BoundingBox, clipped: list[bool]) -> tuple[int, int, int, int]:
        (ax, ay), (bx, by) = self.xy(box.rectangle.p1, clipped), self.xy(box.rectangle.p2, clipped)
        x0, x1 = sorted((ax, bx))
        y0, y1 = sorted((ay, by))
        left, top = min(self.width - 1, round(x0)), min(self.height - 1, round(y0))
        return left, top, max(left, round(x1) - 1), max(top, round(y1) - 1)

    def _shape(self, segmentation: Segmentation, colour: Colour, clipped: list[bool]) -> tuple[int, int, int, int]:
        polygons = [[self.xy(p, clipped) for p in polygon] for polygon in segmentation.mask]
        polygons = [p for p in polygons if p]
        self.fills.append((colour, [p for p in polygons if len(p) >= 3]))
        self.outlines.extend((colour, p) for p in polygons)
        xs = [x for p in polygons for x, _ in p] or [0.0]
        ys = [y for p in polygons for _, y in p] or [0.0]
        return round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys))

    def add_instance(self, name: str, what: str, colour: Colour, instance: Instance) -> None:
        opts, clipped = self.options, [False]
        anchor: tuple[int, int, int, int] | None = None
        confidence = None
        box = instance.bounding_box
        if box is not None and opts.boxes and opts.passes(box.confidence):
            anchor = self._box(box, clipped)
            self.boxes.append((colour, anchor, False))
            confidence = box.confidence
        seg = instance.segmentation
        if seg is not None and opts.masks and opts.passes(seg.confidence):
            shape = self._shape(seg, colour, clipped)
            if anchor is None:
                anchor, confidence = shape, seg.confidence
        if instance.keypoints and opts.keypoints:
            for kp_name, kp in instance.keypoints.items():
                if kp is None or not opts.passes(kp.confidence):
                    continue
                xy = self.xy(kp.point, clipped)
                self.points.append((colour, xy, kp.occluded is True, kp_name))
                if anchor is None:
                    anchor = (round(xy[0]), round(xy[1]), round(xy[0]), round(xy[1]))
        if clipped[0]:
            self.flags.append(f"{what}: coordinates outside [0, 1], drawn clipped")
        if anchor is not None and opts.labels:
            lines = [name if confidence is None else f"{name} {confidence:.2f}"]
            if opts.attributes and instance.attributes:
                for key, values in instance.attributes.items():
                    shown = ", ".join(v.value if v.confidence is None else f"{v.value} ({v.confidence:.2f})"
                                      for v in values)
                    lines.append(f"{key}: {shown}")
            self.labels.append(_Label(anchor, lines, colour))

    def add_group(self, name: str, what: str, colour: Colour, group: MultiInstance) -> None:
        opts, clipped = self.options, [False]
        anchor: tuple[int, int, int, int] | None = None
        box = group.bounding_box
        if box is not None and opts.boxes and opts.passes(box.confidence):
            anchor = self._box(box, clipped)
            self.boxes.append((colour, anchor, True))
        seg = group.segmentation
        if seg is not None and opts.masks and opts.passes(seg.confidence):
            shape = self._shape(seg, colour, clipped)
            anchor = anchor or shape
        if clipped[0]:
            self.flags.append(f"{what}: coordinates outside [0, 1], drawn clipped")
        if anchor is not None and opts.labels:
            count = f"×{group.count}" if group.count is not None else "(group)"
            self.labels.append(_Label(anchor, [f"{name} {count}"], colour))

    # -- drawing -----------------------------------------------------------------------------------------
    def finish(self) -> None:
        if self.fills:
            self._draw_fills()
        draw = ImageDraw.Draw(self.image)
        for colour, points in self.outlines:
            closed = [*points, points[0]] if len(points) > 2 else points
            if len(closed) == 1:
                closed = closed * 2
            draw.line(closed, fill=_HALO, width=self.line + 2, joint="curve")
            draw.line(closed, fill=colour, width=self.line, joint="curve")
        for colour, (x0, y0, x1, y1), dashed in self.boxes:
            draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], outline=_HALO, width=self.line + 2)
            if dashed:
                self._dashed_rectangle(draw, (x0, y0, x1, y1), colour)
            else:
                draw.rectangle([x0, y0, x1, y1], outline=colour, width=self.line)
        radius = self.line + 2
        for colour, (x, y), occluded, _ in self.points:
            ring = [x - radius, y - radius, x + radius, y + radius]
            if occluded:  # hollow: a coloured ring between two dark ones
                draw.ellipse([x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1], outline=_HALO,
                             width=max(1, self.line // 2) + 2)
                draw.ellipse(ring, outline=colour, width=max(1, self.line // 2))
            else:
                draw.ellipse(ring, fill=colour, outline=_HALO, width=1)
        if self.options.labels:
            for colour, (x, y), _, name in self.points:
                self._text(draw, (round(x) + radius + 2, round(y) - radius), name, colour, self.small_font)
            for label in self.labels:
                self._plate(draw, label)

    def _draw_fills(self) -> None:
        layer = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for colour, polygons in self.fills:
            rgba = (*colour, _FILL_ALPHA)
            if len(polygons) == 1:
                draw.polygon(polygons[0], fill=rgba)
            elif polygons:  # even-odd: a point inside two of the polygons is in a hole
                region = Image.new("1", self.image.size, 0)
                for polygon in polygons:
                    one = Image.new("1", self.image.size, 0)
                    ImageDraw.Draw(one).polygon(polygon, fill=1)
                    region = ImageChops.logical_xor(region, one)
                layer.paste(rgba, mask=region)
        base = self.image.convert("RGBA")
        self.image.paste(Image.alpha_composite(base, layer).convert("RGB"))

    def _dashed_rectangle(self, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], colour: Colour) -> None:
        x0, y0, x1, y1 = box
        dash, gap, w = 3 * self.line + 2, 2 * self.line + 1, self.line
        for start in range(x0, x1 + 1, dash + gap):
            end = min(x1, start + dash - 1)
            draw.rectangle([start, y0, end, y0 + w - 1], fill=colour)
            draw.rectangle([start, y1 - w + 1, end, y1], fill=colour)
        for start in range(y0, y1 + 1, dash + gap):
            end = min(y1, start + dash - 1)
            draw.rectangle([x0, start, x0 + w - 1, end], fill=colour)
            draw.rectangle([x1 - w + 1, start, x1, end], fill=colour)

    def _text(self, draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, colour: Colour, font: Font) -> None:
        text = printable(font, text)
        w, h = text_size(font, text)
        x = min(max(0, xy[0]), max(0, self.width - w))
        y = min(max(0, xy[1]), max(0, self.height - h))
        left, top = font.getbbox(text)[:2]
        draw.text((x - min(left, 0), y - min(top, 0)), text, font=font, fill=colour, stroke_width=1,
                  stroke_fill=_HALO)

    def _plate(self, draw: ImageDraw.ImageDraw, label: _Label) -> None:
        """The label on a plate of the class colour, above the box when it fits there, else inside it."""
        font = self.font
        lines = [printable(font, line) for line in label.lines]
        boxes = [font.getbbox(line) for line in lines]  # one layout per line (drawing lays it out again)
        pad = 2
        w = int(max(right - min(left, 0) for left, _, right, _ in boxes)) + 2 * pad
        line_h = int(max(bottom - min(top, 0) for _, top, _, bottom in boxes)) + 1
        h = line_h * len(lines) + 2 * pad
        x0, y0 = label.anchor[0], label.anchor[1]
        y = y0 - h if y0 - h >= 0 else y0
        x = min(max(0, x0), max(0, self.width - w))
        y = min(max(0, y), max(0, self.height - h))
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=label.colour, outline=_HALO, width=1)
        ink = text_colour(label.colour)
        for i, (line, (left, top, _, _)) in enumerate(zip(lines, boxes, strict=True)):
            draw.text((x + pad - min(left, 0), y + pad + i * line_h - min(top, 0)), line, font=font, fill=ink)
