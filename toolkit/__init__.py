"""toolkit: a trio-native, structured-concurrency web toolkit with Starlette's API."""

from toolkit.applications import App
from toolkit.serving import serve

__version__ = "0.1.0"

__all__ = ["App", "__version__", "serve"]
