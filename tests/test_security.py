"""Security: no debugger in any run mode, no pickle, autoescaping, security headers, a body cap, bandit clean.

A pickled embedding file is refused at load time: test_faults.py ("pickled-object-array").
Secrets in the repository and non-root containers are checked in test_deployment.py
(test_no_file_in_the_repo_holds_a_credential, test_image_is_slim_python_311_non_root_...,
test_pod_runs_non_root_...).
"""
from __future__ import annotations

import io
import json
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from application import MAX_BODY_BYTES, create_app
from bench.servers import LiveServer, free_port, gunicorn, stack
from tests.serving_fixtures import tiny_frames, write_model_artifacts

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOSTILE_NAME = '<script>alert("name")</script>'
HOSTILE_SYNOPSIS = '<img src=x onerror=alert(1)> and {{ 7*7 }}'


# ---------------------------------------------------------------------------------------------------------
# No debug mode, no Werkzeug debugger, whatever the run mode
# ---------------------------------------------------------------------------------------------------------
def test_the_app_factory_never_turns_debug_on(tiny_model_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")  # Flask's default for DEBUG follows this variable
    app = create_app({"ARTIFACTS_DIR": str(tiny_model_dir)})
    assert app.debug is False and app.config["DEBUG"] is False and app.config["PROPAGATE_EXCEPTIONS"] is False


def test_python_application_py_serves_without_debugger_or_reloader(tiny_artifacts_root: Path, monkeypatch) -> None:
    """`python application.py` (what `make run` does), with FLASK_DEBUG=1 set to try to tip it over."""
    import werkzeug.serving

    calls = []
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setenv("FLASK_DEBUG", "1")
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tiny_artifacts_root))
    runpy.run_path(str(REPO / "application.py"), run_name="__main__")
    (host, _port, app), options = calls[0]
    assert host == "127.0.0.1" and app.debug is False
    assert options["use_debugger"] is False and options["use_reloader"] is False


def test_gunicorn_config_has_no_reload_or_debug() -> None:
    settings = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert not settings.get("reload") and "debug" not in settings
    assert settings["wsgi_app"] == "application:create_app()"


@pytest.mark.parametrize("arguments, env", [(["--debug"], {}), (["--debugger"], {}), ([], {"FLASK_DEBUG": "1"})],
                         ids=["--debug", "--debugger", "FLASK_DEBUG=1"])
def test_flask_run_refuses_debug_mode_and_the_debugger(tiny_artifacts_root: Path, arguments: list[str],
                                                       env: dict[str, str]) -> None:
    command = [str(VENV_BIN / "flask"), "--app", "application", "run", "--port", str(free_port()), *arguments]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**_clean_env(), "ANIME_ARTIFACTS_DIR": str(tiny_artifacts_root), **env})
    assert result.returncode != 0, "the development server started with the debugger"
    assert "never served with the Werkzeug debugger" in result.stderr and "Traceback" not in result.stderr


def _clean_env() -> dict[str, str]:
    import os
    return {name: value for name, value in os.environ.items() if not name.startswith(("FLASK_", "WERKZEUG_"))}


@pytest.mark.parametrize("url", ["/console", "/?__debugger__=yes&cmd=resource&f=debugger.js",
                                 "/?__debugger__=yes&cmd=printpin&s=x"])
def test_no_debugger_url_is_served(client, url: str) -> None:
    response = client.get(url)
    assert b"Werkzeug" not in response.data and b"debugger" not in response.data.lower()
    assert response.mimetype in ("text/html", "application/json")


# ---------------------------------------------------------------------------------------------------------
# No pickle anywhere
# ---------------------------------------------------------------------------------------------------------
# Assembled from pieces so that this file does not match its own patterns.
PICKLE_MODULES = "|".join(["pic" + "kle", "cPic" + "kle", "dill", "cloudpic" + "kle", "job" + "lib", "shelve",
                           "marshal"])
PICKLE_PATTERNS = {
    "a pickle-based module": re.compile(rf"^\s*(import|from)\s+({PICKLE_MODULES})\b", re.MULTILINE),
    "allow_pickle set to True": re.compile(r"allow_" + r"pickle\s*=\s*True"),
    "pandas pickle I/O": re.compile(r"\.(read|to)_" + r"pickle\("),
    "Keras unsafe deserialisation": re.compile(r"safe_" + r"mode\s*=\s*False"),
    "unsafe YAML loading": re.compile(r"yaml\.(unsafe_|full_)?" + r"load\(|Loader\s*=\s*yaml\.(Unsafe)?Loader"),
}


