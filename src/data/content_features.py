"""Content features: a dense vector per anime from its metadata alone, so every anime has one, rated or not.

Blocks, each fitted on the metadata table (no ratings):

- ``synopsis``: TF-IDF of the synopsis's words and word pairs (sublinear, English stop words, MyAnimeList's
  "(Source: …)" lines and a cut first word left out);
- ``names``: TF-IDF of the words of ``name``, ``english_name``, ``japanese_name`` and ``synonyms`` (romaji
  particles and "Movie", "Season"… left out);
- ``genres``, ``studios``: multi-hot; ``type``, ``source``, ``age_rating``: one-hot;
- ``era``: ``year`` in the buckets of ``ERA_EDGES``; ``episodes``: ``episodes`` in those of ``EPISODE_EDGES``.

Each block's rows are L2-normalised and multiplied by the block's weight, so two anime's cosine similarity is the
weight-squared-weighted mix of their per-block similarities (a missing value contributes nothing). The blocks are
put side by side and reduced with a seeded TruncatedSVD, except the names, which get a seeded random projection
(see ``fit_content_features``); the result is L2-normalised: a float32 (n_anime, dimensions) matrix, row j =
anime row j, saved with ``np.save`` like the model's embeddings.

Reasons ("why is B like A") come from the table itself: shared studios, shared genres and the synopsis TF-IDF
cosine (``story_vectors``, a sparse matrix saved with ``scipy.sparse.save_npz``, no pickle) above a threshold.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from config.settings import ContentSection, load_settings

BLOCKS = ("synopsis", "names", "genres", "studios", "type", "source", "age_rating", "era", "episodes")
# Buckets: [edge_k, edge_k+1); below the first edge is its own bucket.
ERA_EDGES = (1980, 1990, 2000, 2005, 2010, 2015, 2020)
EPISODE_EDGES = (2, 7, 14, 27, 53, 101)
# Words every franchise's titles share: particles of romaji titles and kinds of release.
TITLE_STOP_WORDS = frozenset("""
    no wa ga wo ni de to na ka mo the of a an and in on to ni e o
    movie movies film season seasons part ova ona oav special specials tv series episode episodes recap
    1st 2nd 3rd 4th 5th 6th final gekijouban shin zoku
""".split())
# Lines MyAnimeList appends to synopses: they say where the text came from, not what the story is.
_BOILERPLATE = re.compile(r"\((?:source|sources|from)\s*:[^)]*\)|\[written by mal rewrite\]|\(\s*written by [^)]*\)",
                          re.IGNORECASE)
_TRUNCATED = re.compile(r"^…\S*\s*")  # a synopsis marked as cut by src/data/metadata.py: drop the broken first word


@dataclass(frozen=True)
class ContentSettings:
    """How content features are built: the config's ``content:`` section (its four settings, which have no default
    here) and the text models' fixed sizes below, which are not settings."""

    dimensions: int
    names_dimensions: int  # of ``dimensions``, for the sketch of the title words (0: they go into the SVD)
    seed: int
    weights: Mapping[str, float]
    synopsis_max_features: int = 60_000
    synopsis_min_df: int = 2
    synopsis_max_df: float = 0.3
    names_min_df: int = 2
    svd_iterations: int = 5


# What the builders accept as their settings (``content_settings`` makes a ContentSettings of it).
ContentSettingsLike = ContentSettings | ContentSection | Mapping[str, Any] | None


