"""Shared test configuration.

Hypothesis profiles: `ci` (the default) is derandomized so CI never flakes; `explore` searches
randomly with many more examples (tox -e properties sets HYPOTHESIS_PROFILE=explore).
"""

import logging
import os

import pytest
from hypothesis import HealthCheck, settings

from miroir import logs

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "explore",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _miroir_logging_left_as_found(monkeypatch):
    """`miroir.cli.main` sets up Miroir's logging for the whole process (a handler on the
    `miroir` logger bound to the stderr of that moment, the level, two exported environment
    variables); tests that call it in-process must not leave that to the tests after them."""
    miroir = logging.getLogger(logs.ROOT_LOGGER)
    monkeypatch.setattr(miroir, "handlers", list(miroir.handlers))
    monkeypatch.setattr(miroir, "level", miroir.level)
    monkeypatch.setattr(logs, "_handler", logs._handler)
    for name in (logs.LEVEL_ENV, logs.FORMAT_ENV):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)
    yield
    miroir.manager._clear_cache()
