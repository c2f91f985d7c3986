"""The container images (deploy/docker): hadolint with the repo's .hadolint.yaml passes on every Dockerfile
and reports a bad one with its codes; replayrec's own rules hold, read from the Dockerfiles themselves
(digest-pinned bases, multi-stage, a numeric non-root user, pip constrained by the lock file, exec-form entry
points, the service's health check); .dockerignore keeps environments, state and tests out of the build
context. The slow test builds the service image with buildah (no Docker engine) on a debootstrapped base and
runs it with podman the way Kubernetes would: read-only root, user 10001, /healthz answering.

What stays untested here: the official python:3.11-slim-bookworm base (Docker Hub is unreachable; its digest
is taken from public pins, not pulled), the stream and training images' builds (the training one needs
download.pytorch.org, unreachable here), and Docker's own builder (BuildKit)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from replayrec.application import SERVING_PACKAGES
from replayrec.config import Settings
from replayrec.infra import (
    IMAGES,
    Instruction,
    build_image,
    context_files,
    dockerfile_policy,
    hadolint,
    image_spec,
    lint_dockerfiles,
    local_base_image,
    parse_dockerfile,
    podman_command,
    smoke_test_image,
    stage_bases,
)

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
NAMES = ("service", "stream", "training")
BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}$")
LOCK = (ROOT / "requirements" / "lock.txt").read_text()


def _required(what: str) -> None:
    """Skip without ``what``, except in CI (REPLAYREC_REQUIRE_SHARED), where it must be there."""
    if os.environ.get("REPLAYREC_REQUIRE_SHARED"):
        pytest.fail(f"{what} is missing")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def settings() -> Settings:
    tools = Path(os.environ.get("REPLAYREC_DEPLOY_TOOLS_BIN", ROOT / ".venv-deploy" / "bin"))
    if not (tools / "hadolint").is_file():
        _required(f"hadolint ({tools}/hadolint; make deploy-tools)")
    return Settings(deploy_tools_bin=tools)


def _final(name: str) -> list[Instruction]:
    ins = parse_dockerfile(DOCKER / f"{name}.Dockerfile")
    last = max(i for i, x in enumerate(ins) if x.keyword == "FROM")
    return ins[last:]


def _one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_hadolint_and_the_rules_pass_on_every_dockerfile(settings: Settings) -> None:
    steps = lint_dockerfiles(settings, ROOT)
    assert {(s.step, s.target) for s in steps} == {
        (step, f"deploy/docker/{n}.Dockerfile") for step in ("hadolint", "policy") for n in NAMES
    }
    failed = [f"{s.step} {s.target}:\n{s.detail}" for s in steps if not s.ok]
    assert not failed, "\n".join(failed)
    assert all(s.numbers == {"findings": 0} for s in steps)


BAD = "FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n"


def test_a_bad_dockerfile_is_reported_with_its_codes(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text(BAD)
    found = hadolint(settings, ROOT, [bad])
    codes = {f.code for f in found}
    assert {"DL3007", "DL3008", "DL3014", "DL3015", "DL3025"} <= codes, codes
    pin = next(f for f in found if f.code == "DL3008")
    assert str(pin).startswith(f"{bad}:2 DL3008 Pin versions in apt get install")
    ours = {f.code: f for f in dockerfile_policy(bad, tmp_path)}
    assert set(ours) == {"RR101", "RR102", "RR103", "RR105"}
    assert "'python:latest' is not pinned by digest" in ours["RR101"].message
    assert "found no USER" in ours["RR102"].message


def test_lint_marks_the_step_failed_and_lists_each_finding(settings: Settings, tmp_path: Path) -> None:
    """A service Dockerfile gone wrong (root user, an unconstrained pip install, shell-form health check)."""
    for rel in (".hadolint.yaml", ".dockerignore", "requirements/lock.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(DOCKER, tmp_path / "deploy" / "docker")
    service = tmp_path / "deploy" / "docker" / "service.Dockerfile"
    text = service.read_text().replace("USER 10001:10001", "RUN pip install requests\nUSER root")
    service.write_text(re.sub(r'CMD \["python3".*\]', "CMD python3 -c 'print(1)' /healthz", text))
    steps = {(s.step, s.target): s for s in lint_dockerfiles(settings, tmp_path)}
    lint = steps["hadolint", "deploy/docker/service.Dockerfile"]
    policy = steps["policy", "deploy/docker/service.Dockerfile"]
    assert not lint.ok
    assert not policy.ok
    line = r"^deploy/docker/service\.Dockerfile:\d+ DL3002 Last USER should not be root$"
    assert re.search(line, lint.detail, re.M), lint.detail
    assert " DL3013 " in lint.detail
    assert lint.numbers["findings"] >= 2
    for code in ("RR102", "RR104", "RR105", "RR106"):
        assert f" {code} " in policy.detail, policy.detail
    # the other Dockerfiles COPY core/, plugins/, serving/: not in this bare copy, so RR107 says so
    stream = steps["policy", "deploy/docker/stream.Dockerfile"]
    assert not stream.ok
    assert "RR107 COPY core: not in the build context" in stream.detail


@pytest.mark.parametrize("name", NAMES)
def test_every_base_is_pinned_by_digest_and_shared(name: str) -> None:
    instructions = parse_dockerfile(DOCKER / f"{name}.Dockerfile")
    stages = stage_bases(instructions)
    assert len(stages) >= 2, "multi-stage"
    assert [n for _, _, n in stages] == ["builder", "runtime"]
    for _, base, _ in stages:
        assert BASE.match(base), base
    (pin,) = {base for _, base, _ in stages}
    service_pin = stage_bases(parse_dockerfile(DOCKER / "service.Dockerfile"))[0][1]
    assert pin == service_pin, "one base pin for every image"
    assert all(ins.args.startswith("${BASE_IMAGE}") for ins in instructions if ins.keyword == "FROM")


@pytest.mark.parametrize("name", NAMES)
def test_the_runtime_stage_runs_as_10001_with_the_venv_only(name: str) -> None:
    final = _final(name)
    users = [i.args for i in final if i.keyword == "USER"]
    assert users
    assert users[-1] == "10001:10001"
    copies = [i.args for i in final if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the runtime stage takes the venv only"
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert json.loads(_one(final, "VOLUME").args) == ["/state", "/data", "/tmp"]
    for key in ("source", "licenses", "version"):
        assert f'org.opencontainers.image.{key}="${{' in _one(final, "LABEL").args


def test_the_service_image_serves_on_8000_with_a_healthz_check() -> None:
    final = _final("service")
    assert json.loads(_one(final, "ENTRYPOINT").args) == ["replayrec", "serve"]
    assert _one(final, "EXPOSE").args == "8000"
    env = _one(final, "ENV").args
    for pair in ("REPLAYREC_HOST=0.0.0.0", "REPLAYREC_PORT=8000", "REPLAYREC_STATE_DIR=/state"):
        assert pair in env
    check = _one(final, "HEALTHCHECK").args
    argv = json.loads(check.split("CMD", 1)[1])
    assert argv[:2] == ["python3", "-c"], "exec form, no shell, no curl"
    code = argv[2]
    assert "urllib.request.urlopen('http://127.0.0.1:%s/healthz'" in code
    assert "'8000'" in code
    assert compile(code, "healthcheck", "exec")


def _pip_runs(name: str) -> list[str]:
    return [i.args for i in parse_dockerfile(DOCKER / f"{name}.Dockerfile") if "pip install" in i.args]


def test_pip_installs_are_constrained_by_the_lock_file() -> None:
    for name in NAMES:
        runs = _pip_runs(name)
        assert len(runs) == 1, f"{name}: one pip command"
        assert "pip install --no-cache-dir -c requirements/lock.txt" in runs[0]
    service = _pip_runs("service")[0]
    installed = re.findall(r"\./(\S+)", service)
    assert installed == list(SERVING_PACKAGES), "the image is the serving profile (application._profile)"
    assert "mlflow-skinny" in service.split()
    assert re.search(r"^mlflow-skinny==", LOCK, re.M)
    training = _pip_runs("training")[0]
    assert '"torch==2.13.0"' in training
    assert re.search(r"^torch==2\.13\.0$", LOCK, re.M)
    assert '--extra-index-url "${TORCH_INDEX}"' in training
    plugins = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
    assert sorted(re.findall(r'"\./plugins/(\w+)\[train\]"', training)) == plugins
    assert '"./core[stream]"' in _pip_runs("stream")[0]


def test_apt_installs_pin_versions_and_drop_the_lists() -> None:
    runs = [i for i in _final("stream") if i.keyword == "RUN" and "apt-get install" in i.args]
    assert len(runs) == 1
    packages = re.findall(r'"([a-z0-9.+-]+)=\$\{(\w+)\}"', runs[0].args)
    assert packages == [("openjdk-17-jre-headless", "JRE_VERSION")]
    assert re.search(r"ARG JRE_VERSION=17\.0\.\d+", (DOCKER / "stream.Dockerfile").read_text())
    assert "--no-install-recommends" in runs[0].args
    assert "rm -rf /var/lib/apt/lists/*" in runs[0].args
    assert json.loads(_one(_final("stream"), "ENTRYPOINT").args) == ["replayrec", "stream", "run"]


def test_dockerignore_keeps_environments_state_and_tests_out() -> None:
    lines = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv*/", ".replayrec/", ".git/"} <= lines
    files = context_files(ROOT)
    for must in ("requirements/lock.txt", "core/pyproject.toml", "serving/pyproject.toml",
                 "core/src/replayrec/scaffold/template/tests/test_contract.py"):  # fmt: skip
        assert must in files, must
    assert {
        f"plugins/{p.parent.name}/pyproject.toml" for p in (ROOT / "plugins").glob("*/pyproject.toml")
    } <= files
    leaked = [
        f for f in files
        if f.startswith((".venv", ".replayrec/", ".git/", "core/tests/", "serving/tests/", "infra/", "docs/"))
        or re.match(r"plugins/[^/]+/tests/", f) or "__pycache__/" in f or ".egg-info/" in f
    ]  # fmt: skip
    assert not leaked, leaked[:10]
    assert sum((ROOT / f).stat().st_size for f in files) < 5 * 2**20


def test_context_files_reads_dockerignore_as_docker_does(tmp_path: Path) -> None:
    for rel in (
        "a/keep.py",
        "a/tests/t.py",
        "a/x/tests/t.py",
        "a/m.pyc",
        "b/c.txt",
        "b/d/lock.txt",
        "top.md",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / ".dockerignore").write_text("# comment\n*\n!a/\n!b/d/lock.txt\na/tests/\n**/*.pyc\n")
    assert context_files(tmp_path) == {"a/keep.py", "a/x/tests/t.py", "b/d/lock.txt"}


def test_the_image_table_matches_the_dockerfiles() -> None:
    for spec in IMAGES:
        text = (ROOT / spec.dockerfile).read_text()
        for arg in spec.build_args:
            assert re.search(rf"^ARG {arg}=", text, re.M), f"{spec.name}: build arg {arg}"
        for port in spec.ports:
            assert f"EXPOSE {port}" in text
    serving = tomllib.loads((ROOT / "serving" / "pyproject.toml").read_text())["project"]["version"]
    assert image_spec("service").tag(ROOT) == f"registry.replayrec.internal/replayrec-service:{serving}"
    assert image_spec("training-gpu").tag(ROOT).endswith("-cu128")
    assert image_spec("training-gpu").repository == image_spec("training").repository
    with pytest.raises(Exception, match="the images: service, stream, training, training-gpu"):
        image_spec("nope")


# -- the build (slow): buildah + podman, no Docker engine -------------------------------------------------
@pytest.fixture(scope="module")
def builder() -> None:
    missing = [t for t in ("buildah", "podman", "debootstrap", "runc") if shutil.which(t) is None]
    if os.geteuid() != 0:
        missing.append("root")
    if missing:
        _required(f"building images needs {', '.join(missing)} (Debian: buildah podman debootstrap runc)")


@pytest.mark.slow
@pytest.mark.integration
def test_the_service_image_builds_and_runs_read_only_as_10001(builder: None, tmp_path: Path) -> None:
    spec = image_spec("service")
    tag = f"localhost/replayrec-service:test-{uuid.uuid4().hex[:8]}"
    result = build_image(spec, ROOT, tag=tag, base_image=local_base_image())
    ns = f"imgtest{uuid.uuid4().hex[:8]}"
    try:
        out = smoke_test_image(tag, Settings(), tmp_path / "state", namespace=ns)
        config = json.loads(subprocess.run([*podman_command(), "image", "inspect", tag], capture_output=True,
                                           text=True, check=True).stdout)[0]["Config"]  # fmt: skip
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True, check=False)
        _drop_keys(ns)
    print(f"service image: built in {result.seconds} s, {result.size_bytes / 1e6:.0f} MB; {out}")
    assert out["healthz"] == {"status": "ok"}
    assert out["healthcheck_ok"], "the image's own HEALTHCHECK command"
    assert out["uid_gid"] == [10001, 10001]
    assert out["root_read_only"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["replayrec", "serve"]
    assert config["Labels"]["org.opencontainers.image.version"] == spec.version(ROOT)
    assert (tmp_path / "state" / "datasets").is_dir(), "the state volume is where it wrote"


def _drop_keys(ns: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(Settings().redis_url, socket_connect_timeout=2)
        for key in client.scan_iter(match=f"{ns}:*"):
            client.delete(key)
        client.close()
    except redis.RedisError:
        pass
