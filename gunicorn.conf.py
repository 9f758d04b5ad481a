"""gunicorn settings: `gunicorn --config gunicorn.conf.py` (the app is named below, no argument needed).

Environment overrides: GUNICORN_BIND (e.g. 127.0.0.1:8000) or PORT (binds 0.0.0.0:$PORT), WEB_CONCURRENCY
(worker processes, default 2), GUNICORN_THREADS (threads per worker, default 4), GUNICORN_TIMEOUT (seconds).
"""
import os

# Set before the app (and so numpy) is imported: a request is a few small matrix products, and BLAS spawning
# a thread per core in every worker only adds contention. Real cores are used by workers and threads instead.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

wsgi_app = "application:create_app()"
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# Load the artifacts once in the master, then fork: the workers share the embedding arrays' memory pages.
preload_app = True
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound; jitter avoids restarting all at once.
# Rarely: a restart costs a burst of slow requests (at 10,000 it recycled every ~30 s under load and pushed
# p99 from ~85 to ~120 ms, bench/RESULTS.md), while the soak shows worker memory flat (+1.2% in 2 minutes).
max_requests = 200000
max_requests_jitter = 20000
# Request-line and header limits (8190 is gunicorn's maximum; longer lines get a 414); bodies are capped by
# the app (MAX_CONTENT_LENGTH).
limit_request_line = 8190
limit_request_fields = 100
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# Heartbeat files in memory, not on a possibly slow or read-only container disk.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
