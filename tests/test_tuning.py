"""The hybrid's settings chosen on the validation carve (src/tuning/hybrid.py), on the real embedded sample: what may be
served, what is only measured, and what the EASE baseline reads back from the trials."""
from __future__ import annotations

import copy

import pytest

from config import paths_config
from config.settings import Settings
from src.evaluation.runner import ease_from_carve
from src.models.ease import interaction_matrix
from src.training.train import prepare_training_data
from src.tuning.hybrid import choose_settings
from tests.conftest import small_training_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def training_data(trained_root, base_config):
    return prepare_training_data(small_training_config(base_config),
                                 paths_config.processed_dir(trained_root))


def _choose(base_config: dict, training_data, dense_max_anime: int, dense_max_cost: float = 1e12,
            **item_item) -> dict:
    config = small_training_config(base_config)
    config["hybrid"]["item_item"].update(neighbours=[None, 50], dense_max_anime=dense_max_anime,
                                         dense_max_cost=dense_max_cost, **item_item)
    return choose_settings(copy.deepcopy(config), training_data)


def test_a_dense_ease_above_dense_max_anime_is_measured_but_never_served(base_config, training_data):
    chosen = _choose(base_config, training_data, dense_max_anime=1)
    trials = [t for t in chosen["carve"]["trials"] if t["search"] == "item_item and ncf"]
    dense = [t for t in trials if t["settings"]["neighbours"] is None]
    assert dense and not any(t["served"] for t in dense)  # measured, as the reference and the baseline
    assert all(t["served"] for t in trials if t["settings"]["neighbours"] is not None)
    assert chosen["item_item"]["neighbours"] == 50
    assert (chosen["favourites_item_item"] or chosen["item_item"])["neighbours"] == 50
    # the EASE baseline of the report still finds its dense candidates among the trials
    baseline = ease_from_carve(chosen["carve"]["trials"])
    assert baseline["users"]["carve_recall"] == max(t["recall"] for t in dense if t["ncf"] == 0)


def test_a_small_enough_catalogue_may_serve_the_dense_ease(base_config, training_data):
    chosen = _choose(base_config, training_data, dense_max_anime=10**6)
    trials = [t for t in chosen["carve"]["trials"] if t["search"] == "item_item and ncf"]
    assert all(t["served"] for t in trials)
    best_plain = max((t for t in trials if t["settings"]["neighbours"] is None and t["ncf"] == 0),
                     key=lambda t: t["recall"])
    # plain dense EASE is the default: anything else had to beat it by the significance margin
    if chosen["item_item"]["neighbours"] is None:
        assert chosen["item_item"] == best_plain["settings"]


@pytest.mark.parametrize("max_cost_per_favourite", [0.5, 2.0])
def test_a_dense_ease_too_costly_per_profile_is_served_only_to_whom_it_is_cheap(base_config, training_data,
                                                                                 max_cost_per_favourite: float):
    """Known users' long profiles cost more multiply-adds per request than newcomers' few favourites: a limit
    between the two serves the dense B to newcomers only; below both, to nobody."""
    support = 2000  # EASE over the 2,000 most-rated anime (the sample's users rated far more)
    limit = max_cost_per_favourite * small_training_config(base_config)["serving"]["max_liked"] * support
    chosen = _choose(base_config, training_data, dense_max_anime=10**6, dense_max_cost=limit, max_anime=support)
    trials = [t for t in chosen["carve"]["trials"] if t["search"] == "item_item and ncf"]
    dense = [t for t in trials if t["settings"]["neighbours"] is None]
    assert dense and not any(t["served"] for t in dense)  # known users' profiles hold far more than 2 x 50 anime
    assert all(t["served"] for t in trials if t["settings"]["neighbours"] is not None)
    assert chosen["item_item"]["neighbours"] == 50
    newcomers_may = {t["newcomer_served"] for t in dense if t["ncf"] == 0}
    assert newcomers_may == {max_cost_per_favourite >= 1.0}
    if max_cost_per_favourite < 1.0:
        assert (chosen["favourites_item_item"] or chosen["item_item"])["neighbours"] == 50


def test_newcomers_may_get_edlae_at_the_matched_dropout_and_the_baseline_stays_plain(base_config, training_data):
    """Every EASE candidate has an EDLAE counterpart for newcomers, at the favourites' dropout 1 - favourites / the
    carve users' mean profile; the EASE baseline is still chosen among plain EASE's candidates, and an EDLAE is
    served to newcomers only when it beat plain dense EASE by the significance margin."""
    chosen = _choose(base_config, training_data, dense_max_anime=10**6)
    config = small_training_config(base_config)
    carve_data = training_data.carve(Settings.of(config))
    profiles = interaction_matrix(carve_data.train, carve_data.n_users, carve_data.n_anime)[carve_data.users]
    expected = round(1 - config["evaluation"]["newcomer_favourites"] / profiles.getnnz(axis=1).mean(), 3)
    assert 0.5 < expected < 1  # the sample's users rated hundreds of anime: 20 favourites are a small share
    candidates = [t for t in chosen["carve"]["trials"] if t["search"] == "item_item and ncf" and t["ncf"] == 0]
    assert all(t["denoised_settings"] == {**t["settings"], "dropout": expected} for t in candidates)
    newcomers = chosen["favourites_item_item"] or chosen["item_item"]
    dense = [t for t in candidates if t["settings"]["neighbours"] is None]
    reference = max(t["newcomer_recall"] for t in dense)
    if newcomers.get("dropout"):
        served = next(t for t in candidates if t["denoised_settings"] == newcomers)
        assert served["denoised_newcomer_recall"] > reference
    baseline = ease_from_carve(chosen["carve"]["trials"])["newcomers"]
    assert "dropout" not in baseline["setting"] and baseline["carve_recall"] == reference


def test_a_zero_favourites_dropout_gives_newcomers_plain_ease_only(base_config, training_data):
    chosen = _choose(base_config, training_data, dense_max_anime=10**6, favourites_dropout=0)
    candidates = [t for t in chosen["carve"]["trials"] if t["search"] == "item_item and ncf" and t["ncf"] == 0]
    assert candidates and not any("denoised_settings" in t for t in candidates)
    assert "dropout" not in (chosen["favourites_item_item"] or chosen["item_item"])


def test_without_a_significance_margin_newcomers_get_their_best_ease_or_edlae(base_config, training_data):
    config = small_training_config(base_config)
    config["hybrid"]["significance"] = 0.0
    config["hybrid"]["item_item"].update(dense_max_anime=10**6, dense_max_cost=1e12)
    chosen = choose_settings(copy.deepcopy(config), training_data)
    candidates = [t for t in chosen["carve"]["trials"] if t["search"] == "item_item and ncf" and t["ncf"] == 0]
    measured = [(t["newcomer_recall"], t["settings"]) for t in candidates]
    measured += [(t["denoised_newcomer_recall"], t["denoised_settings"]) for t in candidates]
    best = max(recall for recall, _ in measured)
    assert (chosen["favourites_item_item"] or chosen["item_item"]) in [s for r, s in measured if r == best]
