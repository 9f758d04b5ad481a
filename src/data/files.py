"""The processed data's own files, which every model folder carries too: the id maps and the content features.

Processing writes them (artifacts/processed/), training copies them into the model, and the store reads them back.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from src.errors import ArtifactError

_MAX_ID = 2**63 - 1


def write_ids(path: Path, ids: np.ndarray) -> None:
    path.write_text(json.dumps([int(i) for i in ids]), encoding="utf-8")


def read_ids(path: Path) -> np.ndarray:
    ids = json.loads(path.read_text(encoding="utf-8"))
    # bool is an int to Python, and ids past int64 would overflow the array below
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= _MAX_ID
                                            for i in ids):
        raise ArtifactError(f"{path.name} must be a JSON list of integer ids from 0 to {_MAX_ID}; retrain")
    return np.asarray(ids, dtype=np.int64)


def save_content_features(folder: Path, features: np.ndarray, story: sp.spmatrix | None) -> None:
    """The catalogue's content features (row j = catalogue row j) and synopsis vectors (for "story like" reasons)."""
    np.save(folder / "content_features.npy", np.asarray(features, dtype=np.float32), allow_pickle=False)
    story = sp.csr_matrix((0, 0), dtype=np.float32) if story is None else sp.csr_matrix(story, dtype=np.float32)
    np.savez(folder / "story.npz", data=story.data, indices=story.indices, indptr=story.indptr,
             shape=np.array(story.shape))


def load_content_features(folder: Path) -> tuple[np.ndarray, sp.csr_matrix]:
    features = np.load(folder / "content_features.npy", allow_pickle=False)
    with (folder / "story.npz").open("rb") as handle, np.load(handle, allow_pickle=False) as stored:
        story = sp.csr_matrix((stored["data"], stored["indices"], stored["indptr"]), shape=tuple(stored["shape"]))
    return features, story
