"""The access log writes the same line whether it goes straight to its own handler's stream or
through `logging`, and it never bypasses a handler or filter somebody else configured."""

from __future__ import annotations

import io
import logging
import sys

import orjson
import pytest

from miroir import logs
from miroir.proxy import access_log


@pytest.fixture
def fresh_access_logger(monkeypatch):
    """The access logger as a plain `miroir serve` process starts: no handlers anywhere."""
    logger = access_log.logger
    root = logging.getLogger()
    miroir = logging.getLogger(logs.ROOT_LOGGER)
    for each in (logger, miroir):
        monkeypatch.setattr(each, "handlers", [])
        monkeypatch.setattr(each, "filters", [])
        monkeypatch.setattr(each, "level", logging.NOTSET)
    monkeypatch.setattr(logs, "_handler", None)
    monkeypatch.delenv(logs.LEVEL_ENV, raising=False)
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    logger.manager._clear_cache()
    stream = io.StringIO()

    def start() -> None:
        # pytest hangs its capture handlers on the root logger and its own sys.stderr as each
        # test phase begins, so both are replaced here, inside the test, and put back after.
        monkeypatch.setattr(root, "handlers", [])
        monkeypatch.setattr(sys, "stderr", stream)
        access_log.ensure_output()

    yield logger, stream, start
    logger.manager._clear_cache()


def one_line(stream: io.StringIO) -> dict:
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1, text
    return orjson.loads(text)


def test_the_direct_line_equals_the_logged_line(fresh_access_logger):
    logger, stream, start = fresh_access_logger
    start()
    access_log.log_request("POST", "/indexes/movies/search", 200, 0.0123456, "10.0.0.1")
    direct = one_line(stream)

    # A pass-through filter forces the `logging` path; the stream must get the same line.
    stream.seek(0)
    stream.truncate()
    logger.addFilter(lambda record: True)
    access_log.log_request("POST", "/indexes/movies/search", 200, 0.0123456, "10.0.0.1")
    logged = one_line(stream)

    assert direct.pop("time") <= logged.pop("time")
    assert direct == logged == {"method": "POST", "path": "/indexes/movies/search",
                                "status": 200, "duration_ms": 12.346, "remote": "10.0.0.1"}


def test_a_handler_added_later_still_gets_every_line(fresh_access_logger):
    logger, stream, start = fresh_access_logger
    start()
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logging.getLogger().addHandler(Collect())  # the host configured logging after start-up
    access_log.log_request("GET", "/health", 200, 0.001, None)
    assert [orjson.loads(line)["path"] for line in seen] == ["/health"]
    assert one_line(stream)["path"] == "/health"  # and the own handler still writes it


def test_a_filter_that_drops_lines_is_obeyed(fresh_access_logger):
    logger, stream, start = fresh_access_logger
    start()
    logger.addFilter(lambda record: False)
    access_log.log_request("GET", "/health", 200, 0.001, None)
    assert stream.getvalue() == ""


def test_a_disabled_level_writes_nothing(fresh_access_logger):
    logger, stream, start = fresh_access_logger
    start()
    logger.setLevel(logging.WARNING)
    access_log.log_request("GET", "/health", 200, 0.001, None)
    assert stream.getvalue() == ""


def test_text_format_and_level_come_from_the_environment(fresh_access_logger, monkeypatch):
    """A worker process started by `miroir --log-format text serve --workers 2` gets the
    settings through the environment only."""
    logger, stream, start = fresh_access_logger
    monkeypatch.setenv(logs.FORMAT_ENV, "text")
    start()
    access_log.log_request("GET", "/health", 200, 0.001, "10.0.0.1")
    line = stream.getvalue()
    assert line.endswith("Z INFO miroir.access: GET /health 200 1.0 ms 10.0.0.1\n"), line

    monkeypatch.setenv(logs.LEVEL_ENV, "warning")
    stream.seek(0)
    stream.truncate()
    monkeypatch.setattr(logs, "_handler", None)
    monkeypatch.setattr(logging.getLogger(logs.ROOT_LOGGER), "handlers", [])
    start()
    access_log.log_request("GET", "/health", 200, 0.001, "10.0.0.1")
    assert stream.getvalue() == ""
