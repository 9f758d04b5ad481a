"""Versioned model artifacts (src/store/registry.py), the `anime-models` command, and what the app says about
versions: /readyz, the X-Model-Version header, the page footer, the reload a gunicorn HUP runs in the master.

Real files, real symlinks, real subprocesses; the server under load is tests/test_hot_swap.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config import paths_config
from src.engine.model_check import ServingCheck
from src.errors import ArtifactError, UserError
from src.store.artifacts import load_model_artifacts
from src.store.registry import (
    current_version,
    inputs_hash,
    is_version_id,
    list_versions,
    new_version_id,
    publish_model,
    resolve_model_dir,
    rollback,
    versions_dir,
)
from tests.serving_fixtures import TEST_USER, tiny_frames, write_model_artifacts, write_tiny_artifacts

REPO = paths_config.PROJECT_ROOT
MARK = " [B]"


def publish_tiny(pointer: Path, config: dict, note: str = "", mark: str = "", break_ids: bool = False) -> str:
    """Publish the tiny artifact set (titles marked with ``mark``) as the current version; return its id."""
    frames = tiny_frames()
    frames["manifest"] = {**frames["manifest"], "data": {"note": note}, "created_at": "2025-01-01T00:00:00+00:00"}
    if mark:
        frames["anime"] = frames["anime"].assign(name=frames["anime"]["name"] + mark)
    with publish_model(pointer, config, ServingCheck.from_config(config)) as staging:
        write_model_artifacts(staging, **frames)
        if break_ids:
            (staging / "anime_ids.json").write_text("[1, 5, 6]", encoding="utf-8")
    return current_version(pointer)


@pytest.fixture
def versions_config(base_config: dict) -> dict:
    return {**base_config, "serving": {**base_config["serving"], "keep_versions": 2}}


@pytest.fixture
def pointer(tmp_path: Path) -> Path:
    return paths_config.model_dir(tmp_path / "artifacts")


# ---------------------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------------------
def test_a_published_model_gets_a_version_folder_and_the_pointer_names_it(pointer: Path, versions_config) -> None:
    version = publish_tiny(pointer, versions_config, "a")
    assert is_version_id(version)
    assert pointer.is_symlink() and os.readlink(pointer) == f"models/{version}", "a relative link: the root can move"
    folder = versions_dir(pointer) / version
    assert resolve_model_dir(pointer) == folder.resolve()
    manifest = json.loads((pointer / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == version and manifest["published_at"]
    assert len(load_model_artifacts(pointer).user_ids) == 16  # readers keep using artifacts/model as before
    assert sorted(p.name for p in pointer.parent.iterdir() if not p.name.endswith(".lock")) == ["model", "models"]


def test_the_version_id_is_the_utc_time_and_a_hash_of_the_data_and_config() -> None:
    manifest = {"data": {"users": 150}, "config": {"seed": 42}, "training": {"best_loss": 0.3}}
    when = datetime(2025, 3, 2, 9, 0, 0, tzinfo=UTC)
    version = new_version_id(manifest, when)
    assert version == f"20250302T090000Z-{inputs_hash(manifest)}" and is_version_id(version)
    # the hash names the inputs: what training produced does not change it, the data or the config does
    assert inputs_hash({**manifest, "training": {"best_loss": 0.1}}) == inputs_hash(manifest)
    assert inputs_hash({**manifest, "config": {"seed": 7}}) != inputs_hash(manifest)
    assert inputs_hash({**manifest, "data": {"users": 151}}) != inputs_hash(manifest)


def test_two_publishes_of_the_same_inputs_in_one_second_get_distinct_versions(pointer, versions_config) -> None:
    first, second = publish_tiny(pointer, versions_config, "same"), publish_tiny(pointer, versions_config, "same")
    assert first != second and first.split("-")[1] == second.split("-")[1]


def test_a_failed_run_leaves_the_current_model_and_no_temporary_folder(pointer: Path, versions_config) -> None:
    version = publish_tiny(pointer, versions_config, "a")
    check = ServingCheck.from_config(versions_config)
    with pytest.raises(RuntimeError), publish_model(pointer, versions_config, check) as staging:
        write_tiny_artifacts(staging)
        raise RuntimeError("crash mid-run")
    assert current_version(pointer) == version
    assert [v.version for v in list_versions(pointer)] == [version]
    assert not list(pointer.parent.glob(".model.tmp-*"))


def test_a_model_that_fails_the_load_checks_is_never_made_current(pointer: Path, versions_config) -> None:
    version = publish_tiny(pointer, versions_config, "a")
    with pytest.raises(ArtifactError, match="fails the load checks, so it was not made current.*do not match"):
        publish_tiny(pointer, versions_config, "broken", break_ids=True)
    assert current_version(pointer) == version
    assert [v.version for v in list_versions(pointer)] == [version]
    assert not list(pointer.parent.glob(".model.tmp-*"))


def test_a_killed_publish_never_becomes_current_and_its_leftovers_are_cleaned(pointer, versions_config,
                                                                                tmp_path) -> None:
    version = publish_tiny(pointer, versions_config, "a")
    script = textwrap.dedent(f"""
        import os, signal
        from config.loader import load_config
        from src.engine.model_check import ServingCheck
        from src.store.registry import publish_model
        from tests.serving_fixtures import write_tiny_artifacts
        with publish_model({str(pointer)!r}, load_config(), ServingCheck.from_config(load_config())) as staging:
            write_tiny_artifacts(staging)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert list(pointer.parent.glob(".model.tmp-*")), "the killed run's folder is left (nothing could clean it)"
    assert current_version(pointer) == version and [v.version for v in list_versions(pointer)] == [version]
    publish_tiny(pointer, versions_config, "b")
    assert not list(pointer.parent.glob(".model.tmp-*")), "the next publish cleans up"


