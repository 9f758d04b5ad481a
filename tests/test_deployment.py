"""Deployment files: Dockerfile, .dockerignore, deployment.yaml, Jenkinsfile, dvc.yaml, and the repo's secrets.

The build machines have no Docker engine and no Kubernetes cluster, so everything here is checked statically
(hadolint, the Kubernetes JSON schemas) or by running the same commands the image and CI run:
- the image's gunicorn command and environment, against the artifacts the DVC pipeline produced, with the
  code and artifacts laid out as the Dockerfile lays them out;
- `dvc repro` on a fresh clone, end to end on a small setting, then again to see it do nothing.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.servers import free_port, request, stop_process_group, wait_until

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PLACEHOLDER = "IMAGE_PLACEHOLDER"
TEST_IMAGE = "us-central1-docker.pkg.dev/example-project/anime-recommender/anime-recommender:0123456789abcdef"
# GKE's channels run a couple of minor versions behind upstream; check one of those and the newest bundled one.
GKE_KUBERNETES_VERSION = "1.33.0"
# Small enough for CI: 150 users of the embedded sample, one epoch (also for the evaluation's comparison model).
SMALL_SETTING = {
    "processing.min_user_ratings": 400,
    "training.epochs": 1,
    "evaluation.original_objective.epochs": 1,
}


def tool(name: str) -> str:
    """A command-line tool from the active virtualenv (preferred) or PATH; fail if it is not installed."""
    candidate = VENV_BIN / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make install` (requirements-dev.txt provides it)")
    return found


# ---------------------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[int, str, str]]:
    """(stage number, INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    instructions, stage, pending = [], -1, ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        pending += " " + stripped
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append((stage, keyword, arguments.strip()))
        pending = ""
    return instructions


def model_stage_runs(path: Path) -> list[str]:
    """The RUN scripts of the stage named `model` (found by name: stages are added and reordered)."""
    instructions = dockerfile_instructions(path)
    model_stage = next(stage for stage, keyword, arguments in instructions
                       if keyword == "FROM" and arguments.split()[-1] == "model")
    return [arguments for stage, keyword, arguments in instructions if stage == model_stage and keyword == "RUN"]


def final_stage(path: Path) -> list[tuple[str, str]]:
    instructions = dockerfile_instructions(path)
    last = max(stage for stage, _, _ in instructions)
    return [(keyword, arguments) for stage, keyword, arguments in instructions if stage == last]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of a CMD or HEALTHCHECK ... CMD instruction."""
    return json.loads(arguments[arguments.index("["):])


def stage_env(path: Path, stage_name: str) -> dict[str, str]:
    """ENV values in force in a stage, following `FROM <earlier stage>` chains."""
    instructions = dockerfile_instructions(path)
    names, parents = {}, {}
    for stage, keyword, arguments in instructions:
        if keyword == "FROM":
            words = arguments.split()
            parents[stage] = words[0]
            if len(words) == 3 and words[1].upper() == "AS":
                names[words[2]] = stage
    env: dict[str, str] = {}
    stage: int | None = names[stage_name]
    chain = []
    while stage is not None:
        chain.append(stage)
        stage = names.get(parents[stage])
    for number in reversed(chain):
        for stage_number, keyword, arguments in instructions:
            if stage_number == number and keyword == "ENV":
                env.update(dict(item.split("=", 1) for item in shlex.split(arguments)))
    return env


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "custom_jenkins/Dockerfile"])
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    # Every level counts (error, warning, info, style): a rule that does not apply is ignored inline, with a reason.
    result = subprocess.run([tool("hadolint"), "--no-color", "--format", "json", dockerfile],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in findings)


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "custom_jenkins/Dockerfile"])
def test_every_hadolint_ignore_says_why(dockerfile: str) -> None:
    lines = (REPO / dockerfile).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = lines[number - 1].strip() if number else ""
            assert reason.startswith("#") and "hadolint" not in reason and len(reason) > 20, (
                f"{dockerfile}:{number + 1}: put the reason for the ignore in a comment on the line above")


def test_image_is_slim_python_311_non_root_on_port_5000_with_healthcheck() -> None:
    dockerfile = REPO / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    runtime = final_stage(dockerfile)
    users = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert users[-1].split(":")[0].isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    assert ("EXPOSE", "5000") in runtime
    healthchecks = [arguments for keyword, arguments in runtime if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "127.0.0.1:5000/healthz" in healthchecks[0]
    assert exec_form(healthchecks[0])[0] == "python", "the slim image has no curl: the check uses Python"


@pytest.mark.parametrize("requirements", ["requirements-serving.txt", "requirements.txt"])
def test_dependencies_are_installed_in_their_own_cached_layer(requirements: str) -> None:
    instructions = dockerfile_instructions(REPO / "Dockerfile")
    position = {}
    for index, (_, keyword, arguments) in enumerate(instructions):
        if keyword == "COPY" and arguments.split()[0] == requirements:
            position.setdefault("copy requirements", index)
        if keyword == "RUN" and "pip install" in arguments and f"-r {requirements}" in arguments:
            position.setdefault("pip install", index)
        if keyword == "COPY" and arguments.split()[0] == ".":
            position.setdefault("copy everything", index)
    assert position["copy requirements"] < position["pip install"] < position["copy everything"]


def test_runtime_image_installs_only_the_serving_dependencies() -> None:
    """TensorFlow, comet-ml and DVC are for training; the served image leaves them out."""
    runtime_base = [arguments for keyword, arguments in final_stage(REPO / "Dockerfile")
                    if keyword == "FROM"]
    assert runtime_base and runtime_base[0].split()[0] == "serving-deps"
    serving = (REPO / "requirements-serving.txt").read_text()
    assert "tensorflow" not in serving and "flask" in serving and "gunicorn" in serving


def test_runtime_can_run_with_a_read_only_root_filesystem() -> None:
    env = stage_env(REPO / "Dockerfile", "runtime")
    assert env["ANIME_ARTIFACTS_DIR"] == "/opt/anime/artifacts"
    for name in ("HOME", "TMPDIR", "MPLCONFIGDIR"):
        assert env[name] == "/tmp" or env[name].startswith("/tmp/"), f"{name} must point under /tmp"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"


def test_image_serves_what_make_serve_serves() -> None:
    """One production entry point (issue 16): the container's command is deploy/serve.py, nginx in front of gunicorn
    with gunicorn.conf.py, whose app is the factory; `make serve` runs the same module, on 127.0.0.1."""
    cmd = [exec_form(arguments) for keyword, arguments in final_stage(REPO / "Dockerfile") if keyword == "CMD"]
    assert cmd == [["python", "-m", "deploy.serve"]]
    assert stage_env(REPO / "Dockerfile", "runtime")["SERVE_HOST"] == "0.0.0.0"
    serve = (REPO / "deploy" / "serve.py").read_text(encoding="utf-8")
    assert '"-m", "gunicorn", "--config", "gunicorn.conf.py"' in serve
    assert re.search(r"^serve:.*\n\t\$\(PY\) -m deploy\.serve --host 127\.0\.0\.1$",
                     (REPO / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)


def test_model_stage_trains_on_the_sample_only_when_no_artifacts_were_provided() -> None:
    script = " ".join(model_stage_runs(REPO / "Dockerfile"))
    assert "[ -f artifacts/model/manifest.json ]" in script
    for stage in ("ingest", "process", "train"):
        assert f"-m pipeline.training_pipeline --stage {stage}" in script
    # the baked copy is slimmed (model.keras, EASE's derivable dense B), then loaded as the pods will load it
    assert script.index("-m deploy.slim_model /opt/anime/artifacts/model") < script.index(
        "load_model_artifacts('/opt/anime/artifacts/model')")


def test_jenkins_image_has_what_the_jenkinsfile_calls() -> None:
    text = (REPO / "custom_jenkins" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG JENKINS_IMAGE=jenkins/jenkins:lts-jdk\d+$", text, re.MULTILINE)
    for package in ("docker-ce-cli", "google-cloud-cli", "google-cloud-cli-gke-gcloud-auth-plugin", "kubectl",
                    "make", "chromium-driver"):
        assert re.search(rf"\s{re.escape(package)}(\s|$)", text), f"{package} is not installed"
    assert "python3.11" in text
    jenkins_stage = final_stage(REPO / "custom_jenkins" / "Dockerfile")
    users = [arguments for keyword, arguments in jenkins_stage if keyword == "USER"]
    assert users[-1] == "jenkins", "Jenkins itself must not run as root"


# ---------------------------------------------------------------------------------------------------------
# .dockerignore
# ---------------------------------------------------------------------------------------------------------

def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception "!", regex) per .dockerignore line, with Docker's glob rules (** spans folders)."""
    patterns = []
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex, index = "", 0
        while index < len(glob):
            if glob.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif glob.startswith("**", index):
                regex, index = regex + ".*", index + 2
            elif glob[index] == "*":
                regex, index = regex + "[^/]*", index + 1
            elif glob[index] == "?":
                regex, index = regex + "[^/]", index + 1
            elif glob[index] == "[":
                end = glob.index("]", index)
                regex, index = regex + glob[index:end + 1], end + 1
            else:
                regex, index = regex + re.escape(glob[index]), index + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def excluded_from_build_context(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path, or a folder above it, decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    excluded = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "venv/lib/site.py", "src/__pycache__/recommender.cpython-311.pyc", "__pycache__/x.pyc",
    ".pytest_cache/v/cache", ".schemathesis/report.json", "artifacts/raw/rating.csv.gz",
    "artifacts/processed/ratings.parquet",
    "artifacts/reports/metrics.json", "artifacts/comet/run.zip", "data/raw/animelist.csv", ".git/HEAD",
    ".dvc/cache/files/md5/00/1", ".env", "gcp-key.json", "tests/test_deployment.py",
])
def test_dockerignore_keeps_out(path: str) -> None:
    assert excluded_from_build_context(path, dockerignore_patterns())


