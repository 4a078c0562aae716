"""toolkit: a trio-native, structured-concurrency web toolkit with Starlette's API."""

__version__ = "0.1.0"