def test_the_current_and_keep_versions_earlier_ones_are_kept(pointer: Path, versions_config) -> None:
    published = [publish_tiny(pointer, versions_config, str(i)) for i in range(4)]
    assert [v.version for v in list_versions(pointer)] == published[::-1][:3]
    assert not (versions_dir(pointer) / published[0]).exists()
    config = {**versions_config, "serving": {**versions_config["serving"], "keep_versions": 0}}
    latest = publish_tiny(pointer, config, "only")
    assert [v.version for v in list_versions(pointer)] == [latest]


def test_a_version_another_pointer_links_to_is_never_deleted(pointer: Path, versions_config) -> None:
    kept = publish_tiny(pointer, versions_config, "pinned")
    os.symlink(f"models/{kept}", pointer.with_name("model-pinned"))  # e.g. a tuning trial's model
    config = {**versions_config, "serving": {**versions_config["serving"], "keep_versions": 0}}
    for note in ("b", "c"):
        publish_tiny(pointer, config, note)
    assert (versions_dir(pointer) / kept).is_dir()


@pytest.mark.parametrize("value", [-1, "2", 1.5, True, None])
def test_keep_versions_must_be_a_whole_number(pointer: Path, versions_config, value) -> None:
    config = {**versions_config, "serving": {**versions_config["serving"], "keep_versions": value}}
    with pytest.raises(UserError, match="serving.keep_versions must be a whole number"):
        publish_tiny(pointer, config)
    assert not pointer.parent.exists() or not list(pointer.parent.iterdir())


def test_a_model_folder_from_before_versions_serves_and_is_adopted_on_the_next_publish(pointer, versions_config):
    write_tiny_artifacts(pointer)  # the old layout: a real folder at artifacts/model, no version in its manifest
    legacy = current_version(pointer)
    assert legacy and [(v.version, v.current) for v in list_versions(pointer)] == [(legacy, True)]
    new = publish_tiny(pointer, versions_config, "new")
    assert pointer.is_symlink() and current_version(pointer) == new
    assert [v.version for v in list_versions(pointer)] == [new, legacy]
    assert rollback(pointer, ServingCheck.from_config(versions_config)) == (new, legacy)
    assert json.loads((pointer / "manifest.json").read_text())["version"] == legacy


