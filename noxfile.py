"""Developer sessions: ``nox -s tests lint typecheck serve bench``."""

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff's checks and its formatter, in check mode."""
    session.install("ruff")
    session.run("ruff", "check", "toolkit", "tests", "examples", "benchmarks")
    session.run("ruff", "format", "--check", "toolkit", "tests", "examples", "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy, strict, on the package."""
    session.install("-e", ".[dev]")
    session.run("mypy", "toolkit")


@nox.session
def serve(session: nox.Session) -> None:
    """The example app on http://127.0.0.1:8000 with hypercorn's trio worker."""
    session.install("-e", ".[dev]")
    session.run(
        "hypercorn", "--worker-class", "trio", "--bind", "127.0.0.1:8000", "examples.hello:app"
    )


@nox.session
def bench(session: nox.Session) -> None:
    """In-process benchmark of toolkit against Starlette, same run."""
    session.install("-e", ".[dev,bench]")
    session.run("python", "benchmarks/inproc.py", *session.posargs)
