"""Layer 4: droplets (datatap's ``ImageAnnotation`` JSON) and their templates, geometry and images.

* :mod:`.schema` — the droplet structs (the wire format itself, via msgspec);
* :mod:`.codec` — fast decode/encode (:func:`decode_droplet`, :func:`encode_droplet`, streams of blocks);
* :mod:`.ndjson` — NDJSON framing: bytes cut anywhere → blocks of whole lines, lines, limits;
* :mod:`.template` — ``ImageAnnotationTemplate`` and friends, :func:`infer_template`, :func:`merge_templates`;
* :mod:`.validate` — :func:`validate_droplet`: geometry and template rules, errors with JSON paths;
* :mod:`.geometry` — ``Point``, ``Rectangle``, ``Polygon``, ``Mask`` with exact areas and IoU;
* :mod:`.refs` — ``pool://{pool}/{key}`` image references and :class:`ImageFetcher`.

Example:
    >>> d = decode_droplet('{"kind":"ImageAnnotation","image":{"paths":["pool://imgs/7.jpg"]},'
    ...                    '"classes":{"cat":{"instances":[{"boundingBox":{"rectangle":[[0.1,0.2],[0.5,0.9]]}}]}}}')
    >>> t = infer_template([d])
    >>> validate_droplet(d, t)
    >>> parse_image_ref(d.image.paths[0]).pool
    'imgs'
"""

from .codec import (
    decode_droplet,
    decode_droplet_blocks,
    decode_droplet_lines,
    droplet_from_builtins,
    encode_droplet,
    encode_droplet_lines,
)
from .errors import DropletError, ImageFetchError, ImageRefError, TemplateError
from .geometry import Mask, Point, Polygon, Rectangle
from .refs import POOL_SCHEME, ImageFetcher, ImageRef, format_image_ref, parse_image_ref
from .schema import (
    AttributeValue,
    BoundingBox,
    ClassAnnotation,
    Image,
    ImageAnnotation,
    Instance,
    Keypoint,
    MultiInstance,
    Segmentation,
)
from .template import (
    ClassAnnotationTemplate,
    ImageAnnotationTemplate,
    InstanceTemplate,
    MultiInstanceTemplate,
    decode_template,
    encode_template,
    infer_template,
    merge_templates,
)
from .validate import DropletValidator, iter_droplet_errors, validate_droplet

__all__ = [
    "POOL_SCHEME",
    "AttributeValue",
    "BoundingBox",
    "ClassAnnotation",
    "ClassAnnotationTemplate",
    "DropletError",
    "DropletValidator",
    "Image",
    "ImageAnnotation",
    "ImageAnnotationTemplate",
    "ImageFetchError",
    "ImageFetcher",
    "ImageRef",
    "ImageRefError",
    "Instance",
    "InstanceTemplate",
    "Keypoint",
    "Mask",
    "MultiInstance",
    "MultiInstanceTemplate",
    "Point",
    "Polygon",
    "Rectangle",
    "Segmentation",
    "TemplateError",
    "decode_droplet",
    "decode_droplet_blocks",
    "decode_droplet_lines",
    "decode_template",
    "droplet_from_builtins",
    "encode_droplet",
    "encode_droplet_lines",
    "encode_template",
    "format_image_ref",
    "infer_template",
    "merge_templates",
    "iter_droplet_errors",
    "parse_image_ref",
    "validate_droplet",
]