# ---------------------------------------------------------------------------------------------------------
# Rolling back
# ---------------------------------------------------------------------------------------------------------
def test_rollback_goes_to_the_previous_version_or_any_kept_one(pointer: Path, versions_config) -> None:
    first, second, third = (publish_tiny(pointer, versions_config, note) for note in "abc")
    assert rollback(pointer, ServingCheck.from_config(versions_config)) == (third, second)
    assert rollback(pointer, ServingCheck.from_config(versions_config)) == (second, first)
    assert rollback(pointer, ServingCheck.from_config(versions_config), third) == (first, third)  # forward again
    assert [v.version for v in list_versions(pointer) if v.current] == [third]


def test_rollback_refuses_what_it_cannot_serve(pointer: Path, versions_config) -> None:
    with pytest.raises(UserError, match="no earlier model version"):
        rollback(pointer, ServingCheck.from_config(versions_config))
    first = publish_tiny(pointer, versions_config, "a")
    with pytest.raises(UserError, match="no earlier model version"):
        rollback(pointer, ServingCheck.from_config(versions_config))
    with pytest.raises(UserError, match=f"no kept model version 'nope'.*kept: {first}"):
        rollback(pointer, ServingCheck.from_config(versions_config), "nope")
    second = publish_tiny(pointer, versions_config, "b")
    (versions_dir(pointer) / first / "anime_ids.json").write_text("[1]", encoding="utf-8")  # corrupted on disk
    with pytest.raises(ArtifactError, match=f"model version {first} fails the load checks.*do not match"):
        rollback(pointer, ServingCheck.from_config(versions_config))
    assert current_version(pointer) == second


# ---------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------
def models_cli(*args: str, root: Path, console_script: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(root), "ANIME_LOG_LEVEL": "WARNING"}
    script = Path(sys.executable).parent / "anime-models"
    command = [str(script)] if console_script else [sys.executable, "-m", "pipeline.models_pipeline"]
    return subprocess.run([*command, *args], cwd=REPO if not console_script else root.parent, env=env,
                          capture_output=True, text=True, timeout=120)


def test_anime_models_lists_and_rolls_back(pointer: Path, versions_config) -> None:
    root = pointer.parent
    first, second = publish_tiny(pointer, versions_config, "a"), publish_tiny(pointer, versions_config, "b")
    listed = models_cli("list", root=root)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "PUBLISHED", "(UTC)", "USERS", "ANIME"]
    assert re.match(rf"\*\s+{second}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+16\s+12$", lines[1])
    assert lines[2].split()[0] == first
    back = models_cli("rollback", root=root)
    assert back.returncode == 0, back.stderr
    assert f"model version {first} is now current" in back.stdout and "kill -HUP" in back.stdout
    assert current_version(pointer) == first
    again = models_cli("rollback", second, root=root)
    assert again.returncode == 0 and current_version(pointer) == second


@pytest.mark.skipif(not (Path(sys.executable).parent / "anime-models").exists(),
                    reason="the console script appears with `pip install -e .` (make install)")
def test_the_console_script_runs_from_anywhere(pointer: Path, versions_config) -> None:
    version = publish_tiny(pointer, versions_config, "a")
    listed = models_cli("list", root=pointer.parent, console_script=True)
    assert listed.returncode == 0 and version in listed.stdout, listed.stderr


@pytest.mark.parametrize("args, message", [
    (("rollback",), "no earlier model version to roll back to"),
    (("rollback", "20000101T000000Z-00000000"), "there is no kept model version '20000101T000000Z-00000000'"),
])
def test_anime_models_fails_with_one_readable_line(pointer: Path, versions_config, args, message) -> None:
    publish_tiny(pointer, versions_config, "a")
    result = models_cli(*args, root=pointer.parent)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {message}")


