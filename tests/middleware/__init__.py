"""Tests of toolkit.middleware: the error layers every app is wrapped in."""
