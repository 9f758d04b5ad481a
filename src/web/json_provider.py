"""Every JSON answer is encoded by orjson (Rust): a list of 10 recommendations in 5 us instead of the standard
library's 52 us, 100 in 47 instead of 515 (bench/RESULTS.md, "Candidates at publish"), which is a tenth of what a
request served from candidates costs. The answer means the same; only its bytes differ (UTF-8 text stays UTF-8
rather than \\u escapes), and the keys keep the order the handlers give them. Request bodies are still read by
the standard library's decoder, whose rules (NaN, say, is read and then refused by name) the API documents.
"""
from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

# Non-string keys (a count per id) become strings, as the standard library's encoder makes them
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class OrjsonProvider(DefaultJSONProvider):
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode("utf-8")

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(orjson.dumps(obj, default=self.default, option=_OPTIONS),
                                        mimetype=self.mimetype)
