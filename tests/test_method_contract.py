"""One contract for every method (src/models/method.py): each baseline of the evaluation and each scorer of the
engine, fitted on one small checkerboard whose right answers are known, and held to the same promises (in the
spirit of benfred/implicit's shared recommender tests).

The board: even users like even anime and odd users odd anime, each user with one liked anime held out (user u's
is anime u); one more user has no rows at all; two anime nobody rated close the catalogue, known by their content
only (one even-like, one odd-like). The baselines are fitted as the evaluation fits them (``RowBaselines``, on the
rated anime, scoring the catalogue), the engine's scorers are the ones a ``Recommender`` builds from the board's
artifacts, and every list is cut by the one ``top_k``. Every method gets:

- scores of shape (n x width), no NaN, the same for a person whether scored alone or in a batch;
- lists of shape (n x k), known anime never in them, -1 padding once the candidates run out;
- the tie-break: equal scores go to the earlier anime of the popularity order (the lower index without one);
- the same scores when fitted again with the same seed;
- a valid answer for a person with nothing on their list;
- the held-out anime first, for every user, where the method can tell users apart.
"""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from src.data.splits import SPLIT_TRAIN
from src.engine import scorers as engine_scorers
from src.engine.interactions import Profiles
from src.engine.ranking import top_k
from src.engine.recommender import Recommender
from src.engine.settings import COMPONENTS
from src.evaluation.baselines import BASELINES, EmbeddingCosine, OnCatalogue
from src.evaluation.runner import RowBaselines
from src.models.ease import fit_item_weights
from src.models.method import TAKES, Method
from src.store.artifacts import ModelArtifacts

N_USERS, N_RATED = 10, 10  # the board's users and rated anime
EMPTY_USER = N_USERS  # one more user, with no rows at all
WIDTH = N_RATED + 2  # the catalogue: the rated anime, then two nobody rated (an even-like one, an odd-like one)
HELD = np.arange(N_USERS)  # user u's held-out anime is anime u (same parity as u)
SEED = 42
# each baseline's setting, as the carve would choose one
SETTINGS = {
    "popularity": {"values": "any"},
    "item_knn": {"values": "any", "shrink": 0.0, "neighbours": 3},
    "als": {"values": "any", "factors": 2, "regularization": 0.01, "alpha": 1.0, "iterations": 20},
    "ease": {"values": "any", "regularisation": 1.0, "max_anime": None},
}
# Every method: the tuned baselines, the NCF's own cosine (the original design's "direct" score), the engine's
# components. Registering a baseline or a component puts it under this contract.
METHODS = ([pytest.param(("baseline", name), id=f"baseline-{name}") for name in BASELINES]
           + [pytest.param(("baseline", "embedding_cosine"), id="baseline-embedding_cosine")]
           + [pytest.param(("engine", name), id=f"engine-{name}") for name in COMPONENTS])
# Methods that score every person alike: on this board they cannot know whose anime was held out.
NOT_PERSONAL = {"popularity"}
# Engine components that look only at the anime nobody rated: their right answer is the one of the user's parity.
UNRATED_ONLY = {"unrated"}


def board_rows() -> pd.DataFrame:
    pairs = [(user, anime) for user in range(N_USERS) for anime in range(user % 2, N_RATED, 2) if anime != HELD[user]]
    users, anime = np.array(pairs).T
    return pd.DataFrame({"user_index": users.astype(np.int32), "anime_index": anime.astype(np.int32),
                         "rating": np.full(len(pairs), 8, np.int8), "split": np.full(len(pairs), SPLIT_TRAIN, np.int8)})


def axis(index: int, size: int = 4) -> np.ndarray:
    vector = np.zeros(size, np.float32)
    vector[index] = 1.0
    return vector


