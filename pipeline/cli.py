"""What every command-line entry point shares: config loading and turning errors into one readable line."""
from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from config import paths_config
from config.loader import ConfigError
from config.settings import Settings, load_settings
from src.errors import UserError


def load_config(path: str | Path | None) -> Settings:
    """The project's settings, read and checked once here at the command's edge (config/config.yaml, with ``path``
    laid over it); problems become a UserError."""
    try:
        return load_settings(path)
    except (OSError, ValueError, ConfigError) as error:
        raise UserError(str(error)) from error


# Write failures a person fixes by freeing space or raising a limit, not by changing the command.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; user errors, interrupts and I/O failures end with one line on stderr and a non-zero exit."""
    try:
        status = main()
    except UserError as error:
        _fail(f"error: {error}", 2)
    except KeyboardInterrupt:
        _fail("interrupted: nothing was published, the previous artifacts are untouched", 130)
    except OSError as error:  # full disk, unwritable folder, ...
        _fail(f"error: {describe_os_error(error)}; the previous artifacts are untouched", 1)
    sys.exit(status or 0)


def describe_os_error(error: OSError) -> str:
    """What failed, where, and for a full disk what to do: libraries (Keras, Arrow) often omit the file name."""
    where = error.filename or f"writing under {paths_config.artifacts_root()}"
    text = f"{error.strerror or error} ({where})"
    if error.errno in _NO_ROOM:
        text += ": free disk space (or raise the file size limit) and run again"
    return text


def _fail(line: str, status: int) -> NoReturn:
    print(line, file=sys.stderr)
    sys.exit(status)
