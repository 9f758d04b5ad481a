"""Error handlers, security headers and the X-Model-Version header.

Under /api and the health probes every error is JSON ``{"error": {"status", "message"}}``; elsewhere it is a
friendly HTML page. Unexpected exceptions are logged with their traceback and answered with a generic 500,
never with the traceback itself.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from src.engine.validation import RecommendationError, UnknownAnimeError, UnknownUserError
from src.logger import get_logger
from src.web.list_import import UPLOAD_ENDPOINTS, ListImportError, too_large
from src.web.state import EngineUnavailable, engine_state

logger = get_logger(__name__)

# 'self' only: no inline script or style, no CDN; frame-ancestors stops click-jacking. Images may also come from
# MyAnimeList's CDN, the one host the metadata's poster URLs name (the pages load nothing else from it).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: https://cdn.myanimelist.net; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MODEL_VERSION_HEADER = "X-Model-Version"
_HTTP_MESSAGES = {
    400: "the request could not be understood: check its parameters",
    404: "there is nothing at this address: the API is described at /api/openapi.json",
    405: "this address does not accept that method",
    413: "the request body is too large: send at most {limit} bytes",
    415: "send the body as JSON with the header Content-Type: application/json",
}
# The same for people reading a page (which never points them at the API).
_PAGE_MESSAGES = {
    404: "there is nothing at this address: the link may be old or mistyped",
    405: "this page cannot be used that way",
    413: "what you sent is too large: send at most {limit} bytes",
}


def wants_json() -> bool:
    path = request.path
    return path == "/api" or path.startswith("/api/") or path in ("/healthz", "/readyz")


def error_response(status: int, message: str) -> tuple[Response | str, int]:
    if wants_json():
        return jsonify(error={"status": status, "message": message}), status
    try:
        return render_template("error.html", status=status, message=message), status
    except Exception:  # a broken template must not turn a 404 into a 500
        logger.exception("rendering error.html failed")
        return Response(f"{status}: {message}", status=status, mimetype="text/plain"), status


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(UnknownUserError, lambda error: error_response(404, str(error)))
    app.register_error_handler(UnknownAnimeError, lambda error: error_response(404, str(error)))
    app.register_error_handler(RecommendationError, lambda error: error_response(400, str(error)))
    app.register_error_handler(ListImportError, lambda error: error_response(error.status, str(error)))
    app.register_error_handler(EngineUnavailable, _unavailable)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.after_request(_security_headers)
    app.after_request(_model_version_header)


def _unavailable(error: EngineUnavailable) -> Any:
    body, status = error_response(503, f"recommendations are unavailable: {error}")
    return body, status, {"Retry-After": "60"}


def _http_error(error: HTTPException) -> Any:
    status = error.code or 500
    if status >= 500:
        return _unexpected(error)
    messages = _HTTP_MESSAGES if wants_json() else {**_HTTP_MESSAGES, **_PAGE_MESSAGES}
    template = messages.get(status, error.description or "the request failed")
    message = template.format(limit=request.max_content_length or "")
    if status == 413 and request.endpoint in UPLOAD_ENDPOINTS:
        message = too_large(engine_state().config)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        message = f"{message}: use {', '.join(sorted(error.valid_methods))}"
        body, status = error_response(status, message)
        return body, status, {"Allow": ", ".join(sorted(error.valid_methods))}
    return error_response(status, message)


def _unexpected(error: Exception) -> Any:
    logger.exception("unexpected error on %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "something went wrong on our side; it has been logged, please try again later")


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _model_version_header(response: Response) -> Response:
    """Every response names the model version that answered it ("none" while no model is loaded): the one the
    request pinned when it started (src/web/state.py), so the header and the body always agree."""
    response.headers[MODEL_VERSION_HEADER] = engine_state().header_version
    return response
