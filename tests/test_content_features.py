"""Content features on real metadata: shape, type, norms, determinism, sensible neighbours, reasons.

The unit tests build on the real 400-anime excerpt of the 2023 file (under a second); the whole 2020 catalogue
(17,562 anime) is in the integration-marked tests.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from config.loader import load_config
from src.data.content_features import (
    BLOCKS,
    ContentSettings,
    content_blocks,
    content_settings,
    fit_content_features,
    story_vectors,
)
from src.data.metadata import read_metadata
from src.engine.catalogue import Catalogue
from src.engine.explanations import STORY_THRESHOLD, content_reasons
from src.engine.ranking import top_k_row
from tests.conftest import FIXTURES, SAMPLE


# ------------------------------------------------------------------- helpers (bench/content_features.py uses nearest)
def build_content_features(anime: pd.DataFrame,
                           settings: ContentSettings | Mapping[str, Any] | None = None) -> np.ndarray:
    """float32 (len(anime), dimensions), rows L2-normalised; row j describes anime row j. Same table and
    settings -> the same array, bit for bit with the same number of BLAS threads (to ~1e-5 otherwise)."""
    return fit_content_features(anime, settings).matrix


def nearest(features: np.ndarray, row: int, k: int = 10) -> np.ndarray:
    """The ``k`` rows most similar to ``row`` by cosine (itself left out), most similar first; ties go to the lower
    row, as serving's ``top_k`` breaks them."""
    return top_k_row(features @ features[row], k, exclude=np.array([row]))


def story_similarity(story: sp.csr_matrix, i: int, j: int) -> float:
    """Cosine of two anime's synopsis TF-IDF rows (0 when either has no synopsis)."""
    return float(story[i].multiply(story[j]).sum())


@pytest.fixture(scope="module")
def anime() -> pd.DataFrame:
    return read_metadata(FIXTURES / "anime-dataset-2023_head.csv").table


@pytest.fixture(scope="module")
def features(anime):
    return fit_content_features(anime)


def row(anime: pd.DataFrame, anime_id: int) -> int:
    return int(np.flatnonzero(anime["anime_id"].to_numpy() == anime_id)[0])


def test_one_unit_float32_row_per_anime(anime, features):
    matrix = features.matrix
    assert matrix.shape == (len(anime), 128) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(matrix).all()
    assert matrix.flags["C_CONTIGUOUS"]


def test_the_same_seed_gives_the_same_array(anime, features):
    np.testing.assert_array_equal(build_content_features(anime), features.matrix)
    other = build_content_features(anime, {"seed": 7})
    assert not np.array_equal(other, features.matrix)
    assert other.shape == features.matrix.shape


def test_dimensions_is_a_parameter(anime):
    assert build_content_features(anime, {"dimensions": 48, "names_dimensions": 16}).shape == (len(anime), 48)
    pure_svd = build_content_features(anime, {"dimensions": 32, "names_dimensions": 0})
    assert pure_svd.shape == (len(anime), 32)
    np.testing.assert_allclose(np.linalg.norm(pure_svd, axis=1), 1.0, atol=1e-5)


def test_nearest_neighbours_are_the_same_franchise(anime, features):
    # Cowboy Bebop's movie (Bones) and the series (Sunrise): different studios, the same story and names
    assert anime["anime_id"].iat[nearest(features.matrix, row(anime, 5), 1)[0]] == 1
    assert anime["anime_id"].iat[nearest(features.matrix, row(anime, 1), 1)[0]] == 5
    # Hunter x Hunter: the series, its OVA and both Greed Island OVAs find each other first
    hunter = {136, 137, 138, 139}
    for anime_id in hunter:
        found = set(anime["anime_id"].iloc[nearest(features.matrix, row(anime, anime_id), 3)])
        assert found == hunter - {anime_id}
    evangelion = set(anime["anime_id"].iloc[nearest(features.matrix, row(anime, 30), 2)])
    assert evangelion == {31, 32}  # Death & Rebirth, The End of Evangelion


def test_anime_with_little_metadata_get_features_too(anime):
    sparse = anime.copy()
    sparse.loc[:49, "synopsis"] = None  # no synopsis, as 2,101 of the 2020 anime
    sparse.loc[:9, ["studios", "genres"]] = pd.Series([[]] * 10, dtype=object)
    sparse.loc[:9, ["source", "age_rating", "type"]] = None
    matrix = build_content_features(sparse)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    # with only its names, era and episodes left, Cowboy Bebop still finds its movie
    assert sparse["anime_id"].iat[nearest(matrix, row(sparse, 1), 1)[0]] == 5


def test_blocks_are_unit_rows_or_empty(anime):
    blocks = content_blocks(anime)
    assert set(blocks) == set(BLOCKS)
    for name, block in blocks.items():
        norms = np.sqrt(np.asarray(block.multiply(block).sum(axis=1)).ravel())
        assert np.all(np.isclose(norms, 1.0, atol=1e-5) | (norms == 0)), name
    assert blocks["genres"].shape[1] == 20  # the 2023 excerpt's genres, "Award Winning" among them
    assert blocks["type"][row(anime, 1)].sum() == 1


