"""The web viewer's parts (its routes are :mod:`headwater.server.routes.viewer`, under ``/view/``).

Server-rendered HTML (Jinja2, autoescaped) with one small script and one stylesheet of its own — no CDN, no
Node build — so it works on a machine without internet access.

* :mod:`.state` — what the viewer owns per app; :mod:`.access` — the caller (Bearer or session cookie);
* :mod:`.sessions` — signed, expiring sign-in cookies and their secret; :mod:`.headers` — CSP and friends;
* :mod:`.samples` — droplets and images of a split, thumbnails; :mod:`.thumbnails` — the render pool and LRU;
* :mod:`.pages` — templates, static files, links; :mod:`.charts` — the statistics page's SVG;
* ``templates/`` and ``static/`` — package data.
"""

__all__: list[str] = []
