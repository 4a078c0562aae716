"""toolkit_app.py's routes in an App built with ``cancel_on_disconnect=False``.

Measured beside toolkit_app.py, it shows what watching for a client's disconnect costs: the
request scope is otherwise the same (cancel scope, receiver, exit stack, background tasks).
"""

from toolkit.applications import App

from .toolkit_app import routes

app = App(routes=routes, cancel_on_disconnect=False)
