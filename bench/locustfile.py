"""Locust load for the HTTP benchmark: the throughput mix of bench/request_mix.py, replayed without think time.

    PYTHONPATH=. locust -f bench/locustfile.py --headless -u 32 -r 32 -t 30s --host http://127.0.0.1:5000

Locust loads this file by path, so the repository root must be importable: bench/http_load.py runs locust
from the repository root with it on PYTHONPATH. Every simulated user sends its next request as soon as the
previous answer arrives, so 32 users keep 32 connections busy. The requests come from ``BENCH_REQUESTS_FILE``
when bench/http_load.py prepared one, otherwise they are drawn here from the model artifacts
(``BENCH_ARTIFACTS_DIR``, default the model dir).
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

from locust import FastHttpUser, constant, task

from bench.request_mix import make_requests, read_requests
from config.paths_config import model_dir

if os.environ.get("BENCH_REQUESTS_FILE"):
    REQUESTS = read_requests(Path(os.environ["BENCH_REQUESTS_FILE"]))
else:
    REQUESTS = make_requests(Path(os.environ.get("BENCH_ARTIFACTS_DIR") or model_dir()), 20_000,
                             int(os.environ.get("BENCH_SEED", "42")))
_user_numbers = itertools.count()


class RecommenderUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        # each user replays the list from its own starting point, so they do not send the same request at once
        start = next(_user_numbers) * 7919 % len(REQUESTS)
        self.requests = itertools.cycle(REQUESTS[start:] + REQUESTS[:start])

    @task
    def next_request(self) -> None:
        request = next(self.requests)
        self.client.request(request.method, request.path, data=request.body, headers=request.headers,
                            name=request.kind)