def content_settings(settings: ContentSettingsLike = None) -> ContentSettings:
    """Settings from a ContentSettings, the config's ``content:`` section, or a mapping of some of its field names
    laid over that section (``weights`` may name only some blocks); None: the section of config/config.yaml."""
    if isinstance(settings, ContentSettings):
        return settings
    if isinstance(settings, ContentSection):
        return ContentSettings(settings.dimensions, settings.names_dimensions, settings.seed, dict(settings.weights))
    section = load_settings().content
    if settings is None:
        return content_settings(section)
    known = {f.name for f in fields(ContentSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown content feature settings {unknown}; known: {sorted(known)}")
    values = {**asdict(content_settings(section)), **settings}
    unknown_blocks = sorted(set(values["weights"]) - set(BLOCKS))
    if unknown_blocks:
        raise ValueError(f"unknown content feature blocks {unknown_blocks}; known: {list(BLOCKS)}")
    values["weights"] = {**section.weights, **{k: float(v) for k, v in values["weights"].items()}}
    return ContentSettings(**values)


@dataclass
class ContentFeatures:
    """The dense features (``matrix``) and what reasons need (``story``: synopsis TF-IDF rows, L2-normalised)."""

    matrix: np.ndarray
    story: sp.csr_matrix
    settings: ContentSettings
    explained_variance: float

    def describe(self) -> dict[str, Any]:
        """What to write beside the matrix (a manifest entry): shape, settings, variance kept by the SVD."""
        return {"shape": list(self.matrix.shape), "explained_variance": round(self.explained_variance, 4),
                "settings": {**asdict(self.settings), "weights": dict(self.settings.weights)}}


# ------------------------------------------------------------------------------------------------ blocks
def synopsis_texts(anime: pd.DataFrame) -> list[str]:
    """The synopses as the features read them: boilerplate and a cut first word removed; "" where missing."""
    texts = []
    for text in anime["synopsis"]:
        if not isinstance(text, str):
            texts.append("")
            continue
        texts.append(_BOILERPLATE.sub(" ", _TRUNCATED.sub("", text)))
    return texts


def story_vectors(anime: pd.DataFrame, settings: ContentSettingsLike = None) -> sp.csr_matrix:
    """The synopsis TF-IDF matrix, rows L2-normalised (all-zero where there is no synopsis), float32."""
    settings = content_settings(settings)
    texts = synopsis_texts(anime)
    if not any(texts):
        return sp.csr_matrix((len(anime), 0), dtype=np.float32)
    vectorizer = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32,
                                 min_df=min(settings.synopsis_min_df, len(anime)), max_df=settings.synopsis_max_df,
                                 max_features=settings.synopsis_max_features, strip_accents="unicode")
    try:
        return vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # too few synopses for min_df/max_df to leave any word
        return sp.csr_matrix((len(anime), 0), dtype=np.float32)


def _name_texts(anime: pd.DataFrame) -> list[str]:
    texts = []
    for row in anime[["name", "english_name", "japanese_name", "synonyms"]].itertuples(index=False):
        parts = {p for p in (row.name, row.english_name, row.japanese_name) if isinstance(p, str)}
        synonyms = row.synonyms if isinstance(row.synonyms, (list, tuple, np.ndarray)) else []
        parts.update(s for s in synonyms if isinstance(s, str))
        texts.append(" ".join(sorted(parts)))
    return texts


def _names_block(anime: pd.DataFrame, settings: ContentSettings) -> sp.csr_matrix:
    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b", sublinear_tf=True, dtype=np.float32,
                                 stop_words=sorted(TITLE_STOP_WORDS), strip_accents="unicode",
                                 min_df=min(settings.names_min_df, len(anime)))
    try:
        return vectorizer.fit_transform(_name_texts(anime)).tocsr()
    except ValueError:
        return sp.csr_matrix((len(anime), 0), dtype=np.float32)


def _multi_hot(values: pd.Series) -> sp.csr_matrix:
    lists = [list(v) if isinstance(v, (list, tuple, np.ndarray)) else [] for v in values]
    vocabulary = {label: k for k, label in enumerate(sorted({label for labels in lists for label in labels}))}
    rows = np.repeat(np.arange(len(lists)), [len(labels) for labels in lists])
    columns = np.array([vocabulary[label] for labels in lists for label in labels], dtype=np.int64)
    return sp.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)), shape=(len(lists), len(vocabulary)))


def _one_hot(values: pd.Series) -> sp.csr_matrix:
    return _multi_hot(pd.Series([[v] if isinstance(v, str) and v else [] for v in values], dtype=object))


def _buckets(values: pd.Series, edges: tuple[int, ...]) -> sp.csr_matrix:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    known = np.isfinite(numbers)
    bucket = np.searchsorted(np.asarray(edges), numbers[known], side="right")
    rows = np.flatnonzero(known)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, bucket)), shape=(len(values), len(edges) + 1))


def content_blocks(anime: pd.DataFrame, settings: ContentSettingsLike = None,
                   story: sp.csr_matrix | None = None) -> dict[str, sp.csr_matrix]:
    """Every block as a sparse matrix, rows L2-normalised (unweighted); row j = anime row j."""
    settings = content_settings(settings)
    blocks = {
        "synopsis": story if story is not None else story_vectors(anime, settings),
        "names": _names_block(anime, settings),
        "genres": _multi_hot(anime["genres"]),
        "studios": _multi_hot(anime["studios"]),
        "type": _one_hot(anime["type"]),
        "source": _one_hot(anime["source"]),
        "age_rating": _one_hot(anime["age_rating"]),
        "era": _buckets(anime["year"], ERA_EDGES),
        "episodes": _buckets(anime["episodes"], EPISODE_EDGES),
    }
    # a block with no columns (a tiny table without synopses, say) stays empty: there is nothing to normalise
    return {name: (normalize(block, norm="l2", copy=False) if block.shape[1]
                   else sp.csr_matrix(block)).astype(np.float32)
            for name, block in blocks.items()}


