"""One installable package: importable anywhere, console entry points, no sys.path patching, and every runtime
requirement imported by product code (the serving image installs exactly what serving imports)."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ["application.py", "gunicorn.conf.py", "src", "pipeline", "config", "utils"]
SERVING = ["application.py", "gunicorn.conf.py", "src/web", "src/engine", "src/store", "src/data/files.py",
           "src/data/splits.py", "src/models/ease.py", "src/errors.py", "src/logger.py", "config", "utils"]
# Distribution name -> import name, where they differ.
IMPORT_NAMES = {"tensorflow-cpu": "tensorflow", "pyyaml": "yaml", "comet-ml": "comet_ml", "scikit-learn": "sklearn"}
# Requirements that product code uses without importing them, and how.
RUN_NOT_IMPORTED = {"gunicorn": "the production server that runs the app (gunicorn --config gunicorn.conf.py)"}
# Imports that only an optional extra of setup.py provides.
EXTRAS = {"google": "google-cloud-storage, the gcs extra (data.source: gcs)"}


def python_files(paths: list[str]) -> list[Path]:
    files = []
    for path in map(REPO.joinpath, paths):
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def third_party_imports(paths: list[str]) -> set[str]:
    local = {"application", "src", "pipeline", "config", "utils", "bench", "tests"}
    found = set()
    for file in python_files(paths):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found - local if name not in sys.stdlib_module_names}


def requirements(name: str) -> set[str]:
    names = set()
    for line in (REPO / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("-r "):
            names |= requirements(line[3:])
        elif line and not line.startswith("#"):
            distribution = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
            names.add(IMPORT_NAMES.get(distribution, distribution.replace("-", "_")))
    return names


def test_every_runtime_requirement_is_imported_by_product_code():
    imported = third_party_imports(PRODUCT)
    unused = requirements("requirements.txt") - imported - set(RUN_NOT_IMPORTED)
    assert not unused, f"in requirements.txt but imported by no product code: {sorted(unused)}"
    missing = imported - requirements("requirements.txt") - set(EXTRAS)
    assert not missing, f"imported by product code but not required: {sorted(missing)}"


def test_the_serving_image_installs_exactly_what_serving_imports():
    assert requirements("requirements-serving.txt") == third_party_imports(SERVING) | set(RUN_NOT_IMPORTED)


def test_no_file_patches_sys_path():
    patched = [str(file.relative_to(REPO)) for file in python_files([*PRODUCT, "bench", "tests"])
               if re.search(r"sys\.path\.(insert|append)", file.read_text(encoding="utf-8"))
               and file.name != "test_packaging.py"]
    assert patched == []


@pytest.mark.parametrize("command", [
    ["{bin}/anime-train", "--help"], ["{bin}/anime-evaluate", "--help"], ["{bin}/anime-recommend", "--help"],
    ["{bin}/anime-tune", "--help"], ["{python}", "-m", "pipeline.training_pipeline", "--help"],
    ["{python}", "pipeline/training_pipeline.py", "--help"],
])
def test_entry_points_run_from_anywhere(command, tmp_path):
    argv = [part.format(bin=Path(sys.executable).parent, python=sys.executable) for part in command]
    if argv[1:2] == ["pipeline/training_pipeline.py"]:
        argv[1] = str(REPO / argv[1])
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