@pytest.mark.parametrize("path", [
    "requirements.txt", "requirements-serving.txt", "application.py", "gunicorn.conf.py", "config/config.yaml",
    "src/engine/recommender.py", "pipeline/training_pipeline.py", "utils/atomic.py", "templates/index.html",
    "static/style.css", "deploy/serve.py", "deploy/nginx.conf.template", "deploy/traffic.yaml", "deploy/error.html",
    "data/sample/rating.csv.gz", "artifacts/model/manifest.json",
    "artifacts/model/anime_embeddings.npy",
])
def test_dockerignore_lets_in(path: str) -> None:
    assert not excluded_from_build_context(path, dockerignore_patterns())


# ---------------------------------------------------------------------------------------------------------
# deployment.yaml
# ---------------------------------------------------------------------------------------------------------

def manifests(image: str = TEST_IMAGE) -> dict[str, dict]:
    text = (REPO / "deployment.yaml").read_text(encoding="utf-8").replace(PLACEHOLDER, image)
    return {document["kind"]: document for document in yaml.safe_load_all(text) if document}


def container() -> dict:
    return manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def memory_mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[:-len(suffix)]) * factor
    return float(quantity) / 2**20


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.mark.parametrize("version", ["gke", "newest"])
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    import kubernetes_validate

    desired = GKE_KUBERNETES_VERSION if version == "gke" else kubernetes_validate.latest_version()
    documents = manifests()
    assert set(documents) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for document in documents.values():
        kubernetes_validate.validate(document, desired, strict=True)  # raises on any schema violation


