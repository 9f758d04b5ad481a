"""What every command-line entry point shares: config loading and turning errors into one readable line."""
from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python pipeline/x.py` from a clone

from config import paths_config  # noqa: E402
from src.errors import UserError  # noqa: E402
from utils.common_functions import read_yaml  # noqa: E402


def load_config(path: str | Path | None) -> dict[str, Any]:
    try:
        return read_yaml(path or paths_config.CONFIG_PATH)
    except (OSError, ValueError) as error:
        raise UserError(str(error)) from error


# Write failures a person fixes by freeing space or raising a limit, not by changing the command.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main``; user errors, interrupts and I/O failures end with one line on stderr and a non-zero exit."""
    try:
        main()
    except UserError as error:
        _fail(f"error: {error}", 2)
    except KeyboardInterrupt:
        _fail("interrupted: nothing was published, the previous artifacts are untouched", 130)
    except OSError as error:  # full disk, unwritable folder, ...
        _fail(f"error: {describe_os_error(error)}; the previous artifacts are untouched", 1)


def describe_os_error(error: OSError) -> str:
    """What failed, where, and for a full disk what to do: libraries (Keras, Arrow) often omit the file name."""
    where = error.filename or f"writing under {paths_config.artifacts_root()}"
    text = f"{error.strerror or error} ({where})"
    if error.errno in _NO_ROOM:
        text += ": free disk space (or raise the file size limit) and run again"
    return text


def _fail(line: str, status: int) -> NoReturn:
    _end_experiment_tracking()
    print(line, file=sys.stderr)
    sys.exit(status)


def _end_experiment_tracking() -> None:
    """A Comet experiment left running by the failure prints its own lines at exit; end it now, so the error line
    is the last thing on the screen. Best effort: on a full disk ending it may fail too."""
    comet = sys.modules.get("comet_ml")
    if comet is None:
        return
    with contextlib.suppress(Exception):
        experiment = comet.get_running_experiment()
        if experiment is not None:
            experiment.end()