def combine_blocks(blocks: dict[str, sp.csr_matrix], weights: Mapping[str, float]) -> sp.csr_matrix:
    """The weighted blocks side by side (blocks with weight 0 left out)."""
    parts = [blocks[name] * np.float32(weights.get(name, 0.0)) for name in BLOCKS
             if weights.get(name, 0.0) > 0 and blocks[name].shape[1] > 0]
    if not parts:
        raise ValueError("every content feature block has weight 0 or is empty")
    return sp.hstack(parts, format="csr", dtype=np.float32)


# ---------------------------------------------------------------------------------------------- features
def fit_content_features(anime: pd.DataFrame,
                         settings: ContentSettingsLike = None) -> ContentFeatures:
    """Content features and synopsis vectors for every row of ``anime`` (columns as ``METADATA_COLUMNS``).

    All blocks but the names are reduced with a seeded TruncatedSVD to ``dimensions - names_dimensions``
    components; the weighted names block gets a seeded Gaussian sketch (a random projection) of
    ``names_dimensions`` instead. Title words form thousands of tiny franchise clusters, and no SVD of 100-odd
    components keeps them (Cowboy Bebop's movie fell to the 137th neighbour of the series); a random
    projection keeps every pair's title similarity, to within about 1/sqrt(names_dimensions).
    """
    settings = content_settings(settings)
    if len(anime) == 0:
        raise ValueError("no anime to build content features for")
    if not 0 <= settings.names_dimensions < settings.dimensions:
        raise ValueError(f"names_dimensions must be from 0 to dimensions - 1, not {settings.names_dimensions}")
    story = story_vectors(anime, settings)
    blocks = content_blocks(anime, settings, story)
    names_weight = float(settings.weights.get("names", 0.0))
    sketched = settings.names_dimensions > 0 and names_weight > 0 and blocks["names"].shape[1] > 0
    weights = {**settings.weights, "names": 0.0} if sketched else dict(settings.weights)
    reduced, explained = _reduce(combine_blocks(blocks, weights), settings.dimensions
                                 - (settings.names_dimensions if sketched else 0), settings)
    parts = [reduced]
    if sketched:
        rng = np.random.default_rng(settings.seed)
        projection = rng.standard_normal((blocks["names"].shape[1], settings.names_dimensions), dtype=np.float32)
        parts.append((blocks["names"] * np.float32(names_weight)) @ (projection / np.sqrt(settings.names_dimensions)))
    stacked = np.hstack(parts)
    matrix = (normalize(stacked, norm="l2") if stacked.shape[1] else stacked).astype(np.float32)
    return ContentFeatures(np.ascontiguousarray(matrix), story, settings, explained)


def _reduce(combined: sp.csr_matrix, dimensions: int, settings: ContentSettings) -> tuple[np.ndarray, float]:
    """``dimensions`` seeded TruncatedSVD components of ``combined`` (padded with zeros when the table is too
    small to have that many) and the share of variance they keep."""
    components = min(dimensions, combined.shape[1] - 1, combined.shape[0] - 1)
    if components < 1:
        reduced, explained = combined.toarray()[:, :dimensions], 1.0
    else:
        svd = TruncatedSVD(n_components=components, algorithm="randomized", n_iter=settings.svd_iterations,
                           random_state=settings.seed)
        reduced = _fixed_signs(svd.fit_transform(combined))
        explained = float(svd.explained_variance_ratio_.sum())
    if reduced.shape[1] < dimensions:  # the shape never depends on the table's size
        reduced = np.hstack([reduced, np.zeros((len(reduced), dimensions - reduced.shape[1]), reduced.dtype)])
    return reduced.astype(np.float32), explained


def _fixed_signs(matrix: np.ndarray) -> np.ndarray:
    """Each component's sign fixed (largest absolute loading positive), so the output does not flip between runs."""
    flip = np.sign(matrix[np.abs(matrix).argmax(axis=0), np.arange(matrix.shape[1])])
    flip[flip == 0] = 1
    return matrix * flip