def test_schema_validation_catches_a_misspelt_field() -> None:
    import kubernetes_validate

    deployment = manifests()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, GKE_KUBERNETES_VERSION, strict=True)


def test_image_is_an_immutable_tag_substituted_by_ci() -> None:
    text = (REPO / "deployment.yaml").read_text(encoding="utf-8")
    raw = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
    assert ":latest" not in json.dumps(raw), "the comments may mention :latest, the manifests may not"
    assert raw["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == PLACEHOLDER
    jenkinsfile = (REPO / "Jenkinsfile").read_text(encoding="utf-8")
    assert f"s|{PLACEHOLDER}|${{IMAGE}}|g" in jenkinsfile
    assert container()["imagePullPolicy"] == "IfNotPresent"


def test_deployment_has_two_replicas_and_probes() -> None:
    assert manifests()["Deployment"]["spec"]["replicas"] == 2
    probes = container()
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["startupProbe"]["httpGet"]["path"] == "/readyz", "startup waits for the artifact load"
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    ports = {port["name"]: port["containerPort"] for port in probes["ports"]}
    assert ports == {"http": 5000}
    for name in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probes[name]["httpGet"]["port"] in ("http", 5000)


def test_resources_are_set_and_cover_the_measured_memory() -> None:
    resources = container()["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"] and kind in resources["limits"]
    assert cpu_cores(resources["requests"]["cpu"]) <= cpu_cores(resources["limits"]["cpu"])
    request = memory_mib(resources["requests"]["memory"])
    limit = memory_mib(resources["limits"]["memory"])
    assert request <= limit
    # The measurement is recorded in the manifest as "measured-pss-mib: N" (see the comment there).
    measured = re.search(r"measured-pss-mib:\s*(\d+)", (REPO / "deployment.yaml").read_text(encoding="utf-8"))
    assert measured, "record the measured serving memory in deployment.yaml"
    assert request >= int(measured.group(1)), "the request must cover the measured memory"
    assert limit >= 1.5 * int(measured.group(1)), "the limit needs headroom over the measured memory"


def test_pod_runs_non_root_with_a_read_only_root_and_writable_tmp() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    security = container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile_user = [a for k, a in final_stage(REPO / "Dockerfile") if k == "USER"][-1].split(":")[0]
    assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container()["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_service_exposes_port_80_to_the_pods_port_5000() -> None:
    documents = manifests()
    service = documents["Service"]["spec"]
    assert service["type"] == "LoadBalancer"
    assert [(port["port"], port["targetPort"]) for port in service["ports"]] == [(80, "http")]
    pod_labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items(), "the Service must select the Deployment's pods"
    assert documents["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_autoscaler_scales_the_deployment_on_cpu_from_2_to_10() -> None:
    documents = manifests()
    hpa = documents["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": documents["Deployment"]["metadata"]["name"]}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert [metric["resource"]["name"] for metric in spec["metrics"]] == ["cpu"]


# ---------------------------------------------------------------------------------------------------------
# Jenkinsfile
# ---------------------------------------------------------------------------------------------------------

def jenkinsfile_code() -> str:
    """The Jenkinsfile without // comments, so checks see only what runs."""
    return re.sub(r"(?m)^\s*//.*$", "", (REPO / "Jenkinsfile").read_text(encoding="utf-8"))


def test_jenkinsfile_runs_the_stages_in_order() -> None:
    code = jenkinsfile_code()
    assert code.lstrip().startswith("pipeline {")
    stages = re.findall(r"stage\('([^']+)'\)", code)
    assert stages == ["Checkout", "Install", "Test", "Reproduce pipeline (DVC)", "Build and push image",
                      "Deploy to GKE"]
    # docker/build-image.sh: the image is built by the same command as `make image-test`'s (tests/test_image.py).
    steps = ["checkout scm", "make install", "make test", "dvc pull", "dvc repro", "docker/build-image.sh",
             "docker push", "kubectl apply", "kubectl rollout status"]
    # Where each runs as a command (at the start of a line), not where a comment or message mentions it.
    positions = [re.search(rf"^\s*(?:sh\s+'|if !\s+)?{re.escape(step)}", code, re.MULTILINE).start() for step in steps]
    assert positions == sorted(positions)
    assert code.count("{") == code.count("}")


def test_jenkinsfile_tags_the_image_with_the_commit_and_pushes_to_google() -> None:
    code = jenkinsfile_code()
    assert "git rev-parse HEAD" in code
    assert ":${env.GIT_COMMIT_ID}" in code
    assert "-docker.pkg.dev/" in code
    assert ":latest" not in code


def test_jenkinsfile_takes_project_settings_and_keys_from_jenkins() -> None:
    code = jenkinsfile_code()
    for name in ("GCP_PROJECT", "GCP_REGION", "GKE_CLUSTER", "DVC_REMOTE_URL", "AR_REPOSITORY"):
        assert not re.search(rf"\b{name}\s*=\s*['\"]", code), f"{name} must come from Jenkins, not the file"
    assert "credentialsId: 'gcp-key'" in code
    # Secrets are expanded by the shell, never interpolated into the script text by Groovy.
    assert not re.search(r'sh\s+"""', code)


# ---------------------------------------------------------------------------------------------------------
# Entry points the image runs
# ---------------------------------------------------------------------------------------------------------

def container_env(writable: Path, artifacts_dir: Path) -> dict[str, str]:
    """This environment plus the runtime stage's ENV, with the container's /tmp mapped to ``writable``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("COMET_", "ANIME_"))}
    for name, value in stage_env(REPO / "Dockerfile", "runtime").items():
        env[name] = value.replace("/tmp", str(writable), 1) if value.startswith("/tmp") else value
    env["ANIME_ARTIFACTS_DIR"] = str(artifacts_dir)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def image_command() -> list[str]:
    cmd = [exec_form(a) for k, a in final_stage(REPO / "Dockerfile") if k == "CMD"][-1]
    return [tool(cmd[0]), *cmd[1:]]


# The gunicorn that deploy/serve.py starts behind nginx (the image's command): the same interpreter, this config.
GUNICORN_COMMAND = ["-m", "gunicorn", "--config", "gunicorn.conf.py"]


def require_app_files(root: Path = REPO) -> None:
    for name in ("application.py", "gunicorn.conf.py"):
        if not (root / name).is_file():
            pytest.skip(f"{name} is not written yet (another engineer owns it); the image's entry point needs it")


def test_gunicorn_config_and_app_factory_load_as_the_image_runs_them(tmp_path: Path) -> None:
    require_app_files()
    python = image_command()[0]
    # --check-config loads gunicorn.conf.py, then imports and calls the factory it names
    check = [python, *GUNICORN_COMMAND[:2], "--check-config", *GUNICORN_COMMAND[2:]]
    result = subprocess.run(check, cwd=REPO, env=container_env(tmp_path, tmp_path / "no-artifacts"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_proxy_listens_on_all_interfaces_port_5000_in_the_container(tmp_path: Path) -> None:
    """nginx faces the pod's port on every interface; gunicorn (behind it, on a Unix socket) faces nothing."""
    require_app_files()
    result = subprocess.run([*image_command(), "--print-config"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env=container_env(tmp_path, tmp_path / "no-artifacts"))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s*listen 0\.0\.0\.0:5000\b", result.stdout, re.MULTILINE), result.stdout
    assert "server unix:" in result.stdout


# ---------------------------------------------------------------------------------------------------------
# A MyAnimeList export's upload (issue 29): the proxy's cap and the app's agree, for those two addresses alone
# ---------------------------------------------------------------------------------------------------------
LIST_LOCATION = "location ~ ^/(api/lists/myanimelist|import)$"


def location_block(config: str, opening: str) -> str:
    """The text of one top-level location of a rendered server block, from its opening line to its closing brace."""
    start = config.index(f"        {opening} {{\n")
    return config[start:config.index("\n        }\n", start)]


def rendered_proxy_config(tmp_path: Path) -> str:
    from deploy import serve

    return serve.nginx_config(serve.load_traffic(), listen="127.0.0.1:5000", run_dir=tmp_path,
                              socket_path=tmp_path / "gunicorn.sock")


def test_the_proxys_list_cap_is_the_apps() -> None:
    from config.loader import load_config
    from config.settings import ServingConfig
    from deploy import serve
    from src.web.list_import import upload_limit

    traffic = serve.load_traffic()
    written = yaml.safe_load((REPO / "deploy" / "traffic.yaml").read_text(encoding="utf-8"))["request"]
    assert written["max_list_bytes"] == traffic["max_list_bytes"]
    assert traffic["max_list_bytes"] == upload_limit(ServingConfig.from_config(load_config())), \
        "deploy/traffic.yaml's max_list_bytes and the app's cap (src/web/list_import.py, upload_limit) must agree"
    assert traffic["list_buffer_bytes"] <= traffic["max_list_bytes"]


def test_the_rendered_proxy_config_gives_the_list_cap_to_the_upload_addresses_alone(tmp_path: Path) -> None:
    from flask import Flask

    from deploy import serve
    from src.web.api import api_bp
    from src.web.list_import import UPLOAD_ENDPOINTS
    from src.web.pages import pages_bp

    traffic, config = serve.load_traffic(), rendered_proxy_config(tmp_path)
    block = location_block(config, LIST_LOCATION)
    assert f"client_max_body_size {traffic['max_list_bytes']};" in block
    assert f"client_body_buffer_size {traffic['list_buffer_bytes']};" in block
    assert "error_page 413 /.errors/413-list.$error_format;" in block
    # the app's own 413s (too many entries, a gzip that unpacks to too much) keep their sentences
    assert "proxy_intercept_errors off;" in block
    assert f"client_max_body_size {traffic['max_body_bytes']};" in config.split(LIST_LOCATION)[0], "the default"
    # nginx's redirect to its own page must not measure an upload's body again against the default cap
    assert "client_max_body_size 0;" in location_block(config, "location /.errors/")
    # the location matches the app's upload views' addresses, and nothing else
    app = Flask(__name__)
    app.register_blueprint(api_bp)
    app.register_blueprint(pages_bp)
    uploads = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint in UPLOAD_ENDPOINTS}
    assert uploads == {"/api/lists/myanimelist", "/import"}
    pattern = LIST_LOCATION.split(" ")[-1]
    others = {"/api/lists/myanimelist/", "/api/lists/myanimelist.xml", "/import/", "/imports", "/api/import",
              "/api/recommendations", "/favourites", "/"}
    assert {path for path in uploads | others if re.search(pattern, path)} == uploads


def test_the_proxys_413_for_a_list_speaks_of_the_file_and_its_size_in_mb() -> None:
    import html

    from config.loader import load_config
    from config.settings import ServingConfig
    from deploy import serve
    from src.web.list_import import too_large

    traffic = serve.load_traffic()
    megabytes = traffic["max_list_bytes"] // 2**20
    run_dir, _ = serve.prepare_run_dir(traffic, "127.0.0.1:5000")  # what deploy/serve.py writes before nginx starts
    try:
        error = json.loads((run_dir / "errors" / "413-list.json").read_text(encoding="utf-8"))["error"]
        page = (run_dir / "errors" / "413-list.html").read_text(encoding="utf-8")
    finally:
        shutil.rmtree(run_dir)
    message = error["message"]
    assert error["status"] == 413
    assert message == (f"the file is larger than any anime list export (at most {megabytes} MB): upload the "
                       "animelist .xml.gz file from MyAnimeList's Export page"), message
    assert f"at most {megabytes} MB" in too_large(ServingConfig.from_config(load_config())), "the app's own words"
    assert "<title>413 · Anime recommender</title>" in page and "<h1>That file is too large</h1>" in page
    assert html.escape(f"that file is larger than any anime list export (at most {megabytes} MB): upload the "
                       "animelist .xml.gz file from MyAnimeList's Export page") in page
    assert "{{" not in page and "bytes" not in page


# ---------------------------------------------------------------------------------------------------------
# DVC pipeline on a fresh clone, then the image's layout and command on what it produced
# ---------------------------------------------------------------------------------------------------------

def dvc(clone: Path, *arguments: str, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("COMET_", "ANIME_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # the stages' `python` is this virtualenv's
    # ...running the clone's code: the virtualenv's editable install would otherwise import this working tree's
    env["PYTHONPATH"] = str(clone)
    result = subprocess.run([tool("dvc"), *arguments], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"dvc {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def fresh_clone(destination: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(destination)], check=True, timeout=300)
    config_path = destination / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for dotted, value in SMALL_SETTING.items():
        *parents, key = dotted.split(".")
        section = config
        for name in parents:
            section = section.get(name) if isinstance(section, dict) else None
        if isinstance(section, dict):  # a setting this version of the config does not have is left alone
            section[key] = value
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return destination


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A fresh clone of the committed repo on which `dvc repro` ran once, and what it printed."""
    workspace = tmp_path_factory.mktemp("dvc")
    clone = fresh_clone(workspace / "clone")
    if not (clone / "pipeline" / "training_pipeline.py").is_file():
        pytest.skip("pipeline/training_pipeline.py is not committed yet (another engineer owns it); "
                    "dvc repro has nothing to run")
    for dependency in yaml.safe_load((clone / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["evaluate"]["deps"]:
        if dependency.endswith(".py") and not (clone / dependency).is_file():
            pytest.skip(f"{dependency} is not committed yet (another engineer owns it); the evaluate stage needs it")
    first = dvc(clone, "repro")
    return {"clone": clone, "workspace": workspace, "first": first.stdout + first.stderr}


@pytest.mark.integration
def test_dvc_repro_runs_every_stage_on_a_fresh_clone(reproduced: dict[str, object]) -> None:
    clone, output = reproduced["clone"], reproduced["first"]
    for stage in ("ingest", "process", "train", "evaluate"):
        assert f"Running stage '{stage}'" in output
    for path in ("artifacts/raw", "artifacts/processed", "artifacts/model/manifest.json",
                 "artifacts/reports/metrics.json", "artifacts/reports/evaluation.md", "dvc.lock"):
        assert (clone / path).exists(), f"{path} was not produced"
    lock = yaml.safe_load((clone / "dvc.lock").read_text(encoding="utf-8"))
    assert lock["stages"]["train"]["params"]["config/config.yaml"]["training"]["epochs"] == 1
    metrics = dvc(clone, "metrics", "show", "--json").stdout
    assert "artifacts/reports/metrics.json" in metrics


@pytest.mark.integration
def test_second_dvc_repro_does_nothing(reproduced: dict[str, object]) -> None:
    clone = reproduced["clone"]
    manifest = clone / "artifacts" / "model" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    output = dvc(clone, "repro").stdout
    assert "Running stage" not in output
    assert "Data and pipelines are up to date." in output
    assert manifest.stat().st_mtime_ns == before
    assert "Data and pipelines are up to date." in dvc(clone, "status").stdout


@pytest.mark.integration
def test_outputs_travel_through_the_default_local_remote(reproduced: dict[str, object]) -> None:
    # The committed default remote is a folder beside the clone, so push and pull work offline.
    clone, workspace = reproduced["clone"], reproduced["workspace"]
    dvc(clone, "push")
    assert (workspace / "dvc-storage").is_dir(), "the default remote should be a folder beside the repo"
    second = fresh_clone(workspace / "second")
    shutil.copy(clone / "dvc.lock", second / "dvc.lock")  # as if the first run's dvc.lock had been committed
    dvc(second, "pull")
    assert (second / "artifacts" / "model" / "manifest.json").is_file()
    # metrics.json is not cached (it is meant to be read and diffed), so only the cheap evaluate stage reruns.
    output = dvc(second, "repro").stdout
    for stage in ("ingest", "process", "train"):
        assert f"Running stage '{stage}'" not in output, "pulled outputs must not be recomputed"


@pytest.mark.integration
def test_image_layout_serves_the_pipelines_model(reproduced: dict[str, object], tmp_path: Path,
                                                 container_tmp: Path) -> None:
    """The Dockerfile's model stage script and runtime command, run without Docker on the DVC clone's model."""
    require_app_files(reproduced["clone"])
    clone: Path = reproduced["clone"]
    context = tmp_path / "build"
    files = subprocess.run(["git", "ls-files"], cwd=clone, capture_output=True, text=True, check=True).stdout.split()
    patterns = dockerignore_patterns()
    for name in [*files, *(f"artifacts/model/{p.name}" for p in (clone / "artifacts" / "model").iterdir())]:
        if not excluded_from_build_context(name, patterns):
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(clone / name, context / name)
    # The model stage's RUN, with its absolute paths moved under tmp_path (we are not inside an image).
    script = model_stage_runs(REPO / "Dockerfile")[0]
    script = script.replace("/opt/anime", str(tmp_path / "opt" / "anime")).replace("/build", str(context))
    env = container_env(tmp_path, context / "artifacts")
    built = subprocess.run(["sh", "-c", script], cwd=context, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Using the model artifacts from the build context" in built.stdout, "it should not have retrained"
    model = tmp_path / "opt" / "anime" / "artifacts" / "model"
    assert (model / "manifest.json").is_file() and not (model / "model.keras").exists()
    assert not (context / "artifacts").exists() and not (context / "data").exists()
    # The app runs as uid 10001: everything it reads must be readable by others.
    for path in [model, *model.iterdir()]:
        needed = 0o005 if path.is_dir() else 0o004
        assert path.stat().st_mode & needed == needed, f"{path.name} is not readable by the app's user"

    port = free_port()
    writable = container_tmp
    env = container_env(writable, model.parent)
    env.update(SERVE_HOST="127.0.0.1", PORT=str(port))  # a free loopback port instead of the image's 0.0.0.0:5000
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([*read_only_root(writable), *image_command()], cwd=context, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(port, "/readyz", server, timeout=180, log_path=log_path)
        assert request(port, "GET", "/healthz")[0] == 200
        # The image's HEALTHCHECK command, pointed at this server's port.
        healthcheck = [exec_form(a) for k, a in final_stage(REPO / "Dockerfile") if k == "HEALTHCHECK"][0]
        healthcheck = [part.replace("127.0.0.1:5000", f"127.0.0.1:{port}") for part in healthcheck]
        assert subprocess.run(healthcheck, env=env, timeout=30).returncode == 0
        # The manifest's memory request must hold what the pod really uses: nginx, the master and every worker,
        # each shared page (the preloaded arrays, the memory-mapped EASE weights) counted once (PSS).
        used_mib = serving_pss_mib(server.pid)
        requested_mib = memory_mib(container()["resources"]["requests"]["memory"])
        print(f"nginx and gunicorn: {used_mib:.0f} MiB (PSS), the pod requests {requested_mib:.0f} MiB")
        assert used_mib < requested_mib, \
            f"nginx and gunicorn use {used_mib:.0f} MiB, the pod requests {requested_mib:.0f} MiB"
    finally:
        stop_process_group(server)


@pytest.fixture
def container_tmp() -> Iterator[Path]:
    """The container's /tmp: a short path, as there, since gunicorn's Unix socket lives in it."""
    with tempfile.TemporaryDirectory(prefix="ctmp-") as folder:
        yield Path(folder)


def read_only_root(writable: Path) -> list[str]:
    """A command prefix that runs the rest with / mounted read-only except ``writable``, like the pod's
    readOnlyRootFilesystem with its /tmp emptyDir; empty where mount namespaces are not allowed (not root)."""
    remount = f"mount --bind {shlex.quote(str(writable))} {shlex.quote(str(writable))} && mount -o remount,bind,ro /"
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{remount} && exec "$@"', "sh"]
    probe = f"! touch {shlex.quote(str(writable.parent))}/probe && touch {shlex.quote(str(writable))}/probe"
    if shutil.which("unshare") and subprocess.run([*prefix, "sh", "-c", probe], capture_output=True,
                                                  timeout=30).returncode == 0:
        return prefix
    warnings.warn("cannot mount / read-only here (needs root and mount namespaces): serving is checked on a "
                  "writable root filesystem", stacklevel=2)
    return []


def serving_pss_mib(master_pid: int) -> float:
    """The proportional set size of a process tree: what the memory cgroup is charged, shared pages once."""
    import psutil

    master = psutil.Process(master_pid)
    return sum(process.memory_full_info().pss for process in [master, *master.children(recursive=True)]) / 2**20


# ---------------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------------

# Built from pieces so this file does not match its own patterns.
DASHES = "-" * 5
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key block": re.compile(DASHES + r"BEGIN (?:[A-Z]+ )?PRIVATE KEY" + DASHES),
    "GCP service-account key": re.compile(r'"type"\s*:\s*"service' + r'_account"'),
    "GCP private key id": re.compile(r'"private_key' + r'_id"\s*:\s*"[0-9a-f]{20,}"'),
    "Comet API key literal": re.compile(r"(?i)\bapi_?key\b['\"]?\s*[:=]\s*['\"][A-Za-z0-9]{16,}['\"]"),
    "long hex or base64 secret": re.compile(
        r"(?i)\b\w*(?:key|token|secret|password)\w*['\"]?\s*[:=]\s*['\"]?"
        r"(?:[0-9a-f]{32,}|[A-Za-z0-9+/_-]{40,}={0,2})\b"),
}


def test_no_file_in_the_repo_holds_a_credential() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    findings = []
    for name in files.decode().split("\0"):
        path = REPO / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (compressed sample data, images)
            continue
        text = data.decode("utf-8", errors="replace")
        for label, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                findings.append(f"{name}:{line}: looks like a {label}")
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("label, sample", [
    ("AWS access key id", "aws_access_key_id = AKIA" + "ABCDEFGHIJKLMNOP"),
    ("private key block", DASHES + "BEGIN RSA PRIVATE KEY" + DASHES),
    ("GCP service-account key", '{"type": "service' + '_account", "project_id": "x"}'),
    ("Comet API key literal", 'api_key = "' + "aB3dE6gH9jK2mN5pQ8sT" + '"'),
    ("long hex or base64 secret", "COMET_TOKEN=" + "0123456789abcdef" * 3),
])
def test_secret_patterns_catch_what_they_are_for(label: str, sample: str) -> None:
    assert SECRET_PATTERNS[label].search(sample)


def test_make_run_honours_host_and_port(tiny_artifacts_root: Path, tmp_path: Path) -> None:
    """`make run` passes HOST and PORT to the development server (port 5000 is taken on many laptops), which then
    answers there; a PORT that is not a port number ends with one line."""
    dry_run = subprocess.run(["make", "-n", "run", "PORT=8123", "HOST=127.0.0.2"], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
    assert "HOST=127.0.0.2 PORT=8123 .venv/bin/python application.py" in dry_run.stdout
    port = free_port()
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(tiny_artifacts_root), "PORT": str(port), "HOST": "127.0.0.1"}
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "application.py"], cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(port, "/readyz", server, timeout=120, log_path=log_path)
        assert request(port, "GET", "/healthz")[0] == 200
    finally:
        stop_process_group(server)
    refused = subprocess.run([sys.executable, "application.py"], cwd=REPO, env={**env, "PORT": "fifty"},
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == "error: PORT must be a port number from 1 to 65535, not 'fifty'"
