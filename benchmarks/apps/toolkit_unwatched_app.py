"""toolkit_app.py's routes in an App that watches nothing: no cancel-on-disconnect, no body timer.

Measured beside toolkit_app.py, it shows what the request scope's watching costs as a whole: with
``cancel_on_disconnect=False`` and ``body_timeout=None`` (and no deadline) no trio cancel scope is
entered for a request, so what is left is routing, the request, the response and the receiver.
"""

from toolkit.applications import App

from .toolkit_app import routes

app = App(routes=routes, cancel_on_disconnect=False, body_timeout=None)
