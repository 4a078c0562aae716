"""A static site: ``python -m toolkit serve examples.static_site.app:app``, then open
http://127.0.0.1:8000/.

``site/`` is served with ``html=True``: ``/`` and ``/about/`` serve their ``index.html``,
``/about`` redirects to ``/about/``, and any other miss gets ``site/404.html`` with a 404.
"""

from pathlib import Path

from toolkit.applications import App
from toolkit.routing import Mount
from toolkit.staticfiles import StaticFiles

SITE = Path(__file__).with_name("site")

app = App(routes=[Mount("/", StaticFiles(directory=SITE, html=True), name="site")])