def test_anime_models_list_without_any_model_says_what_to_do(tmp_path: Path) -> None:
    result = models_cli("list", root=tmp_path / "empty")
    assert result.returncode == 0 and "no published model" in result.stdout and "anime-train" in result.stdout


# ---------------------------------------------------------------------------------------------------------
# What the app says: /readyz, X-Model-Version, the footer; the reload a HUP runs in the master
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def versioned_app(pointer: Path, versions_config, serving_config):
    from application import create_app

    version = publish_tiny(pointer, versions_config, "a")
    app = create_app({"TESTING": True, "ARTIFACTS_DIR": str(pointer), "SERVING_CONFIG": serving_config})
    return app, version


def test_every_response_names_the_model_version(versioned_app) -> None:
    app, version = versioned_app
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["version"] == version
    assert ready.get_json()["loaded_at"] and "refused" not in ready.get_json()
    for response in (ready, client.get("/healthz"), client.get(f"/api/users/{TEST_USER}/recommendations"),
                     client.get("/api/anime/search?q=bebop"), client.get("/api/anime/999999/similar"),
                     client.get("/api/users/x/recommendations"), client.get("/api/nowhere"),
                     client.delete("/api/anime/search"), client.post("/api/recommendations", data="x",
                                                                     content_type="text/plain"),
                     client.get("/api/openapi.json"), client.get("/")):
        assert response.headers["X-Model-Version"] == version, (response.request.path, response.status_code)
    page = client.get(f"/users/{TEST_USER}").get_data(as_text=True)
    assert f'<code id="model-version">{version}</code>' in page


def test_without_a_model_the_header_says_none_and_the_footer_no_version(missing_app) -> None:
    client = missing_app.test_client()
    for response in (client.get("/readyz"), client.get(f"/api/users/{TEST_USER}/recommendations"),
                     client.get(f"/?userID={TEST_USER}")):
        assert response.status_code == 503 and response.headers["X-Model-Version"] == "none"
    assert client.get("/readyz").get_json()["version"] is None
    assert 'id="model-version"' not in client.get("/").get_data(as_text=True)


def test_reload_takes_up_the_current_version_and_refuses_a_broken_one(versioned_app, pointer, versions_config):
    from src.web.state import EXTENSION_KEY, reload_engine

    app, first = versioned_app
    client = app.test_client()
    engine = app.extensions[EXTENSION_KEY].recommender
    assert reload_engine(app).recommender is engine, "the same files: nothing is rebuilt"

    second = publish_tiny(pointer, versions_config, "b", mark=MARK)
    assert reload_engine(app).version == second
    response = client.get(f"/api/users/{TEST_USER}/recommendations")
    assert response.headers["X-Model-Version"] == second
    assert all(item["name"].endswith(MARK) for item in response.get_json()["recommendations"])

    broken = versions_dir(pointer) / "29990101T000000Z-0badbad0"
    shutil.copytree(resolve_model_dir(pointer), broken)
    (broken / "anime_ids.json").write_text("[1, 5, 6]", encoding="utf-8")
    os.symlink(f"models/{broken.name}", pointer.with_name("link"))
    os.replace(pointer.with_name("link"), pointer)
    state = reload_engine(app)
    assert state.version == second and state.recommender is not None
    ready = client.get("/readyz").get_json()
    assert ready["version"] == second and "do not match" in ready["refused"] and broken.name in ready["refused"]
    assert client.get(f"/api/users/{TEST_USER}/recommendations").headers["X-Model-Version"] == second

    rollback(pointer, ServingCheck.from_config(versions_config), first)
    assert reload_engine(app).version == first and "refused" not in client.get("/readyz").get_json()


