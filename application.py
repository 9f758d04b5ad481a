"""The web application: ``create_app()`` builds it (Flask app factory); ``python application.py`` runs the
development server on http://127.0.0.1:5000 (debug off; ``HOST`` and ``PORT`` move it, as for `make serve`);
gunicorn.conf.py serves it in production.
"""
from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import Flask, request
from flask.helpers import get_debug_flag
from werkzeug.exceptions import RequestEntityTooLarge

from config.paths_config import model_dir
from src.logger import get_logger
from src.web.api import api_bp, health_bp
from src.web.errors import register_error_handlers
from src.web.json_provider import OrjsonProvider
from src.web.list_import import UPLOAD_ENDPOINTS, upload_limit
from src.web.pages import pages_bp
from src.web.state import engine_state, load_engine, pin_engine

logger = get_logger(__name__)
HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 64 * 1024  # a favourites request is a few hundred bytes; anything near this is abuse


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app and load the model artifacts (``ARTIFACTS_DIR``, default the model dir: the pointer to the
    current version, src/store/registry.py).

    The app starts even when the artifacts are missing or broken: /healthz answers, /readyz and the API
    report the reason with a 503, and the pages show it. Under gunicorn a HUP takes up the current version
    (``reload_engine`` in gunicorn.conf.py); every response names its version in X-Model-Version.
    """
    refuse_debugger()
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config.from_mapping(
        ARTIFACTS_DIR=str(model_dir()),
        SERVING_CONFIG=None,  # None: the serving section of config/config.yaml
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.debug = False  # never the interactive debugger: it would hand out a Python shell
    app.json = OrjsonProvider(app)  # keeps fields in the documented order
    load_engine(app)
    app.before_request(pin_engine)  # first: everything after it, error pages included, sees one model version
    app.before_request(allow_list_uploads)
    app.before_request(read_chunked_body)
    app.register_blueprint(health_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(pages_bp)
    register_error_handlers(app)
    return app


def allow_list_uploads() -> None:
    """Raise the body cap for a list upload alone (src/web/list_import.py, ``upload_limit``): every other request
    keeps MAX_CONTENT_LENGTH."""
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = upload_limit(engine_state().config)


def read_chunked_body() -> None:
    """Hold a chunked body (no Content-Length) to the request's cap (MAX_CONTENT_LENGTH, or a list upload's) too.

    Werkzeug refuses a declared length over the cap up front, but reads a chunked body only up to the cap and
    stops there without complaint: the JSON or form would be silently cut. Reading one byte past the cap here
    turns that into a 413; a body within the cap is handed on as if it had been sent with its length.
    """
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    limit = request.max_content_length
    stream, data = request.environ["wsgi.input"], b""
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) > limit:
        raise RequestEntityTooLarge()
    request.environ.update({"wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data))})


def refuse_debugger() -> None:
    """Stop `flask run --debug` (or --debugger, or FLASK_DEBUG=1): the Werkzeug debugger it wraps around the app
    runs Python for anyone who reaches it. The app cannot switch that wrapper off, so it refuses to be served by it.

    Other run modes never enable it: `python application.py` passes debug=False, gunicorn has no debugger.
    """
    context = click.get_current_context(silent=True)
    if context is None or context.info_name != "run":
        return
    if context.params.get("debugger") or get_debug_flag():
        raise click.ClickException("this app is never served with the Werkzeug debugger or in debug mode: drop "
                                   "--debug/--debugger and unset FLASK_DEBUG (`make run` serves it safely)")


def serving_address(environ: Mapping[str, str]) -> tuple[str, int]:
    """(host, port) of the development server: ``HOST`` (default 127.0.0.1) and ``PORT`` (default 5000)."""
    host, port = environ.get("HOST") or "127.0.0.1", environ.get("PORT") or "5000"
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SystemExit(f"error: PORT must be a port number from 1 to 65535, not {port!r}")
    return host, int(port)


if __name__ == "__main__":
    address, number = serving_address(os.environ)
    create_app().run(host=address, port=number, debug=False)