def test_content_reasons_name_studio_story_and_genres(anime, features):
    """The engine's reasons for similar anime (src/engine/explanations.py) on real metadata and synopses."""
    catalogue = Catalogue(anime)

    def reasons(first: int, second: int, story=features.story) -> list[str]:
        i, j = row(anime, first), row(anime, second)
        return content_reasons(catalogue, i, j, story_similarity(story, i, j) >= STORY_THRESHOLD)

    assert reasons(1, 5) == ["story like Cowboy Bebop", "shared genres: Action, Sci-Fi"]  # Bebop and its movie
    assert reasons(30, 32) == ["same studio: Gainax", "story like Neon Genesis Evangelion",
                               "shared genres: Avant Garde, Drama, Sci-Fi"]
    hunter = reasons(136, 137, story_vectors(anime))  # the synopsis vectors computed on the spot
    assert hunter[0] == "same studio: Nippon Animation" and "shared genres: Action, Adventure, Fantasy" in hunter
    assert reasons(1, 15) == []  # Eyeshield 21: sports


def test_the_engine_scores_many_stories_at_once_as_each_pair_alone(anime, features):
    """Similar anime's reasons take the source's story cosine with all ten results in one product: the same
    figures as each pair alone, and 0 where the story matrix is missing or of another catalogue."""
    from src.engine.explanations import story_cosines

    story, source = features.story, row(anime, 1)
    others = np.random.default_rng(0).permutation(story.shape[0])[:40]
    together = story_cosines(story, story.shape[0], source, others)
    alone = [story_similarity(story, source, int(j)) for j in others]
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-7)
    assert (together > 0).any() and not story_cosines(story, story.shape[0] + 1, source, others).any()
    assert not story_cosines(None, story.shape[0], source, others).any()

def test_story_vectors_skip_boilerplate_and_cut_words(anime):
    table = anime.iloc[:3].copy()
    table["synopsis"] = ["…hen the moon rises, wolves howl at the moon over the quiet valley. (Source: ANN)",
                         "Wolves howl at the moon over the valley when the moon rises. (Source: ANN)",
                         "A cooking contest. (Source: ANN)"]
    story = story_vectors(table, {"synopsis_min_df": 1, "synopsis_max_df": 1.0})
    similarity = (story @ story.T).toarray()
    assert similarity[0, 1] > 0.5
    assert similarity[0, 2] == pytest.approx(0.0, abs=1e-6)  # "(Source: ANN)" is no shared story


def test_settings_from_config_mappings():
    settings = content_settings({"dimensions": 64, "weights": {"type": 0.0}})
    assert isinstance(settings, ContentSettings) and settings.dimensions == 64
    assert settings.weights["type"] == 0.0
    assert settings.weights["synopsis"] == load_config()["content"]["weights"]["synopsis"]
    with pytest.raises(ValueError, match="unknown content feature settings"):
        content_settings({"dimension": 64})
    with pytest.raises(ValueError, match="unknown content feature blocks"):
        content_settings({"weights": {"plot": 1.0}})


@pytest.mark.integration
def test_the_whole_2020_catalogue():
    """Every one of the 17,562 anime gets features, never-rated ones included, and the neighbours make sense."""
    anime = read_metadata(SAMPLE / "anime.csv.zip", SAMPLE / "anime_with_synopsis.csv.zip").table
    features = fit_content_features(anime)
    matrix = features.matrix
    assert matrix.shape == (17_562, 128) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    rated = set(pd.read_csv(SAMPLE / "rating.csv.gz", usecols=["anime_id"])["anime_id"])
    assert 21 not in rated  # One Piece has no rating in the sample, and still its own franchise around it
    names = anime["name"].to_numpy()

    def neighbours(anime_id: int, k: int) -> list[str]:
        return list(names[nearest(matrix, row(anime, anime_id), k)])

    assert all(name.startswith("One Piece") for name in neighbours(21, 7))
    assert "Cowboy Bebop" in neighbours(5, 10)
    assert sum("Naruto" in name for name in neighbours(20, 10)) >= 8
    assert sum(name.startswith("Kimetsu no Yaiba") for name in neighbours(38000, 2)) == 2
    assert sum(name.startswith("Shingeki no Kyojin") for name in neighbours(16498, 8)) == 8
    kimetsu = row(anime, 38000)
    # Jujutsu Kaisen (MAPPA) beside Kimetsu no Yaiba (ufotable): no studio in common, three genres named
    jujutsu = row(anime, 40748)
    alike = story_similarity(features.story, kimetsu, jujutsu) >= STORY_THRESHOLD
    assert content_reasons(Catalogue(anime), kimetsu, jujutsu, alike)[-1] == "shared genres: Action, Demons, Shounen"


def test_the_benchmark_measures_quality_on_real_ratings(anime):
    """bench/content_features.py's cold-start evaluation, on the 400-anime excerpt and the embedded ratings."""
    from bench.content_features import quality

    report = quality(anime, {}, SAMPLE / "rating.csv.gz")
    assert report["rated_anime"] > 300
    for carve in ("validation", "test"):
        figures = report[carve]
        assert figures["held_out_anime"] == report["rated_anime"] // 10
        for method in ("random", "popularity", "genres_only", "content_features", "content_features_untuned",
                       "unreduced_blocks"):
            for metric in ("recall_at_10_per_anime", "recall_at_10_pairs"):
                assert 0 <= figures[method][metric] <= 1, (carve, method, metric)
    assert report["nearest"]["1 Cowboy Bebop"][0] == "Cowboy Bebop: Tengoku no Tobira"


@pytest.mark.integration
def test_the_benchmark_runs_as_a_module(capsys):
    from bench.content_features import main

    assert main(["--repeats", "1", "--no-quality"]) == 0
    build = json.loads(capsys.readouterr().out)["build"]
    assert build["anime"] == 17_562 and build["dimensions"] == 128 and build["dtype"] == "float32"