def board_artifacts() -> ModelArtifacts:
    rows = board_rows()
    anime = np.arange(WIDTH)
    # the popularity order (most members first) is not the index order: 0, 5, 10, 3, 8, 1, 6, 11, 4, 9, 2, 7
    members = 1_000 - 10 * ((anime * 5) % WIDTH)
    frame = pd.DataFrame({"anime_id": 100 + anime, "name": [f"Anime {j}" for j in anime],
                          "english_name": [None] * WIDTH,
                          "genres": [["Action"] if j % 2 == 0 else ["Romance"] for j in anime], "type": "TV",
                          "episodes": pd.array([12] * WIDTH, dtype="Int32"), "premiered": None,
                          "year": pd.array([2000] * WIDTH, dtype="Int32"), "score": np.float32(7.0),
                          "members": members, "synopsis": ""})
    user_embeddings = np.array([axis(user % 2) for user in range(N_USERS)] + [axis(3)])
    anime_embeddings = np.array([axis(j % 2) for j in range(N_RATED)])
    # the never-rated anime lean towards their parity, less than the rated anime do
    content = np.array([axis(j % 2) for j in range(N_RATED)] + [0.6 * axis(j % 2) + 0.8 * axis(2)
                                                                 for j in range(N_RATED, WIDTH)])
    item_item = {"values": "any", "regularisation": 1.0, "neighbours": None}
    hybrid = {"weights": {"item_item": 1.0, "ncf": 1.0}, "favourites_weights": {"item_item": 1.0},
              "similar_users": 4, "item_item": item_item}
    return ModelArtifacts(
        user_embeddings=user_embeddings, anime_embeddings=anime_embeddings,
        user_ids=np.arange(N_USERS + 1, dtype=np.int64) + 1, anime_ids=frame["anime_id"].to_numpy()[:N_RATED],
        anime=frame, user_ratings=rows, manifest={"model": {"temperature": 5.0}, "hybrid": hybrid},
        item_weights=fit_item_weights(rows, N_USERS + 1, N_RATED, item_item), content_features=content)


class Board:
    """The board's methods, fitted afresh on demand, and what each one is given to score."""

    def __init__(self, serving_config) -> None:
        self.serving_config, self.artifacts = serving_config, board_artifacts()
        self.engine = Recommender(self.artifacts, serving_config)
        self.order = self.engine.catalogue.popularity_order
        self.known = sp.csr_matrix(self.engine.interactions.known)  # (users x catalogue): what each one has

    def method(self, kind: str, name: str, seed: int = SEED) -> Method:
        if kind == "engine":
            return Recommender(self.artifacts, self.serving_config).hybrid.scorers[name]
        if name == "embedding_cosine":
            return OnCatalogue(EmbeddingCosine(self.artifacts.user_embeddings, self.artifacts.anime_embeddings), WIDTH)
        fitter = RowBaselines(self.artifacts.user_ratings, N_USERS + 1, N_RATED, WIDTH)
        return fitter.scorer(name, SETTINGS[name], keep=False, seed=seed)

    def who(self, method: Method, users: np.ndarray) -> object:
        """The people ``users`` as ``method`` takes them."""
        users = np.asarray(users, dtype=np.int64)
        if method.takes == "users":
            return users
        if method.takes == "rows":
            return self.known[users]
        return self.engine.interactions.profiles(users)

    def values(self, method: Method, users: np.ndarray) -> np.ndarray:
        return method.score(self.who(method, users)).values


@pytest.fixture(scope="module")
def board(serving_config) -> Board:
    return Board(serving_config)


USERS = np.arange(N_USERS + 1)  # every user, the empty one last


def lists(values: np.ndarray, k: int, known: sp.csr_matrix | None, order: np.ndarray | None) -> np.ndarray:
    return top_k(values, k, exclude=known, tiebreak=order)


def expected_list(row: np.ndarray, known: np.ndarray, order: np.ndarray | None, k: int) -> list[int]:
    """By hand: the candidates (finite score, not known) by score, ties to the earlier in ``order`` (or index)."""
    position = np.empty(len(row), np.int64)
    position[order if order is not None else np.arange(len(row))] = np.arange(len(row))
    candidates = [j for j in range(len(row)) if np.isfinite(row[j]) and j not in set(known.tolist())]
    ranked = sorted(candidates, key=lambda j: (-row[j], position[j]))[:k]
    return ranked + [-1] * (k - len(ranked))


@pytest.mark.parametrize("method_id", METHODS)
def test_it_is_a_method_of_the_catalogue(board, method_id):
    method = board.method(*method_id)
    assert isinstance(method, Method) and method.takes in TAKES and isinstance(method.name, str)
    assert method.width == WIDTH
    if method_id[0] == "engine":
        assert method.name == method_id[1] and method.takes == "profiles" and callable(method.normalise)


