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

from config.settings import ServingConfig
from src.engine.recommender import Recommender
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


def _raw_config_reads(path: Path) -> list[str]:
    """``config["..."]`` or ``config.get("...")`` in ``path``, or the same on a local bound to a part of config."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for function in [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]:
        bound = {"config"}

        def base(node: ast.AST) -> ast.AST:
            while True:
                if isinstance(node, ast.Subscript):
                    node = node.value
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                    node = node.func.value
                else:
                    return node

        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript | ast.Call):
                root = base(node.value)
                if node.value is not root and isinstance(root, ast.Name) and root.id in bound:
                    bound |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(function):
            if (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                    and isinstance(node.value, ast.Name) and node.value.id in bound):
                found.append(f"{path}:{node.lineno} {ast.unparse(node)}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                  and isinstance(node.func.value, ast.Name) and node.func.value.id in bound):
                found.append(f"{path}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_config_is_read_as_typed_settings_never_as_a_raw_mapping():
    """Every section is a typed object of config/settings.py, checked once where a command starts; a module that
    indexes the config mapping by string (108 such reads in 13 modules before issue 31) would bypass the check."""
    files = [*SRC.rglob("*.py"), *(REPO / "pipeline").glob("*.py"), REPO / "application.py"]
    reads = [read for path in files for read in _raw_config_reads(path)]
    assert not reads, "raw config reads:\n" + "\n".join(reads)


def test_the_raw_read_check_finds_them(tmp_path):
    source = 'def f(config):\n    section = config["evaluation"]\n    return section["k"], config.get("seed")\n'
    probe = tmp_path / "raw_read_probe.py"
    probe.write_text(source, encoding="utf-8")
    assert len(_raw_config_reads(probe)) == 3