def test_a_request_keeps_the_model_it_started_with(versioned_app, pointer, versions_config) -> None:
    from src.web.state import EXTENSION_KEY, engine_state, pin_engine, reload_engine

    app, first = versioned_app
    with app.test_request_context("/api/anime/search?q=bebop"):
        pin_engine()
        publish_tiny(pointer, versions_config, "b")
        reload_engine(app)  # as if the engine were swapped while this request runs
        assert app.extensions[EXTENSION_KEY].version != first
        assert engine_state().version == first


def test_a_server_started_on_a_broken_pointer_serves_once_a_good_model_is_current(pointer, versions_config,
                                                                                 serving_config) -> None:
    from application import create_app
    from src.web.state import reload_engine

    app = create_app({"TESTING": True, "ARTIFACTS_DIR": str(pointer), "SERVING_CONFIG": serving_config})
    assert app.test_client().get("/readyz").status_code == 503
    version = publish_tiny(pointer, versions_config, "a")
    assert reload_engine(app).version == version
    assert app.test_client().get("/readyz").get_json()["version"] == version


# ---------------------------------------------------------------------------------------------------------
# Training publishes through the registry
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_training_publishes_a_version(trained_root: Path) -> None:
    pointer = paths_config.model_dir(trained_root)
    assert pointer.is_symlink()
    version = current_version(pointer)
    assert is_version_id(version) and resolve_model_dir(pointer).name == version
    manifest = json.loads((pointer / "manifest.json").read_text(encoding="utf-8"))
    assert version.endswith(inputs_hash(manifest)) and (pointer / "model.keras").is_file()


# ---------------------------------------------------------------------------------------------------------
# The image bakes the version the pointer names
# ---------------------------------------------------------------------------------------------------------
def test_the_image_build_context_and_model_stage_take_the_current_version(tmp_path: Path, versions_config) -> None:
    """The Dockerfile's model stage script, run without Docker on a context whose artifacts/model is the pointer."""
    from tests.test_deployment import (
        container_env,
        dockerignore_patterns,
        excluded_from_build_context,
        model_stage_runs,
    )

    context = tmp_path / "build"
    for name in ("src", "config", "utils", "pipeline", "deploy"):
        shutil.copytree(REPO / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
    pointer = paths_config.model_dir(context / "artifacts")
    publish_tiny(pointer, versions_config, "old")
    version = publish_tiny(pointer, versions_config, "current")
    patterns = dockerignore_patterns()
    for path in ("artifacts/model", f"artifacts/models/{version}/manifest.json"):
        assert not excluded_from_build_context(path, patterns), f"{path} must reach the build context"
    script = model_stage_runs(REPO / "Dockerfile")[0]
    script = script.replace("/opt/anime", str(tmp_path / "opt" / "anime")).replace("/build", str(context))
    built = subprocess.run(["sh", "-c", script], cwd=context, env=container_env(tmp_path, context / "artifacts"),
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Using the model artifacts from the build context" in built.stdout
    baked = tmp_path / "opt" / "anime" / "artifacts" / "model"
    assert baked.is_dir() and not baked.is_symlink()
    assert json.loads((baked / "manifest.json").read_text(encoding="utf-8"))["version"] == version
    assert not (baked / "model.keras").exists()  # deploy/slim_model.py: serving never runs the network


def test_a_loaded_model_is_kept_out_of_the_garbage_collectors_sight(versioned_app, pointer, versions_config) -> None:
    """After a load and after a reload the model's objects are frozen (src/web/state.py, freeze_heap): a full
    collection, which parsing a large imported list triggers, then walks only what requests create."""
    import gc

    from src.web.state import EXTENSION_KEY, reload_engine

    app, _ = versioned_app
    engine = app.extensions[EXTENSION_KEY].recommender
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    publish_tiny(pointer, versions_config, "frozen")
    new = reload_engine(app).recommender
    assert new is not engine and gc.get_freeze_count() > 0
    tracked = {id(item) for item in gc.get_objects()}  # what a collection walks: the frozen are not among them
    assert id(new.catalogue) not in tracked and id(new.settings.weights) not in tracked
