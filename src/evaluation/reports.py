"""Reports: metrics.json, evaluation.md and chart.png, each written atomically, and the same metrics to Comet."""
from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from src.evaluation.baselines import BASELINES
from src.evaluation.metrics import paired_difference
from src.evaluation.protocol import RANKING_METRICS, Evaluation
from src.logger import get_logger
from utils.atomic import write_bytes, write_json

logger = get_logger(__name__)

METRIC_LABELS = {
    "hr": "HR@{k}", "recall": "Recall@{k}", "recall_se": "Recall SE", "ndcg": "NDCG@{k}", "coverage": "Coverage@{k}",
    "mean_popularity_rank": "Mean popularity rank", "franchise_repeats": "Franchise repeats@{k}", "users": "Users",
}
REPORT_FILES = {"metrics": "metrics.json", "markdown": "evaluation.md", "chart": "chart.png"}


def _format_value(metric: str, value: Any) -> str:
    if metric == "users":
        return str(int(value))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if metric == "franchise_repeats":
        return f"{value:.2f}"
    return f"{value:.1f}" if metric == "mean_popularity_rank" else f"{value:.4f}"


SECTION_TITLES = {"methods": "Known users (held-out 20 % of each user's ratings)",
                  "newcomers": "Newcomers (users never trained on, recommended for from their favourites)",
                  "imported_lists": "Imported lists (the newcomers again, each bringing their whole list)",
                  "new_anime": "New anime (rated anime held out of training, placed by their content alone)"}
# The product's method in each section, compared with the best baseline.
SECTION_PRODUCTS = {"methods": "hybrid", "newcomers": "favourites", "imported_lists": "import"}


def best_baseline(results: Mapping[str, Mapping[str, float]], metric: str = "recall") -> str | None:
    """The baseline with the highest ``metric`` among those in ``results``."""
    present = [name for name in BASELINES if name in results]
    return max(present, key=lambda name: results[name][metric]) if present else None


