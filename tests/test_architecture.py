"""The house's shape: which package may import which (pyproject.toml's import-linter contracts), no import cycle,
every room saying what lives in it, and a model published before the rearrangement still served the same."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from src.engine.recommender import Recommender
from src.engine.serving_config import ServingConfig
from tests.fixtures.published_before_31.make_fixture import answers

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
BEFORE_31 = Path(__file__).parent / "fixtures" / "published_before_31"
# What may sit at the top of src/: only what every layer shares.
SHARED_MODULES = {"__init__.py", "errors.py", "logger.py"}


def test_every_import_runs_down_the_layers():
    """pyproject.toml's contracts: src.web > tuning > evaluation > training > engine > store > data > models, and
    utils, errors and logger import nothing of the product. Lazy imports inside functions count too."""
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_module_imports_itself_round_a_cycle():
    graph = grimp.build_graph("src", cache_dir=None)
    cycles = sorted({tuple(sorted((importer, imported)))
                     for importer in graph.modules
                     for imported in graph.find_modules_directly_imported_by(importer)
                     if graph.chain_exists(importer=imported, imported=importer)})
    assert not cycles, f"import cycles between {cycles}"


def test_the_top_of_src_holds_only_what_every_layer_shares():
    assert {path.name for path in SRC.glob("*.py")} == SHARED_MODULES


@pytest.mark.parametrize("package", sorted(path.parent.name for path in SRC.glob("*/__init__.py")))
def test_each_room_says_in_its_init_what_lives_there(package):
    docstring = ast.get_docstring(ast.parse((SRC / package / "__init__.py").read_text(encoding="utf-8")))
    assert docstring, f"src/{package}/__init__.py has no docstring saying what lives there"


def test_a_model_published_before_the_rearrangement_answers_as_it_did(tmp_path, base_config):
    """The tiny model published by the code before issue 31 (its own publish step: candidates, manifest, version),
    loaded by today's code: every user's recommendations, every anime's similar anime, a favourites list and a
    search are exactly what that code answered (tests/fixtures/published_before_31/make_fixture.py)."""
    folder = shutil.copytree(BEFORE_31 / "model", tmp_path / "model")
    expected = json.loads((BEFORE_31 / "answers.json").read_text(encoding="utf-8"))
    engine = Recommender.from_folder(folder, ServingConfig.from_config(base_config))
    user_ids = json.loads((folder / "user_ids.json").read_text(encoding="utf-8"))
    assert answers(engine, user_ids) == expected
