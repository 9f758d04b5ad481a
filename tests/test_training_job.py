"""deploy/training-job.yaml: the pipeline as a Kubernetes Job on GKE, and its GPU option (DEPLOYMENT.md, "Beyond one
machine"). Checked against the Kubernetes schemas and against what the pipeline and the image actually offer."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from config.loader import load_config, merge
from tests.test_deployment import GKE_KUBERNETES_VERSION

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "deploy" / "training-job.yaml"
GPU_PATCH = REPO / "deploy" / "training-job-gpu.patch.yaml"
PLACEHOLDERS = ("TRAINING_IMAGE_PLACEHOLDER", "BUCKET_PLACEHOLDER", "GSA_PLACEHOLDER")
FULL_SIZE_RSS_BUDGET_GB = 10  # issue 14: the whole pipeline at full size within 10 GB (bench/RESULTS.md)


def documents(text: str | None = None) -> dict[str, dict]:
    return {document["kind"]: document for document in yaml.safe_load_all(text or JOB.read_text()) if document}


def pod() -> dict:
    return documents()["Job"]["spec"]["template"]["spec"]


def step(name: str, spec: dict | None = None) -> dict:
    spec = spec or pod()
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def gib(quantity: str) -> float:
    units = {"Mi": 1 / 1024, "Gi": 1, "M": 1e6 / 2**30, "G": 1e9 / 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[:-len(suffix)]) * factor
    return float(quantity) / 2**30


def strategic_merge(base: dict, patch: dict) -> dict:
    """kubectl's strategic merge for what the GPU patch uses: maps merge, container lists merge by name."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        elif key in ("containers", "initContainers") and isinstance(value, list):
            by_name = {container["name"]: container for container in merged.get(key, [])}
            for container in value:
                assert container["name"] in by_name, f"the patch names no step of the Job: {container['name']}"
                by_name[container["name"]].update(strategic_merge(by_name[container["name"]], container))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.mark.parametrize("version", ["gke", "newest"])
def test_the_manifests_match_the_kubernetes_schemas(version: str) -> None:
    import kubernetes_validate

    desired = GKE_KUBERNETES_VERSION if version == "gke" else kubernetes_validate.latest_version()
    found = documents()
    assert set(found) == {"ServiceAccount", "Job", "ConfigMap"}
    for document in found.values():
        kubernetes_validate.validate(document, desired, strict=True)


def test_the_steps_run_in_order_fetch_train_upload_on_one_scratch_volume() -> None:
    spec = pod()
    assert [c["name"] for c in spec["initContainers"]] == ["fetch", "train"]
    assert [c["name"] for c in spec["containers"]] == ["upload"]
    assert spec["restartPolicy"] == "Never" and documents()["Job"]["spec"]["backoffLimit"] <= 1
    for name in ("fetch", "train", "upload"):
        mounts = {mount["name"]: mount["mountPath"] for mount in step(name)["volumeMounts"]}
        assert mounts["work"] == "/work", name
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == "work")


def test_train_runs_the_whole_pipeline_on_the_fetched_files_with_the_overlay() -> None:
    train = step("train")
    command = train["command"]
    assert command[:3] == ["python", "-m", "pipeline.training_pipeline"]
    assert command[command.index("--raw-dir") + 1] == "/work/raw"
    assert "--stage" not in command, "every stage: ingest, process, train, evaluate, refit"
    env = {item["name"]: item.get("value") for item in train["env"]}
    assert env["ANIME_ARTIFACTS_DIR"] == "/work/artifacts"
    assert "/work/raw" in step("fetch")["args"][0]
    upload = step("upload")["args"][0]
    assert "/work/artifacts/models/" in upload and "readlink -f /work/artifacts/model" in upload


def test_the_overlay_is_a_valid_config_with_a_seeded_evaluation_sample() -> None:
    overlay_path = step("train")["command"][step("train")["command"].index("--config") + 1]
    mount = next(m for m in step("train")["volumeMounts"] if overlay_path.startswith(m["mountPath"]))
    assert mount["name"] == "overlay"
    overlay = yaml.safe_load(documents()["ConfigMap"]["data"][Path(overlay_path).name])
    merged = merge(load_config(), overlay, source="the Job's overlay")  # unknown keys are refused
    assert isinstance(merged["evaluation"]["max_users"], int) and merged["evaluation"]["max_users"] >= 1000


def test_the_training_image_is_the_dockerfiles_model_stage_where_the_code_is() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stage = dockerfile[dockerfile.index(" AS model"):]
    assert re.search(r"^WORKDIR /build$", stage, re.MULTILINE)
    assert step("train")["workingDir"] == "/build"
    requirements = (REPO / "requirements.txt").read_text()
    assert "tensorflow" in requirements and "implicit" in requirements


def test_memory_covers_the_full_size_budget_and_nothing_runs_as_root() -> None:
    resources = step("train")["resources"]
    assert gib(resources["requests"]["memory"]) * 2**30 / 1e9 >= FULL_SIZE_RSS_BUDGET_GB
    assert gib(resources["limits"]["memory"]) > gib(resources["requests"]["memory"])
    spec = pod()
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    for name in ("fetch", "train", "upload"):
        context = step(name)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]


def test_images_are_placeholders_or_pinned_versions() -> None:
    text = JOB.read_text()
    for placeholder in PLACEHOLDERS:
        assert placeholder in text
    raw = json.dumps(documents())
    assert ":latest" not in raw
    for name in ("fetch", "upload"):
        assert re.search(r":\d+\.\d+\.\d+-stable$", step(name)["image"]), "the Cloud CLI image is a fixed version"
    assert documents()["ServiceAccount"]["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]


def test_the_gpu_patch_adds_a_gpu_node_pool_and_one_gpu_to_the_train_step_only() -> None:
    import kubernetes_validate

    job = documents()["Job"]
    patched = strategic_merge(job, yaml.safe_load(GPU_PATCH.read_text()))
    kubernetes_validate.validate(patched, GKE_KUBERNETES_VERSION, strict=True)
    spec = patched["spec"]["template"]["spec"]
    assert spec["nodeSelector"]["cloud.google.com/gke-accelerator"]
    assert step("train", spec)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert step("train", spec)["image"] == "TRAINING_GPU_IMAGE_PLACEHOLDER"
    assert step("train", spec)["command"] == step("train")["command"], "the same pipeline, on a GPU"
    for name in ("fetch", "upload"):
        assert "nvidia.com/gpu" not in json.dumps(step(name, spec))
