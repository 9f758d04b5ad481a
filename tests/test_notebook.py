"""notebook/anime.ipynb: committed without outputs, and executed top to bottom with nbclient against a really
trained and evaluated artifacts root, every figure with its caption, in under 3 minutes."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from config import paths_config
from tests.conftest import small_training_config

NOTEBOOK = paths_config.PROJECT_ROOT / "notebook" / "anime.ipynb"
FIGURES = 12  # data 3, training 2, quality 4, embeddings 1, product 2
TABLES = 5  # similar anime for three titles, a user's recommendations, recommendations from favourites
BUDGET_SECONDS = 180


def test_the_committed_notebook_has_no_outputs_and_runs_on_the_python3_kernel():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code"
    for number, cell in enumerate(code, start=1):
        assert cell.outputs == [], f"code cell {number} has outputs: clear them before committing"
        assert cell.execution_count is None, f"code cell {number} has an execution count: clear it"
    # "python3" is the kernel of the interpreter that runs Jupyter (the project's .venv under make)
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.fixture(scope="module")
def evaluated_root(trained_root: Path, tmp_path_factory: pytest.TempPathFactory, base_config: dict) -> Path:
    """An artifacts root as the pipeline leaves it: raw and processed data, the served model, the evaluation model
    and the evaluation reports. The trained model (test rows held out) is both models here, as with
    ``evaluation.refit: false``; the shared ``trained_root`` is only read."""
    from src.evaluation.runner import evaluate_model

    root = tmp_path_factory.mktemp("notebook-artifacts")
    model = paths_config.model_dir(trained_root).resolve()
    for name in ("raw", "processed"):
        (root / name).symlink_to(trained_root / name, target_is_directory=True)
    paths_config.model_dir(root).symlink_to(model, target_is_directory=True)
    paths_config.evaluation_model_dir(root).parent.mkdir(parents=True)
    paths_config.evaluation_model_dir(root).symlink_to(model, target_is_directory=True)
    evaluate_model(small_training_config(base_config), model_dir=paths_config.evaluation_model_dir(root),
                   processed_dir=paths_config.processed_dir(root), reports_dir=paths_config.reports_dir(root),
                   compare_original=False)
    return root


def _text(output: dict) -> str:
    if output["output_type"] == "stream":
        return output["text"]
    return "".join(output.get("data", {}).get("text/markdown", "")) + "".join(output.get("data", {}).get(
        "text/plain", ""))


@pytest.mark.integration
def test_the_notebook_executes_top_to_bottom_with_a_caption_under_every_figure(evaluated_root, monkeypatch,
                                                                               tmp_path):
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(evaluated_root))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=BUDGET_SECONDS, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    seconds = time.perf_counter() - started
    print(f"notebook executed in {seconds:.0f} s")
    assert seconds < BUDGET_SECONDS

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    texts = [_text(output) for output in outputs]
    assert f"kernel: {sys.executable}" in texts[0]  # the project's interpreter, not some other Python
    stderr = [output["text"] for output in outputs if output.get("name") == "stderr"]
    assert not stderr, f"the notebook wrote to stderr (warnings or logs): {stderr}"
    assert not [text for text in texts if "**Note.**" in text], "a section was skipped: an artifact is missing"

    images = [output for output in outputs if "image/png" in output.get("data", {})]
    captions = [text for text in texts if text.startswith("**Figure ")]
    assert len(images) == FIGURES and len(captions) == FIGURES
    assert [int(re.match(r"\*\*Figure (\d+)\.\*\*", c).group(1)) for c in captions] == list(range(1, FIGURES + 1))
    assert all(len(caption.splitlines()) == 1 and len(caption) > 40 for caption in captions)
    assert sum(1 for output in outputs if "text/html" in output.get("data", {})) >= TABLES
    # the products against their best baseline, user by user, as metrics.json's "versus" records them
    assert any(text.startswith("hybrid against ") and "standard error" in text for text in texts)
    assert any("Per user, " in caption and "standard error" in caption for caption in captions)

    # the curves are the evaluation's own: Recall@k read off them is metrics.json's
    gap = next(float(m.group(1)) for text in texts if (m := re.search(r"largest difference (\S+)", text)))
    assert gap < 1e-9

    html, _ = HTMLExporter().from_notebook_node(notebook)
    assert html.count("Figure ") >= FIGURES and html.count("data:image/png;base64") >= FIGURES
    (tmp_path / "notebook.html").write_text(html, encoding="utf-8")


@pytest.mark.integration
def test_recall_curves_meet_the_report_at_its_k(evaluated_root):
    from src.evaluation.curves import recall_curves
    from utils.common_functions import read_json

    metrics = read_json(paths_config.reports_dir(evaluated_root) / "metrics.json")
    curves = recall_curves(metrics, paths_config.evaluation_model_dir(evaluated_root), max_k=20,
                           processed_dir=paths_config.processed_dir(evaluated_root))
    assert list(curves) == list(metrics["methods"])  # every method of the report, baselines included
    k = metrics["meta"]["k"]
    for method, curve in curves.items():
        assert curve.shape == (20,) and np.all((curve >= 0) & (curve <= 1))
        assert curve[k - 1] == pytest.approx(metrics["methods"][method]["recall"], abs=1e-12), method
