"""Options of `miroir` itself: --version, --log-level and --log-format (every miroir.* logger,
in this process and in the processes it starts), and the devnode's documented options."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from importlib.metadata import version

import orjson
import pytest

from miroir import logs
from miroir.cli import build_parser, main, set_up_logging


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"miroir {version('miroir')}\n"


def test_devnode_host_and_port_are_documented(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["devnode", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--host HOST address to listen on (default 127.0.0.1)" in help_text
    assert "--port PORT port to listen on (default 7700" in help_text


@pytest.mark.parametrize("argv", [["--log-level", "loud", "simulate"],
                                  ["--log-format", "xml", "simulate"]])
def test_unknown_log_settings_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.fixture
def own_logging(monkeypatch):
    """Run `set_up_logging` in this process and undo everything it changed afterwards."""
    miroir = logging.getLogger(logs.ROOT_LOGGER)
    monkeypatch.setattr(miroir, "handlers", [])
    monkeypatch.setattr(miroir, "level", miroir.level)
    monkeypatch.setattr(logs, "_handler", None)
    for name in (logs.LEVEL_ENV, logs.FORMAT_ENV):
        monkeypatch.setenv(name, "")  # restored (removed) after the test
    yield
    miroir.manager._clear_cache()


def test_the_options_set_up_every_miroir_logger_and_the_environment(own_logging, monkeypatch):
    # pytest puts its own sys.stderr in place as the test starts, so this one goes in here.
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    set_up_logging(build_parser().parse_args(
        ["--log-level", "warning", "--log-format", "json", "simulate"]))
    logging.getLogger("miroir.repair").warning("node %s stays joining", "n1")
    logging.getLogger("miroir.tasks").info("not shown at warning")
    logging.getLogger("miroir.access").info("not shown either")
    logging.getLogger("elsewhere").warning("not Miroir's")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("warning", "miroir.repair", "node n1 stays joining")
    ]
    assert (os.environ[logs.LEVEL_ENV], os.environ[logs.FORMAT_ENV]) == ("warning", "json")


WORKER = """
import logging
from miroir.proxy.access_log import ensure_output, log_request
ensure_output()  # what the app does when a worker process starts serving
logging.getLogger("miroir.repair").info("node n1 re-provisioned and caught up")
log_request("GET", "/health", 200, 0.002, "10.0.0.9")
logging.getLogger("miroir.store").debug("debug line")
"""


@pytest.mark.parametrize(("fmt", "level"), [("json", "info"), ("text", "debug"),
                                            ("json", "warning")])
def test_a_worker_process_follows_the_exported_settings(fmt, level):
    env = {**os.environ, logs.FORMAT_ENV: fmt, logs.LEVEL_ENV: level}
    run = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    lines = run.stderr.splitlines()
    expected = {"debug": 3, "info": 2, "warning": 0}[level]
    assert len(lines) == expected, run.stderr
    if not lines:
        return
    if fmt == "json":
        parsed = [orjson.loads(line) for line in lines]
        assert parsed[0]["logger"] == "miroir.repair"
        assert parsed[0]["message"] == "node n1 re-provisioned and caught up"
        assert {k: v for k, v in parsed[1].items() if k != "time"} == {
            "method": "GET", "path": "/health", "status": 200, "duration_ms": 2.0,
            "remote": "10.0.0.9"}
    else:
        assert lines[0].endswith(" INFO miroir.repair: node n1 re-provisioned and caught up")
        assert lines[1].endswith(" INFO miroir.access: GET /health 200 2.0 ms 10.0.0.9")
    if level == "debug":
        assert "debug line" in lines[2]
