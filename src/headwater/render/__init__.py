"""Layer 8 (looking): droplets drawn on their images — thumbnails, single renderings, contact sheets.

Below the client and the server (both use it: ``headwater render`` and the viewer's thumbnails), above
publishing; it needs only the droplet layer (the structs and their decoder) and Pillow.

* :mod:`.options` — :class:`RenderOptions`: what to draw (classes, minimum confidence, layers);
* :mod:`.colours` — :func:`class_colour`: one stable colour per class name;
* :mod:`.thumbnails` — :func:`decode_image`: JPEGs decoded at reduced scale (``Image.draft``);
* :mod:`.draw` — :func:`render` → :class:`Rendered`: the overlay, flags for clipped coordinates;
* :mod:`.placeholder` — the tile drawn for a missing or undecodable image;
* :mod:`.sheet` — :func:`contact_sheet`; :mod:`.encoding` — :func:`encode` to JPEG/PNG/WEBP bytes.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (640, 480), "white").save(buf, "JPEG")
    >>> d = (b'{"image":{"paths":["a.jpg"]},"classes":{"cat":{"instances":'
    ...      b'[{"boundingBox":{"rectangle":[[0.1,0.2],[0.5,0.9]]}}]}}}')
    >>> thumb = render(buf.getvalue(), d, options=RenderOptions(labels=False), max_size=128)
    >>> thumb.image.size, thumb.image.getpixel((13, 40)) == class_colour("cat")
    ((128, 96), True)
    >>> encode(contact_sheet([thumb], 2, 1, tile=128), "PNG")[:4]
    b'\\x89PNG'
"""

from .colours import class_colour, class_colour_hex
from .draw import Rendered, render
from .encoding import MEDIA_TYPES, encode
from .errors import RenderError
from .options import RenderOptions
from .sheet import contact_sheet
from .thumbnails import decode_image

__all__ = [
    "MEDIA_TYPES",
    "RenderError",
    "RenderOptions",
    "Rendered",
    "class_colour",
    "class_colour_hex",
    "contact_sheet",
    "decode_image",
    "encode",
    "render",
]
