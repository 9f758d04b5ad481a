"""A fixture that sees the project's own log records, so tests can assert nothing was logged as an error.

The project's loggers hang under "anime" and do not propagate to the root logger (src/logger.py), so pytest's
``caplog`` misses them unless its handler is attached there as well.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def app_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` that also receives the "anime" loggers' records."""
    project_logger = logging.getLogger("anime")
    project_logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        project_logger.removeHandler(caplog.handler)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records at ERROR or above, or carrying a traceback: what an unhandled exception leaves behind."""
    return [f"{record.name} {record.levelname}: {record.getMessage()}" for record in caplog.records
            if record.levelno >= logging.ERROR or record.exc_info]
