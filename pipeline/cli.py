"""What every command-line entry point shares: config loading and turning errors into one readable line."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as `python pipeline/x.py` from a clone

from config import paths_config  # noqa: E402
from src.errors import UserError  # noqa: E402
from utils.common_functions import read_yaml  # noqa: E402


def load_config(path: str | Path | None) -> dict[str, Any]:
    try:
        return read_yaml(path or paths_config.CONFIG_PATH)
    except (OSError, ValueError) as error:
        raise UserError(str(error)) from error


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main``; user errors, interrupts and I/O failures end with one line on stderr and a non-zero exit."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: nothing was published, the previous artifacts are untouched", file=sys.stderr)
        sys.exit(130)
    except OSError as error:  # full disk, unwritable folder, ...
        print(f"error: {error.strerror or error} ({error.filename or 'I/O'}); the previous artifacts are untouched",
              file=sys.stderr)
        sys.exit(1)
