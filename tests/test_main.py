"""``python -m toolkit``: the hypercorn command line it builds, and its help and errors."""

from __future__ import annotations

import pytest

import toolkit.__main__ as cli


@pytest.fixture
def hypercorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace hypercorn's CLI entry point with a recorder that exits with status 3."""
    calls: list[list[str]] = []

    def fake_hypercorn_main(argv: list[str]) -> int:
        calls.append(argv)
        return 3

    monkeypatch.setattr(cli, "hypercorn_main", fake_hypercorn_main)
    return calls


def test_serve_defaults_to_trio_worker_on_localhost_8000(hypercorn_calls: list[list[str]]) -> None:
    assert cli.main(["serve", "project.main:app"]) == 3
    assert hypercorn_calls == [
        ["--worker-class", "trio", "--bind", "127.0.0.1:8000", "project.main:app"]
    ]


def test_host_port_and_other_hypercorn_options_pass_through_in_order(
    hypercorn_calls: list[list[str]],
) -> None:
    cli.main(
        ["serve", "--workers", "2", "m:app", "--host", "::1", "--port", "0", "--reload", "-w", "3"]
    )
    assert hypercorn_calls == [
        [
            "--worker-class",
            "trio",
            "--bind",
            "[::1]:0",
            "--workers",
            "2",
            "m:app",
            "--reload",
            "-w",
            "3",
        ]
    ]


def test_bind_alone_replaces_the_default_bind(hypercorn_calls: list[list[str]]) -> None:
    cli.main(["serve", "m:app", "--bind", "unix:/tmp/app.sock"])
    cli.main(["serve", "m:app", "-b", "unix:/tmp/app.sock", "--port", "9000"])
    assert hypercorn_calls == [
        ["--worker-class", "trio", "--bind", "unix:/tmp/app.sock", "m:app"],
        [
            "--worker-class",
            "trio",
            "--bind",
            "127.0.0.1:9000",
            "--bind",
            "unix:/tmp/app.sock",
            "m:app",
        ],
    ]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["serve"], "the APP argument (module:app) is required"),
        (["serve", "m:app", "--port", "65536"], "65536 is not a port number"),
        (["serve", "m:app", "--port", "http"], "invalid port_number value: 'http'"),
        (["serve", "m:app", "-k", "asyncio"], "invalid choice: 'asyncio'"),
    ],
)
def test_bad_serve_arguments_exit_2_with_the_reason(
    argv: list[str],
    complaint: str,
    hypercorn_calls: list[list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err
    assert hypercorn_calls == []


def test_no_command_prints_help_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "serve an ASGI app with hypercorn's trio worker" in capsys.readouterr().err


def test_serve_help_explains_the_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "python -m toolkit serve APP [--host HOST] [--port PORT]" in help_text
    assert "Every other option is passed to hypercorn unchanged" in help_text
