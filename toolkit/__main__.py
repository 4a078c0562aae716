"""``python -m toolkit serve module:app``: run an app on hypercorn's trio worker.

toolkit adds only ``--host``/``--port`` and pins the worker class to trio; every other option
goes to hypercorn's own command line unchanged, so its whole feature set stays available.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hypercorn.__main__ import main as hypercorn_main

PROG = "python -m toolkit"

SERVE_EPILOG = """\
Every other option is passed to hypercorn unchanged, for example --workers N, --reload,
--graceful-timeout S, --keep-alive S, --certfile/--keyfile, --root-path, --access-logfile -
(see `python -m hypercorn --help` for the full list).
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process arguments) and run the chosen command."""
    parser, serve_parser = _build_parsers()
    args, hypercorn_args = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if not hypercorn_args:
        serve_parser.error("the APP argument (module:app) is required")
    return int(hypercorn_main(hypercorn_argv(args, hypercorn_args)))


def hypercorn_argv(args: argparse.Namespace, passthrough: Sequence[str]) -> list[str]:
    """Build hypercorn's command line from the parsed ``serve`` options and the other arguments."""
    argv = ["--worker-class", "trio"]
    if args.host is not None or args.port is not None or not args.binds:
        host = "127.0.0.1" if args.host is None else args.host
        port = 8000 if args.port is None else args.port
        argv += ["--bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    for bind in args.binds:
        argv += ["--bind", bind]
    return [*argv, *passthrough]


def _build_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog=PROG, description="toolkit's command line.")
    commands = parser.add_subparsers(dest="command", title="commands")
    serve = commands.add_parser(
        "serve",
        help="serve an ASGI app with hypercorn's trio worker",
        usage=f"{PROG} serve APP [--host HOST] [--port PORT] [hypercorn options]",
        description="Serve APP (module:attribute, e.g. myproject.main:app) on hypercorn's trio "
        "worker. SIGINT or SIGTERM shuts it down gracefully.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=port_number, help="port to listen on (default: 8000)")
    serve.add_argument(
        "-b",
        "--bind",
        dest="binds",
        metavar="BIND",
        action="append",
        default=[],
        help="extra hypercorn bind (host:port, unix:PATH or fd://N); may be repeated. "
        "Given alone, it replaces the default --host/--port bind.",
    )
    serve.add_argument(
        "-k",
        "--worker-class",
        choices=["trio"],
        default="trio",
        help="always trio: toolkit runs on trio only",
    )
    return parser, serve


def port_number(text: str) -> int:
    """Parse a TCP port for ``--port``; 0 lets the system pick a free one."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0-65535)")
    return port


if __name__ == "__main__":
    sys.exit(main())
