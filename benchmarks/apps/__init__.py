"""The benchmark app written once per framework, each module exposing an ASGI callable ``app``.

The harnesses name the frameworks by the short keys of ``FRAMEWORKS``. ``toolkit_nocancel`` is
toolkit's app with cancel-on-disconnect turned off, ``toolkit_unwatched`` with the body timer off
too: variants rather than frameworks.
"""

import importlib
from typing import Any

FRAMEWORKS = {
    "bare": "benchmarks.apps.bare_app",
    "starlette": "benchmarks.apps.starlette_app",
    "toolkit": "benchmarks.apps.toolkit_app",
    "toolkit_nocancel": "benchmarks.apps.toolkit_nocancel_app",
    "toolkit_unwatched": "benchmarks.apps.toolkit_unwatched_app",
}


def load_apps(frameworks: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Import each framework's app; return the apps, and why the others could not be loaded.

    Any exception counts as "not available yet": toolkit is written alongside these benchmarks,
    so a missing module or a constructor that does not take ``routes=`` yet must not stop a run.
    """
    apps, unavailable = {}, {}
    for framework in frameworks:
        try:
            apps[framework] = importlib.import_module(FRAMEWORKS[framework]).app
        except Exception as exc:
            unavailable[framework] = f"not importable yet ({type(exc).__name__}: {exc})"
    return apps, unavailable
