# Anime recommender: the Flask app under gunicorn behind Debian's nginx, with its model artifacts baked into the image.
#
#   docker/build-image.sh --tag anime-recommender [--model artifacts/model]   (CI's and make image-test's command)
#   docker build -t anime-recommender .                                        (the working tree as it is)
#   docker run --rm -p 5000:5000 --read-only --tmpfs /tmp anime-recommender
#
# It runs what `make serve` runs (deploy/serve.py): nginx on 0.0.0.0:5000 holding slow clients, limiting requests per
# client, refusing oversized requests and serving /static (deploy/traffic.yaml), in front of gunicorn on a Unix socket
# (issue 16, DEPLOYMENT.md "Hostile traffic"). `docker kill --signal HUP` reloads the model, as under make serve.
#
# Where the model comes from: CI runs `dvc pull` / `dvc repro` before building, and docker/build-image.sh --model
# puts artifacts/model/ in the build context, where it is copied in as it is. On a fresh clone there is none, and
# the `model` stage trains on the embedded sample instead (the pipeline's stages without the evaluation: train
# chooses the settings and fits the evaluation model, refit fits the served one on every rating), so every build
# gives an image that serves with no network at run time.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---- serving-deps: what the web app needs at run time, in its own cached layer ----
FROM ${PYTHON_IMAGE} AS serving-deps
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements-serving.txt ./
# The same RUN trims what serving never loads, so it never reaches a layer (budget in DEPLOYMENT.md): the
# libraries' own test suites (~100 MB), and their bytecode (--no-compile: 49 MB of .pyc, mostly of modules serving
# never imports; the runtime stage compiles what it does import). The model stage's load check and
# tests/test_image.py run on this trimmed set, so a trim that breaks an import fails the build. Serving reads .npy,
# .npz and JSON only: no pyarrow here.
RUN pip install --no-cache-dir --no-compile -r requirements-serving.txt \
 && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && find "$site" -depth -type d -name tests -path "$site/*/tests" -exec rm -rf {} +

# ---- deps: plus training (TensorFlow, comet-ml, DVC), only for the model stage; the runtime image stays small ----
FROM serving-deps AS deps
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# ---- model: the pipeline's artifacts if CI provided them, otherwise a model trained on the embedded sample ----
FROM deps AS model
# Optional overrides for the fallback training, e.g. --build-arg TRAIN_EPOCHS=3 for a quick local image.
ARG TRAIN_EPOCHS=""
ARG MIN_USER_RATINGS=""
WORKDIR /build
# .dockerignore lets in only code, config, data/sample and the model (no raw or processed data). artifacts/model
# is the pointer to the current version in artifacts/models/ (src/store/registry.py): that version is baked in,
# as a plain folder with its version id in its manifest (the X-Model-Version the pods answer with).
COPY . ./
ENV ANIME_ARTIFACTS_DIR=/build/artifacts
# The load check fails the build on incomplete or inconsistent artifacts rather than the pods at start-up.
# (No evaluate stage: the image needs the model, not the report.)
# deploy/slim_model.py leaves out model.keras (serving never runs the network) and EASE's dense weights when the
# server derives them cheaply at load (the embedded sample's two, 332 MB; the full-size model's are kept): the
# load check after it derives them as the pods will. chmod: the app is not root, whatever modes the artifacts
# arrived with.
RUN if [ -f artifacts/model/manifest.json ]; then \
        echo "Using the model artifacts from the build context"; \
    else \
        echo "No artifacts/model in the build context: training on the embedded sample"; \
        python -m pipeline.training_pipeline --stage ingest \
        && python -m pipeline.training_pipeline --stage process \
            ${MIN_USER_RATINGS:+--min-user-ratings "$MIN_USER_RATINGS"} \
        && python -m pipeline.training_pipeline --stage train ${TRAIN_EPOCHS:+--epochs "$TRAIN_EPOCHS"} \
        && python -m pipeline.training_pipeline --stage refit ${TRAIN_EPOCHS:+--epochs "$TRAIN_EPOCHS"}; \
    fi \
 && mkdir -p /opt/anime/artifacts \
 && mv "$(readlink -f artifacts/model)" /opt/anime/artifacts/model \
 && python -m deploy.slim_model /opt/anime/artifacts/model \
 && python -c "from src.store.artifacts import load_model_artifacts; load_model_artifacts('/opt/anime/artifacts/model')" \
 && chmod -R a+rX /opt/anime/artifacts \
 && rm -rf artifacts data \
 && python -m compileall -q /build

# ---- runtime: serving dependencies + nginx + code + model, run as a non-root user, nothing written outside /tmp ----
FROM serving-deps AS runtime
# Debian's nginx, the reverse proxy of deploy/serve.py (~3 MB). It runs as the app's user from a config rendered
# under /tmp; nothing of Debian's own nginx setup (its site, its service) is used.
# deploy/nginx.conf.template uses nothing newer than nginx 1.19, so the version is left to the base's release:
# not pinned, as Debian's release (1.22 on bookworm, 1.26 on trixie) decides it.
# apt's own caches go too: the official image's docker-clean setting drops them, a stand-in base keeps them (77 MB).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /etc/nginx/sites-enabled/* \
 && nginx -v
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it (deployment.yaml uses the same ids).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home --shell /usr/sbin/nologin app
# Code and model stay owned by root: the app can read them but not change them.
COPY --from=model /build /app
COPY --from=model /opt/anime/artifacts /opt/anime/artifacts
# Bytecode for exactly the modules serving imports (the app, its model load and gunicorn's worker), written once
# here because the read-only root cannot take it at run time: without it every start would compile them again.
RUN ANIME_ARTIFACTS_DIR=/opt/anime/artifacts PYTHONDONTWRITEBYTECODE='' python -c \
    "import application, deploy.serve, gunicorn.app.wsgiapp, gunicorn.workers.gthread; application.create_app()"
# The root filesystem may be mounted read-only, so every writable path points at /tmp
# (an emptyDir in Kubernetes, `--tmpfs /tmp` with docker run --read-only).
ENV ANIME_ARTIFACTS_DIR=/opt/anime/artifacts \
    SERVE_HOST=0.0.0.0 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
EXPOSE 5000
# /healthz answers (through nginx) as soon as gunicorn serves; urlopen raises (exit 1) on a refused connection or an
# error status.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"]
# nginx on SERVE_HOST:PORT (0.0.0.0:5000) in front of gunicorn (gunicorn.conf.py); pid 1 passes HUP to gunicorn and
# stops both gracefully on TERM.
CMD ["python", "-m", "deploy.serve"]
