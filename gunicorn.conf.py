"""gunicorn settings: `gunicorn --config gunicorn.conf.py` (the app is named below, no argument needed).

In production gunicorn runs behind nginx: `make serve` and the container start deploy/serve.py, which starts gunicorn
with this file on a Unix socket and nginx in front of it (issue 16: gunicorn's workers alone are held by clients that
send half a request and wait). Run alone, as the tests and benchmarks that compare the two do, it serves HTTP itself.

Environment overrides: GUNICORN_BIND (e.g. 127.0.0.1:8000 or unix:/path) or PORT (binds 0.0.0.0:$PORT),
WEB_CONCURRENCY (worker processes, default 2), GUNICORN_THREADS (threads per worker, default 2), GUNICORN_TIMEOUT
(seconds), GUNICORN_PIDFILE (write the master's pid there, for `kill -HUP`), MODEL_WATCH_SECONDS (how often the
master checks whether the current model changed, default 5; 0 = only on HUP), GUNICORN_LIMIT_REQUEST_FIELDS (header
count, default 100; deploy/serve.py sets it from deploy/traffic.yaml), GUNICORN_ACCESS_LOG (`off` behind nginx,
which logs every request with the client's address).

A new model without downtime (DEPLOYMENT.md, "Model versions"): `kill -HUP <master pid>` makes the master load
the current model version (artifacts/model), then fork new workers with it. The old workers finish their
requests and stop. If the new model fails its load checks, the master keeps the one it has, the new workers
serve that, and /readyz says why.
"""
import os
import signal
import threading
import time

# Set before the app (and so numpy) is imported: a request is a few small matrix products, and BLAS spawning
# a thread per core in every worker only adds contention. Real cores are used by workers and threads instead.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

wsgi_app = "application:create_app()"
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Two threads: nginx reads every request whole before it reaches a worker, so a thread never waits on a client, and
# more threads only contend for the worker's GIL and caches (full-size model at 400 requests/s: p99 71 ms with
# two, 114 ms with four; bench/RESULTS.md)
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
worker_class = "gthread"
# Load the app and the model in the master, then fork: the workers share the libraries' and the arrays' memory
# pages (total PSS 203 MiB for master + 2 workers, against 323 MiB when each worker loads its own; DEPLOYMENT.md).
# A HUP reloads the model in the master (on_reload below), so preloading does not pin the first model.
preload_app = True
pidfile = os.environ.get("GUNICORN_PIDFILE") or None
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# Longer than nginx keeps an idle connection to gunicorn (4 s, deploy/nginx.conf.template): nginx closes it first.
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound; jitter avoids restarting all at once.
# Rarely: a restart costs a burst of slow requests (at 10,000 it recycled every ~30 s under load and pushed
# p99 from ~85 to ~120 ms, bench/RESULTS.md), while the soak shows worker memory flat (+1.2% in 2 minutes).
max_requests = 200000
max_requests_jitter = 20000
# Request-line and header limits (8190 is gunicorn's maximum; longer lines get a 414; more headers a 431); bodies
# are capped by the app (MAX_CONTENT_LENGTH). Behind nginx, nginx refuses first (deploy/traffic.yaml), with the same
# statuses; gunicorn's header count is the one limit nginx has not got, so deploy/serve.py sets it.
limit_request_line = 8190
limit_request_fields = int(os.environ.get("GUNICORN_LIMIT_REQUEST_FIELDS", "100"))
accesslog = None if os.environ.get("GUNICORN_ACCESS_LOG") == "off" else "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# Heartbeat files in memory, not on a possibly slow or read-only container disk.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"


# ---------------------------------------------------------------------------------------------------------
# Model versions: reload on HUP, and optionally watch the pointer (DEPLOYMENT.md, "Model versions")
# ---------------------------------------------------------------------------------------------------------
MODEL_WATCH_SECONDS = float(os.environ.get("MODEL_WATCH_SECONDS", "5"))


def on_reload(server):
    """HUP, in the master, before the new workers fork: load the current model into the preloaded app.

    The old workers keep answering meanwhile; the new ones start with the model already in memory. A model that
    fails its load checks is refused and the one already loaded stays (src/web/state.py: reload_engine). Never
    raises: an exception here would stop the master.
    """
    if not server.cfg.preload_app:
        return  # each new worker builds its own app, and so loads the current model itself
    try:
        from src.web.state import EXTENSION_KEY, reload_engine

        app = server.app.wsgi()
        if EXTENSION_KEY in getattr(app, "extensions", {}):
            state = reload_engine(app)
            _release_freed_memory()
            server.log.info("reload: serving model version %s%s", state.version or "none",
                            f" ({state.refused})" if state.refused else "")
    except Exception:  # a bug must not take the master down; the old workers' model stays in place
        server.log.exception("reload: loading the current model failed; the workers keep the model they have")


def _release_freed_memory():
    """Hand the old model's freed heap back to the system before the new workers fork: otherwise each worker
    inherits those free pages and copies them as soon as it allocates there (bench/model_swap.py measures it)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def when_ready(server):
    """Start watching the model pointer: when it names another model, reload as a HUP would."""
    if MODEL_WATCH_SECONDS <= 0 or not server.cfg.preload_app:
        return
    from src.web.state import EXTENSION_KEY, model_signature

    app = server.app.wsgi()
    if EXTENSION_KEY in getattr(app, "extensions", {}):
        threading.Thread(target=_watch_model, args=(app, EXTENSION_KEY, model_signature, MODEL_WATCH_SECONDS),
                         name="model-watch", daemon=True).start()


def _watch_model(app, key, model_signature, interval):
    # Only stat() and kill() in this thread (no imports, no logging): the master forks workers meanwhile, and a
    # lock held here at that moment would stay held in the child.
    folder, seen = app.config["ARTIFACTS_DIR"], app.extensions[key].signature
    while True:
        time.sleep(interval)
        current = model_signature(folder)
        # None: no model at all (mid-`dvc repro`, say), no reason to reload. Already loaded (by a HUP): nothing new.
        if current is not None and current != seen and current != app.extensions[key].signature:
            os.kill(os.getpid(), signal.SIGHUP)
        seen = current or seen