def _repository_text_files() -> Iterator[tuple[str, str]]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in listed:
        path = REPO / name
        text_suffixes = {".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".txt", ".sh", ""}
        if name and path.is_file() and path.suffix in text_suffixes:
            data = path.read_bytes()
            if b"\0" not in data[:8192]:
                yield name, data.decode("utf-8", errors="replace")


def test_nothing_in_the_repository_pickles() -> None:
    findings = [f"{name}: {label}" for name, text in _repository_text_files()
                for label, pattern in PICKLE_PATTERNS.items() if pattern.search(text)]
    assert not findings, "\n".join(findings)


def test_every_numpy_load_and_save_refuses_pickles_explicitly() -> None:
    """np.save pickles object arrays unless told not to; every call in the served and training code says so."""
    calls = re.compile(r"np\.(load|save)\(([^()]|\([^()]*\))*\)")
    for name, text in _repository_text_files():
        if name.startswith("tests/") or not name.endswith(".py"):
            continue
        for call in calls.finditer(text):
            assert "allow_pickle=False" in call.group(0), f"{name}: {call.group(0)}"


# ---------------------------------------------------------------------------------------------------------
# Autoescaping: a catalogue whose titles are markup, searched for markup
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_client(tmp_path_factory: pytest.TempPathFactory):
    """The tiny artifact set with one anime (106, "Nana") renamed to a script tag and given a hostile synopsis."""
    frames = tiny_frames()
    anime = frames["anime"]
    row = anime.index[anime["anime_id"] == 106][0]
    anime.loc[row, "name"], anime.loc[row, "synopsis"] = HOSTILE_NAME, HOSTILE_SYNOPSIS
    folder = tmp_path_factory.mktemp("hostile") / "model"
    write_model_artifacts(folder, **frames)
    return create_app({"TESTING": True, "ARTIFACTS_DIR": str(folder)}).test_client()


def test_autoescaping_is_on_for_every_template(app) -> None:
    names = [path.name for path in (REPO / "templates").glob("*.html")]
    assert names and all(app.jinja_env.autoescape(name) for name in names)
    for path in [*(REPO / "templates").glob("*.html"), *(REPO / "src" / "web").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text and "Markup(" not in text, path


def test_searching_for_script_finds_it_escaped_in_the_page(hostile_client) -> None:
    page = hostile_client.get("/search", query_string={"q": "<script>"}).get_data(as_text=True)
    assert page.count('class="card"') == 1, "the hostile title is found"
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in page  # shown as text
    assert HOSTILE_NAME not in page and "<script>alert" not in page  # never as markup
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js" defer>']  # the only script


def test_hostile_metadata_is_escaped_on_every_page(hostile_client) -> None:
    pages = [hostile_client.get("/anime/106"), hostile_client.get("/anime/104"),
             hostile_client.post("/favourites", data={"liked": ["104"]}, follow_redirects=True),
             hostile_client.post("/", data={"userID": "2003"}, follow_redirects=True)]  # group B, has not seen 106
    for response in pages:
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "&lt;script&gt;alert(" in page, "the hostile anime is on the page, as text"
        assert "<script>alert" not in page and "<img src=x" not in page
    # the synopsis, in full on the anime's own page: markup escaped, template syntax not evaluated
    assert "&lt;img src=x onerror=alert(1)&gt; and {{ 7*7 }}" in pages[0].get_data(as_text=True)


def test_the_api_returns_hostile_text_as_inert_json(hostile_client) -> None:
    response = hostile_client.get("/api/anime/search", query_string={"q": "<script>"})
    assert response.mimetype == "application/json" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.get_json()["results"][0]["name"] == HOSTILE_NAME


# ---------------------------------------------------------------------------------------------------------
# Security headers on every kind of response; templates that need no inline script
# ---------------------------------------------------------------------------------------------------------
def assert_security_headers(headers) -> None:
    policy = headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives["default-src"] == ["'self'"] and "script-src" not in directives  # scripts: same origin only
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin-when-cross-origin")
    assert headers["X-Frame-Options"] == "DENY"


RESPONSES = [
    ("page", "get", "/", {}), ("page-error", "post", "/", {"data": {"userID": "abc"}}),
    ("page-404", "get", "/nowhere", {}), ("api", "get", "/api/anime/search?q=bebop", {}),
    ("api-400", "get", "/api/anime/search", {}), ("api-404", "get", "/api/anime/999/similar", {}),
    ("api-405", "put", "/api/anime/search", {}),
    ("api-415", "post", "/api/recommendations", {"data": "x", "content_type": "text/plain"}),
    ("api-413", "post", "/api/recommendations",
     {"data": "x" * (MAX_BODY_BYTES + 1), "content_type": "application/json"}),
    ("static", "get", "/static/app.js", {}), ("healthz", "get", "/healthz", {}),
    ("openapi", "get", "/api/openapi.json", {}),
]


@pytest.mark.parametrize("label, method, url, kwargs", RESPONSES, ids=[row[0] for row in RESPONSES])
def test_every_response_carries_the_security_headers(client, label: str, method: str, url: str, kwargs: dict) -> None:
    with getattr(client, method)(url, **kwargs) as response:  # closed: a static file is an open file
        assert_security_headers(response.headers)


def test_unavailable_and_500_responses_carry_them_too(missing_app, app, monkeypatch) -> None:
    assert_security_headers(missing_app.test_client().get("/readyz").headers)
    from src.engine.recommender import Recommender
    monkeypatch.setattr(Recommender, "search_page", lambda *args, **kwargs: 1 / 0)
    response = app.test_client().get("/api/anime/search?q=a")
    assert response.status_code == 500 and "ZeroDivision" not in response.get_data(as_text=True)
    assert_security_headers(response.headers)


@pytest.mark.parametrize("path", sorted((REPO / "templates").glob("*.html")), ids=lambda path: path.name)
def test_templates_need_no_inline_script_or_style(path: Path) -> None:
    """The policy forbids inline code; a template relying on it would break silently in the browser."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text, re.IGNORECASE), "inline event handler"
    assert not re.search(r"\sstyle\s*=", text, re.IGNORECASE) and "<style" not in text, "inline style"
    assert "javascript:" not in text.lower()


def test_the_script_never_inserts_html() -> None:
    script = (REPO / "static" / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


# ---------------------------------------------------------------------------------------------------------
# Request body cap: declared, chunked, forms and JSON
# ---------------------------------------------------------------------------------------------------------
def _chunked(client, url: str, body: bytes, content_type: str):
    """A body sent chunked, as gunicorn hands it over: no Content-Length, the stream ends where the body ends."""
    return client.post(url, input_stream=io.BytesIO(body), content_type=content_type,
                       headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})


def test_the_body_cap_is_64_kib(app) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_BODY_BYTES == 64 * 1024


@pytest.mark.parametrize("url, content_type, small, large", [
    ("/api/recommendations", "application/json", b'{"liked": [1]}', b'{"liked": [1]}' + b" " * MAX_BODY_BYTES),
    ("/favourites", "application/x-www-form-urlencoded", b"liked=1", b"liked=1&pad=" + b"x" * MAX_BODY_BYTES),
], ids=["json", "form"])
def test_chunked_bodies_are_capped_too(client, url: str, content_type: str, small: bytes, large: bytes) -> None:
    """Werkzeug alone would cut a chunked body at the cap and parse the rest: here it is a 413."""
    # the form is answered with a redirect to its result's address
    assert _chunked(client, url, small, content_type).status_code == (200 if url.startswith("/api/") else 303)
    response = _chunked(client, url, large, content_type)
    assert response.status_code == 413 and b"too large" in response.data


# ---------------------------------------------------------------------------------------------------------
# The same under the real servers: the production stack (nginx in front of gunicorn), and gunicorn alone
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["stack", "gunicorn alone"])
def live(request: pytest.FixtureRequest, tiny_artifacts_root: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    start = stack if request.param == "stack" else gunicorn
    with start(tiny_artifacts_root, tmp_path_factory.mktemp("live") / "server.log") as server:
        yield server


@pytest.mark.integration
def test_gunicorn_serves_no_debugger_and_sends_the_headers(live: LiveServer) -> None:
    for path in ("/console", "/?__debugger__=yes&cmd=resource&f=debugger.js"):
        _status, headers, body = live.request("GET", path)
        assert b"Werkzeug" not in body and "javascript" not in headers["Content-Type"]
        assert_security_headers(headers)


@pytest.mark.integration
def test_gunicorn_caps_declared_and_chunked_bodies(live: LiveServer) -> None:
    json_type = {"Content-Type": "application/json"}
    # a declared length over the cap is refused before a byte of the body is read
    status, _, body = live.request("POST", "/api/recommendations", b"{}", {**json_type, "Content-Length": str(10**7)})
    assert status == 413 and "too large" in json.loads(body)["error"]["message"]
    oversized = b'{"liked": [1]}' + b" " * (MAX_BODY_BYTES + 10)
    chunks = iter([oversized[start:start + 8192] for start in range(0, len(oversized), 8192)])
    connection = __import__("http.client").client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    connection.request("POST", "/api/recommendations", body=chunks, headers=json_type, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and b"too large" in response.read()
    connection.close()
    assert live.request("POST", "/api/recommendations", b'{"liked": [1]}', json_type)[0] == 200
    assert "Traceback" not in live.log()


# ---------------------------------------------------------------------------------------------------------
# bandit
# ---------------------------------------------------------------------------------------------------------
def test_bandit_finds_nothing_of_medium_severity_or_above() -> None:
    targets = ["application.py", "src", "pipeline", "utils", "config", "deploy", "bench/soak.py", "bench/servers.py",
               "bench/request_mix.py", "bench/hostile.py"]
    result = subprocess.run([str(VENV_BIN / "bandit"), "-r", *targets, "-ll", "-f", "json", "-q"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    findings = [f"{item['filename']}:{item['line_number']} {item['test_id']} {item['issue_text']}"
                for item in report["results"]]
    assert not findings, "\n".join(findings)
    assert not report["errors"], report["errors"]


def test_every_bandit_suppression_says_why() -> None:
    marker = "# " + "nosec"  # in two pieces, so this line is not a suppression itself
    for name, text in _repository_text_files():
        for line in text.splitlines():
            if marker in line:
                assert re.search(marker + r" B\d{3}\b.{10,}", line), \
                    f"{name}: '{line.strip()}' needs the check id and a reason"
