"""One logger per module, all writing one readable line per event to stderr."""
from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    root = logging.getLogger("anime")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("ANIME_LOG_LEVEL", "INFO"))
        root.propagate = False
    return root.getChild(name.rsplit(".", 1)[-1])
