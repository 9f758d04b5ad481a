"""The readable summary of a bench/run.py report: one table of medians against the issue's targets."""
from __future__ import annotations

from typing import Any

FULL_SIZE_ROWS = 100_000_000  # at or above this, the full-size (109 M-row) processing targets apply
TARGET_ROWS = 20_000_000


def _verdict(value: float | None, limit: float | None, at_most: bool = True) -> str:
    if value is None or limit is None:
        return ""
    return "ok" if (value <= limit if at_most else value >= limit) else "MISSED"


def _row(figure: str, value: str, target: str = "", verdict: str = "", runs: str = "") -> str:
    return f"| {figure} | {value} | {target} | {verdict} | {runs} |"


def _serving_rows(serving: dict) -> list[str]:
    targets = serving["targets_p99_ms"]
    rows = []
    for kind, layers in serving["results"].items():
        engine, api = layers["engine"], layers["api"]
        limit = targets.get(kind)
        rows.append(_row(f"in process: {kind} p50 / p95 / p99 ms (through Flask; engine alone)",
                         f"{api['p50_ms']:.2f} / {api['p95_ms']:.2f} / **{api['p99_ms']:.2f}** "
                         f"({engine['p50_ms']:.2f} / {engine['p95_ms']:.2f} / {engine['p99_ms']:.2f})",
                         f"p99 <= {limit:g} ms" if limit else "", _verdict(api["p99_ms"], limit),
                         f"{serving['repeats']} x {serving['requests_per_kind']}"))
    return rows


def _http_rows(http: dict) -> list[str]:
    median, runs = http["median"], f"{http['repeats']} x {http['seconds']} s"
    generator = f"{http['generator']}, {http['connections']} connections"
    return [
        _row(f"HTTP mix ({generator}): requests/s", f"{median['requests_per_second']:.0f}", ">= 400",
             _verdict(median["requests_per_second"], 400, at_most=False), runs),
        _row("HTTP mix: p50 / p99 ms", f"{median['p50_ms']:.1f} / **{median['p99_ms']:.1f}**", "p99 <= 100 ms",
             _verdict(median["p99_ms"], 100), runs),
        _row("HTTP mix: errors", f"{median['errors']:.0f} of {median['requests']:.0f}", "0",
             _verdict(median["errors"], 0), runs),
        _row("HTTP: server CPU per request (load-independent)", f"{median['server_cpu_ms_per_request']:.2f} ms "
             f"(generator {median['generator_cpu_ms_per_request']:.2f} ms)", "", "", runs),
        _row("HTTP: memory a worker adds (USS; RSS)", f"{median['max_worker_uss_mib']:.0f} MiB "
             f"({median['max_worker_rss_mib']:.0f} MiB; master {median['master_rss_mib']:.0f} MiB)",
             "<= 150 MB", _verdict(median["max_worker_uss_mib"] * 2**20 / 1e6, 150), runs),
    ]


def _rows_text(rows: int) -> str:
    return f"{rows / 1e6:,.0f} M rows" if rows >= 1e6 else f"{rows:,} rows"


def _processing_rows(result: dict) -> list[str]:
    median = result["median"]
    rows = result["runs"][0]["rows"]
    peak_gb = median["peak_rss_bytes"] / 1e9
    runs = f"{len(result['runs'])} x {_rows_text(rows)}"
    if rows >= FULL_SIZE_ROWS:
        return [_row(f"processing {_rows_text(rows)}: seconds (rows/s)",
                     f"{median['seconds']:.1f} ({median['rows_per_second'] / 1e6:.2f} M/s)", "<= 180 s",
                     _verdict(median["seconds"], 180), runs),
                _row("processing full size: peak RSS", f"{peak_gb:.2f} GB", "<= 6 GB", _verdict(peak_gb, 6), runs)]
    at_target = rows == TARGET_ROWS
    note = "" if at_target else " (target at 20 M)"
    return [_row(f"processing {_rows_text(rows)}: rows/s (seconds; CPU seconds)",
                 f"{median['rows_per_second'] / 1e6:.2f} M ({median['seconds']:.1f} s; {median['cpu_seconds']:.1f} s)",
                 ">= 2 M/s" + note, _verdict(median["rows_per_second"], 2e6, at_most=False) if at_target else "", runs),
            _row("processing: peak RSS", f"{peak_gb:.2f} GB", "<= 1.5 GB" + note,
                 _verdict(peak_gb, 1.5) if at_target else "", runs)]


def _training_rows(result: dict) -> list[str]:
    throughput = result["throughput"]
    runs = f"{throughput['epochs'] - 1} epochs after the first"
    rows = [_row(f"training ({throughput['users']:,} users): samples/s", f"{throughput['samples_per_second']:,.0f}",
                 ">= 200,000", _verdict(throughput["samples_per_second"], 200_000, at_most=False), runs),
            _row("training: seconds per epoch (first, with compilation)",
                 f"{throughput['seconds_per_epoch']:.1f} ({throughput['first_epoch_seconds']:.1f})", "", "", runs)]
    default = result.get("default_model")
    if default:
        stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in default["stages"].items())
        rows.append(_row(f"training: default model, {default['users']} users, {default['epochs_run']} epochs",
                         f"{default['seconds']:.0f} s ({stages})", "", "", "1"))
    return rows


def _startup_row(results: dict) -> list[str]:
    if "startup" in results:
        seconds, runs = results["startup"]["median"]["ready_seconds"], f"{len(results['startup']['runs'])} cold starts"
    elif "http" in results:
        seconds, runs = results["http"]["median"]["ready_seconds"], f"{results['http']['repeats']} (HTTP runs)"
    else:
        return []
    return [_row("start-up: gunicorn start -> /readyz 200", f"{seconds:.2f} s", "<= 10 s", _verdict(seconds, 10), runs)]


def summary_markdown(report: dict[str, Any]) -> str:
    results, info = report["results"], report["machine"]
    lines = [f"# Benchmark summary ({report['mode']})", "",
             f"`{report['command']}` on {report['started_at']}; {info['cpu_count']} cores, {info['memory_gb']} GB, "
             f"load average {info['load_average'][0]} at the start, {report['load_average_after'][0]} at the end; "
             f"model: {report.get('model') or 'n/a'}. Medians over the runs shown.", "",
             "| figure | median | target | verdict | runs |", "|---|---|---|---|---|"]
    if "serving" in results:
        lines += _serving_rows(results["serving"])
    if "http" in results:
        lines += _http_rows(results["http"])
    lines += _startup_row(results)
    if "processing" in results:
        lines += _processing_rows(results["processing"])
    if "training" in results:
        lines += _training_rows(results["training"])
    return "\n".join(lines) + "\n"