@pytest.mark.parametrize("method_id", METHODS)
def test_scores_are_one_row_per_person_whether_alone_or_in_a_batch(board, method_id):
    method = board.method(*method_id)
    values = board.values(method, USERS)
    assert values.shape == (len(USERS), WIDTH) and np.issubdtype(values.dtype, np.floating)
    assert not np.isnan(values).any() and not np.isposinf(values).any()
    for user in USERS:
        np.testing.assert_allclose(board.values(method, [user])[0], values[user], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method_id", METHODS)
def test_lists_never_show_known_anime_and_are_padded_once_candidates_run_out(board, method_id):
    method = board.method(*method_id)
    values = board.values(method, USERS)
    k = WIDTH + 3  # more than the catalogue
    top = lists(values, k, board.known[USERS], board.order)
    assert top.shape == (len(USERS), k) and top.dtype == np.int64
    for user, row in zip(USERS, top, strict=True):
        shown = row[row >= 0]
        assert (row[len(shown):] == -1).all() and len(shown) < k  # the -1 padding comes last
        assert len(set(shown.tolist())) == len(shown)
        known = set(board.known[user].indices.tolist())
        assert not known & set(shown.tolist())
        assert set(shown.tolist()) == {j for j in range(WIDTH) if np.isfinite(values[user, j]) and j not in known}
    short = lists(values, 3, board.known[USERS], board.order)
    assert short.shape == (len(USERS), 3) and np.array_equal(short, top[:, :3])  # deeper lists extend shorter ones


@pytest.mark.parametrize("method_id", METHODS)
def test_equal_scores_go_to_the_earlier_anime_of_the_popularity_order(board, method_id):
    method = board.method(*method_id)
    values = board.values(method, USERS)
    ranked = values.astype(np.result_type(values.dtype, np.float32))  # top_k ranks in the scores' own float type
    for order in (board.order, None):
        top = lists(values, WIDTH, board.known[USERS], order)
        for user in USERS:
            assert top[user].tolist() == expected_list(ranked[user], board.known[user].indices, order, WIDTH)


def test_on_the_board_popularity_is_all_ties_broken_by_the_popularity_order(board):
    """Every rated anime is liked by four users: the popularity lists are the popularity order itself."""
    for kind in ("baseline", "engine"):
        method = board.method(kind, "popularity")
        top = lists(board.values(method, USERS), WIDTH, board.known[USERS], board.order)
        for user in USERS:
            known = set(board.known[user].indices.tolist())
            rated = [j for j in board.order.tolist() if j < N_RATED and j not in known]
            unrated = [j for j in board.order.tolist() if j >= N_RATED] if kind == "engine" else []  # counted 0
            assert top[user][top[user] >= 0].tolist() == rated + unrated, (kind, user)


@pytest.mark.parametrize("method_id", METHODS)
def test_fitting_again_with_the_same_seed_gives_the_same_scores(board, method_id):
    first, second = board.method(*method_id, seed=SEED), board.method(*method_id, seed=SEED)
    assert first is not second
    np.testing.assert_array_equal(board.values(first, USERS), board.values(second, USERS))
    np.testing.assert_array_equal(board.values(first, USERS), board.values(first, USERS))  # and asking again


@pytest.mark.parametrize("method_id", METHODS)
def test_a_person_with_nothing_on_their_list_gets_a_valid_answer(board, method_id):
    method = board.method(*method_id)
    nobody = [board.who(method, [EMPTY_USER])]
    if method.takes == "rows":
        nobody.append(sp.csr_matrix((1, WIDTH), dtype=np.float32))  # a newcomer with no favourites
    if method.takes == "profiles":
        nobody.append(Profiles.from_favourites([np.zeros(0, np.int64)], WIDTH))
    for who in nobody:
        values = method.score(who).values
        assert values.shape == (1, WIDTH) and not np.isnan(values).any()
        top = lists(values, 5, None, board.order)[0]
        shown = top[top >= 0]
        assert len(set(shown.tolist())) == len(shown) and (top[len(shown):] == -1).all()
        assert set(shown.tolist()) <= set(np.flatnonzero(np.isfinite(values[0])).tolist())


@pytest.mark.parametrize("method_id", METHODS)
def test_the_held_out_anime_comes_first_where_the_method_can_know_it(board, method_id):
    kind, name = method_id
    method = board.method(kind, name)
    users = np.arange(N_USERS)
    values = board.values(method, users)
    first = lists(values, 1, board.known[users], board.order)[:, 0]
    if name in NOT_PERSONAL:  # it scores everyone alike: nothing to find
        assert (values == values[0]).all()
    elif kind == "engine" and name in UNRATED_ONLY:  # the never-rated anime of the user's parity
        assert first.tolist() == [N_RATED + user % 2 for user in users]
    else:
        assert first.tolist() == HELD.tolist()


def test_every_baseline_and_every_engine_scorer_is_under_the_contract(board):
    """A baseline registered in BASELINES, a component named in COMPONENTS: each is parametrised above, and the
    board's engine builds every one of them, so a new scorer class cannot slip past the contract."""
    assert set(board.engine.hybrid.scorers) == set(COMPONENTS)
    built = {type(scorer) for scorer in board.engine.hybrid.scorers.values()}
    classes = {cls for _, cls in inspect.getmembers(engine_scorers, inspect.isclass)
               if cls.__module__ == engine_scorers.__name__ and hasattr(cls, "normalise") and cls is not
               engine_scorers.Scorer}
    assert classes == built
    assert set(SETTINGS) == set(BASELINES)
