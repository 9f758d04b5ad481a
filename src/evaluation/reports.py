"""Reports: metrics.json, evaluation.md and chart.png, each written atomically, and the same metrics to Comet."""
from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from src.evaluation.protocol import RANKING_METRICS
from src.logger import get_logger
from utils.atomic import write_bytes, write_json

logger = get_logger(__name__)

METRIC_LABELS = {
    "hr": "HR@{k}", "recall": "Recall@{k}", "ndcg": "NDCG@{k}", "coverage": "Coverage@{k}",
    "mean_popularity_rank": "Mean popularity rank", "users": "Users",
}
REPORT_FILES = {"metrics": "metrics.json", "markdown": "evaluation.md", "chart": "chart.png"}


def _format_value(metric: str, value: Any) -> str:
    if metric == "users":
        return str(int(value))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.1f}" if metric == "mean_popularity_rank" else f"{value:.4f}"


def markdown_report(results: Mapping[str, Mapping[str, float]], meta: Mapping[str, Any]) -> str:
    """A readable markdown table of every method's metrics, followed by the evaluation settings."""
    k = meta.get("k", "k")
    metrics = [metric for metric in METRIC_LABELS if any(metric in values for values in results.values())]
    header = ["Method"] + [METRIC_LABELS[metric].format(k=k) for metric in metrics]
    lines = ["# Offline evaluation", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, values in results.items():
        lines.append("| " + " | ".join([method] + [_format_value(m, values.get(m)) for m in metrics]) + " |")
    lines += ["", "Held-out protocol and metric formulas: see `src/evaluation/__init__.py` and `src/evaluation/metrics.py`.", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items()]
    return "\n".join(lines) + "\n"


def bar_chart_png(results: Mapping[str, Mapping[str, float]], k: int | str = "k") -> bytes:
    """A grouped bar chart (one group per method, one bar per ranking metric) as PNG bytes."""
    os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "anime-recommender-matplotlib"))
    # The object-oriented API with the Agg canvas needs no global backend and no pyplot state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = list(results)
    figure = Figure(figsize=(max(6.0, 1.6 * len(methods) + 2), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / len(RANKING_METRICS)
    positions = np.arange(len(methods))
    for offset, metric in enumerate(RANKING_METRICS):
        values = [results[method].get(metric, np.nan) for method in methods]
        bars = axes.bar(positions + (offset - (len(RANKING_METRICS) - 1) / 2) * width, values, width,
                        label=METRIC_LABELS[metric].format(k=k))
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    axes.set_xticks(positions, methods)
    axes.set_ylim(0, 1.15)  # every ranking metric is in [0, 1]; the headroom keeps the legend off the bars
    axes.set_ylabel("score (higher is better)")
    axes.set_title(f"Held-out ranking metrics at k={k}")
    axes.legend(loc="upper center", ncols=len(RANKING_METRICS), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_reports(results: Mapping[str, Mapping[str, float]], folder: str | Path,
                  meta: Mapping[str, Any]) -> dict[str, Path]:
    """Write metrics.json, evaluation.md and chart.png into ``folder``, each atomically; return their paths.

    metrics.json is ``{"methods": {method: {metric: value}}, "meta": meta}``; ``meta`` should say how the numbers
    were obtained (users evaluated, k, seed, thresholds such as min_user_ratings and holdout_fraction).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / filename for name, filename in REPORT_FILES.items()}
    results = {method: dict(values) for method, values in results.items()}
    write_json(paths["metrics"], {"methods": results, "meta": dict(meta)})
    write_bytes(paths["markdown"], markdown_report(results, meta).encode("utf-8"))
    write_bytes(paths["chart"], bar_chart_png(results, meta.get("k", "k")))
    logger.info("evaluation reports written to %s", folder)
    return paths


def log_to_comet(experiment: Any, results: Mapping[str, Mapping[str, float]],
                 report_files: Iterable[str | Path] = ()) -> None:
    """Log each method's metrics (prefixed with the method name) and the report files to a Comet experiment.

    ``experiment`` may be None (Comet not configured): nothing happens. Comet is a side channel, so a failure
    there is logged as a warning instead of losing an evaluation that already succeeded.
    """
    if experiment is None:
        return
    try:
        for method, metrics in results.items():
            experiment.log_metrics(dict(metrics), prefix=method)
        for path in report_files:
            experiment.log_asset(str(path))
    except Exception as error:  # noqa: BLE001 - any Comet/network failure must not fail the evaluation
        logger.warning("could not log the evaluation to Comet (%s: %s)", type(error).__name__, error)