def _table(results: Mapping[str, Mapping[str, float]], k: Any) -> list[str]:
    metrics = [metric for metric in METRIC_LABELS if any(metric in values for values in results.values())]
    header = ["Method"] + [METRIC_LABELS[metric].format(k=k) for metric in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, values in results.items():
        lines.append("| " + " | ".join([method] + [_format_value(m, values.get(m)) for m in metrics]) + " |")
    return lines


def _ratio_to_best_baseline(results: Mapping[str, Mapping[str, float]], product: str) -> tuple[str, float] | None:
    """(the best baseline, the product's Recall@k over its), or None without both (or with a baseline at 0)."""
    baseline = best_baseline(results)
    if baseline is None or product not in results or not results[baseline]["recall"]:
        return None
    return baseline, results[product]["recall"] / results[baseline]["recall"]


def versus_best_baseline(evaluation: Evaluation, product: str) -> dict[str, Any] | None:
    """The product against the best baseline of the same evaluation: the ratio of their Recall@k and the per-user
    difference with its standard error, paired over the same users (None without both)."""
    if (best := _ratio_to_best_baseline(evaluation.metrics, product)) is None:
        return None
    baseline, ratio = best
    difference, error = paired_difference(evaluation.recalls[product], evaluation.recalls[baseline])
    return {"product": product, "baseline": baseline, "ratio": ratio, "difference": difference,
            "standard_error": error, "users": int(len(evaluation.recalls[product]))}


def _comparison(results: Mapping[str, Mapping[str, float]], product: str, k: Any,
                versus: Mapping[str, Any] | None = None) -> list[str]:
    if (best := _ratio_to_best_baseline(results, product)) is None:
        return []
    baseline, ratio = best
    line = (f"**{product}** Recall@{k} {results[product]['recall']:.4f} against the best baseline, **{baseline}**, "
            f"{results[baseline]['recall']:.4f}: **{ratio:.3f}x**.")
    if versus and versus.get("baseline") == baseline:
        difference, error = versus["difference"], versus["standard_error"]
        verdict = f"{abs(difference) / error:.1f} standard errors" if error > 0 else "the same for every user"
        line += (f" Per user, over the same {versus['users']:,} users: {difference:+.4f}, standard error "
                 f"{error:.4f} ({verdict}).")
    return ["", line]


def markdown_report(results: Mapping[str, Mapping[str, float]], meta: Mapping[str, Any],
                    sections: Mapping[str, Mapping[str, Any]] | None = None,
                    versus: Mapping[str, Any] | None = None) -> str:
    """Readable markdown: a table per section (known users, then newcomers and new anime when given), each with
    the product's ratio to the best baseline (and the paired difference, ``versus``, when known), followed by the
    evaluation settings."""
    k = meta.get("k", "k")
    lines = ["# Offline evaluation", "", f"## {SECTION_TITLES['methods']}", "", *_table(results, k),
             *_comparison(results, "hybrid", k, versus)]
    for name, section in (sections or {}).items():
        lines += ["", f"## {SECTION_TITLES.get(name, name)}", ""]
        if section.get("methods"):
            lines += [*_table(section["methods"], k),
                      *_comparison(section["methods"], SECTION_PRODUCTS.get(name, "favourites"), k,
                                   section.get("versus"))]
        lines += [f"- {key}: {value}" for key, value in section.get("meta", {}).items()]
    lines += ["", "## Settings", "",
              "Held-out protocol and metric formulas: `src/evaluation/__init__.py` and `src/evaluation/metrics.py`. "
              "Every setting was chosen on a validation carve of the training rows, never on the test set.", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items()]
    return "\n".join(lines) + "\n"


def bar_chart_png(results: Mapping[str, Mapping[str, float]], k: int | str = "k",
                  sections: Mapping[str, Mapping[str, Any]] | None = None) -> bytes:
    """Grouped bars (one group per method, one bar per ranking metric), one panel per section, as PNG bytes."""
    os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "anime-recommender-matplotlib"))
    # The object-oriented API with the Agg canvas needs no global backend and no pyplot state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("methods", results)] + [(name, section["methods"]) for name, section in (sections or {}).items()
                                       if section.get("methods")]
    widest = max(len(methods) for _, methods in panels)
    figure = Figure(figsize=(max(6.0, 1.3 * widest + 2), 4.2 * len(panels)), dpi=100)
    FigureCanvasAgg(figure)
    width = 0.8 / len(RANKING_METRICS)
    for row, (name, methods) in enumerate(panels, start=1):
        axes = figure.add_subplot(len(panels), 1, row)
        positions = np.arange(len(methods))
        for offset, metric in enumerate(RANKING_METRICS):
            values = [methods[method].get(metric, np.nan) for method in methods]
            errors = [methods[method].get("recall_se", 0.0) for method in methods] if metric == "recall" else None
            bars = axes.bar(positions + (offset - (len(RANKING_METRICS) - 1) / 2) * width, values, width,
                            yerr=errors, error_kw={"elinewidth": 0.8, "capsize": 2},
                            label=METRIC_LABELS[metric].format(k=k) + (" ± SE" if errors else ""))
            axes.bar_label(bars, fmt="%.3f", fontsize=6, padding=2)
        axes.set_xticks(positions, list(methods), fontsize=8)
        axes.set_ylim(0, 1.15)  # every ranking metric is in [0, 1]; the headroom keeps the legend off the bars
        axes.set_ylabel("score (higher is better)")
        axes.set_title(f"{SECTION_TITLES.get(name, name).split(' (')[0]}: held-out ranking metrics at k={k}")
        axes.legend(loc="upper center", ncols=len(RANKING_METRICS), frameon=False, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_reports(results: Mapping[str, Mapping[str, float]], folder: str | Path, meta: Mapping[str, Any],
                  versus: Mapping[str, Any] | None = None, **sections: Mapping[str, Any]) -> dict[str, Path]:
    """Write metrics.json, evaluation.md and chart.png into ``folder``, each atomically; return their paths.

    metrics.json is ``{"methods": {method: {metric: value}}, "versus": ..., <section>: {"methods": ...,
    "versus": ..., "meta": ...}, "meta": meta}`` with a section per keyword (``newcomers``, ``new_anime``);
    ``versus`` is the product against the best baseline (``versus_best_baseline``), ``meta`` says how the
    numbers were obtained.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / filename for name, filename in REPORT_FILES.items()}
    results = {method: dict(values) for method, values in results.items()}
    write_json(paths["metrics"], {"methods": results, **({"versus": dict(versus)} if versus else {}),
                                  **{name: dict(section) for name, section in sections.items()}, "meta": dict(meta)})
    write_bytes(paths["markdown"], markdown_report(results, meta, sections, versus).encode("utf-8"))
    write_bytes(paths["chart"], bar_chart_png(results, meta.get("k", "k"), sections))
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
