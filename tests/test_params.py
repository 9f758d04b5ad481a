"""Request parameters (src/web/params.py): a request without any is answered by the defaults at once, which must
be exactly what parsing its absent parameters gives."""
from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from config.loader import load_config
from config.settings import ServingConfig
from src.engine.catalogue import Filters
from src.web import params


@pytest.fixture(scope="module")
def serving() -> ServingConfig:
    return ServingConfig.from_config(load_config())


@pytest.mark.parametrize("adult_default", [False, True])
def test_no_parameters_give_what_parsing_them_gives(serving, adult_default: bool) -> None:
    parsed = MultiDict([("utm_source", "x")])  # a parameter nobody reads: every check runs, on nothing
    fast = params.query_params(MultiDict(), serving, adult_default=adult_default)
    assert fast == params.query_params(parsed, serving, adult_default=adult_default)
    assert fast == params.RecommendationParams(serving.default_n, None, None, Filters(include_adult=adult_default))
    assert params.similar_params(MultiDict(), serving, adult_default=adult_default) == \
        params.similar_params(parsed, serving, adult_default=adult_default)


def test_any_parameter_is_still_checked(serving) -> None:
    with pytest.raises(params.ParameterError, match="n must be a whole number"):
        params.query_params(MultiDict([("n", "ten")]), serving)
    with pytest.raises(params.ParameterError, match="n must be a whole number"):
        params.similar_params(MultiDict([("n", "0")]), serving)
    assert params.similar_params(MultiDict([("genre", "Action")]), serving)[1].genres == ("Action",)
