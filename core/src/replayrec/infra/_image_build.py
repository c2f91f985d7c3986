"""Building the images of ``replayrec.infra._images`` and smoke-testing one, without a Docker engine:
buildah builds (chroot isolation: no daemon, no user namespace), podman runs them (rootful), and where Docker
Hub is out of reach a debootstrapped Debian 12 with Debian's Python 3.11 stands in for the pinned official
base (``--build-arg BASE_IMAGE``). Needs root.

Two quirks of machines like the project's (a VM with a hybrid cgroup hierarchy, without CAP_SYS_RESOURCE):
crun refuses a hybrid hierarchy, so podman runs with runc there; and rootful podman's default limits
(1,048,576 open files) cannot be raised, so every run asks for modest ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replayrec.config import Settings
from replayrec.infra._check import deploy_cache_dir
from replayrec.infra._images import LOCAL_BASE, ImageSpec
from replayrec.infra._terraform import InfraError

__all__ = [
    "BuildResult",
    "build_image",
    "local_base_image",
    "podman_command",
    "push_image",
    "smoke_test_image",
]


@dataclass(frozen=True)
class BuildResult:
    """A built image: its tag (and the other tags it was given), id, size and how long the build took."""

    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    also: tuple[str, ...] = ()


def _run(argv: Sequence[str], timeout: float, what: str, cwd: Path | None = None) -> str:
    """``argv`` in its own process group (all of it ended on a timeout); its output, or ``InfraError``."""
    tool = shutil.which(argv[0])
    if tool is None:
        raise InfraError(f"{what}: {argv[0]} is not installed (Debian: apt-get install {argv[0]})")
    with subprocess.Popen(
        [tool, *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        start_new_session=True,
    ) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise InfraError(f"{what}: no result within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise InfraError(f"{what} failed (status {proc.returncode}):\n{(err or out)[-3000:]}")
    return out


_SOURCES = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def _base_tarball(cache: Path, timeout: float) -> Path:
    """A Debian 12 minbase root with python3 / python3-venv, as a tarball cached in ``cache``."""
    tarball = cache / "bookworm-minbase-python3.tar.gz"
    if tarball.is_file():
        return tarball
    rootfs = cache / "rootfs-bookworm"
    shutil.rmtree(rootfs, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    debootstrap = ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates"]
    _run([*debootstrap, "bookworm", str(rootfs), "http://deb.debian.org/debian"], timeout, "debootstrap")
    # this machine's extra CAs (a TLS-intercepting egress proxy, say) reach pip inside the build
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy2(crt, rootfs / "usr/local/share/ca-certificates" / crt.name)
    _run(["chroot", str(rootfs), "update-ca-certificates"], 120, "update-ca-certificates")
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(_SOURCES)
    for junk in ("etc/resolv.conf", "etc/hostname"):
        (rootfs / junk).unlink(missing_ok=True)
    for folder in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for p in (rootfs / folder).glob("*"):
            if p.is_file():
                p.unlink()
    partial = tarball.with_suffix(".partial")
    _run(["tar", "--numeric-owner", "-C", str(rootfs), "-czf", str(partial), "."], timeout, "tar")
    partial.rename(tarball)
    shutil.rmtree(rootfs)
    return tarball


def local_base_image(cache: Path | None = None, tag: str = LOCAL_BASE, timeout: float = 900) -> str:
    """The stand-in for the official ``python:3.11-slim-bookworm`` where Docker Hub is out of reach: a
    debootstrapped Debian 12 with Debian's Python 3.11, imported into podman's storage as ``tag`` (the root
    tarball is cached in ``cache``, default ``deploy_cache_dir()``). Returns ``tag``."""
    podman = shutil.which("podman")
    if podman and subprocess.run([podman, "image", "exists", tag], check=False, timeout=60).returncode == 0:
        return tag
    tarball = _base_tarball(cache or deploy_cache_dir(), timeout)
    change = ["--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]']
    _run(["podman", "import", *change, str(tarball), tag], timeout, "podman import")
    return tag


def build_image(
    spec: ImageSpec,
    root: Path,
    *,
    tag: str | None = None,
    base_image: str | None = None,
    build_args: Mapping[str, str] | None = None,
    also: Sequence[str] = (),
    timeout: float = 1800,
) -> BuildResult:
    """``spec``'s image, built with buildah (chroot isolation: no daemon, no user namespace needed; docker
    format, which keeps HEALTHCHECK), tagged ``tag`` and every tag in ``also``. ``base_image`` replaces the
    pinned official base (``BASE_IMAGE``)."""
    tag = tag or spec.tag(root)
    args = {"VERSION": spec.version(root), **spec.build_args, **(build_args or {})}
    if base_image:
        args["BASE_IMAGE"] = base_image
    argv = ["buildah", "bud", "--isolation", "chroot", "--format", "docker", "--layers=false"]
    argv += ["-f", str(root / spec.dockerfile)]
    for name in dict.fromkeys([tag, *also]):
        argv += ["-t", name]
    for key, value in sorted(args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    start = time.perf_counter()
    _run([*argv, str(root)], timeout, f"building {spec.name}", cwd=root)
    seconds = round(time.perf_counter() - start, 1)
    info = json.loads(_run(["podman", "image", "inspect", tag], 60, "podman image inspect"))[0]
    others = tuple(t for t in dict.fromkeys(also) if t != tag)
    return BuildResult(tag, str(info["Id"]), int(info["Size"]), seconds, others)


def push_image(tag: str, timeout: float = 1800) -> None:
    """``buildah push`` of a local image to the registry its tag names (``docker://<tag>``). The credentials
    are the containers auth file's (``buildah login``; ``REGISTRY_AUTH_FILE`` names another file)."""
    _run(["buildah", "push", tag, f"docker://{tag}"], timeout, f"pushing {tag}")


def podman_command() -> list[str]:
    """``podman`` with the OCI runtime this machine needs (runc on a hybrid cgroup hierarchy)."""
    hybrid = Path("/sys/fs/cgroup/unified").is_dir()
    return ["podman", "--runtime", "runc"] if hybrid and shutil.which("runc") else ["podman"]


_LIMITS = ("--ulimit", "nofile=16384:16384", "--ulimit", "nproc=16384:16384")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _container(argv: Sequence[str], name: str) -> Iterator[str]:
    """A detached container started with ``argv`` (``podman … run -d --name name …``), removed after."""
    podman = podman_command()
    _run([*podman, "run", "-d", "--name", name, *argv], 120, "podman run")
    try:
        yield name
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "10", name], capture_output=True, timeout=60, check=False)


def _wait_http(url: str, name: str, timeout: float) -> tuple[float, dict[str, Any]]:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body: dict[str, Any] = json.loads(r.read())
                return round(time.monotonic() - start, 2), body
        except (OSError, urllib.error.URLError):
            state = subprocess.run(
                [*podman_command(), "inspect", "-f", "{{.State.Running}}", name],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if state.stdout.strip() != "true":
                break
            time.sleep(0.5)
    logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True, timeout=30, check=False)
    raise InfraError(f"{url} did not answer within {timeout:.0f} s:\n{(logs.stdout + logs.stderr)[-2000:]}")


def _exec(name: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*podman_command(), "exec", name, "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def smoke_test_image(
    tag: str, settings: Settings, state_dir: Path, *, namespace: str | None = None, timeout: float = 180
) -> dict[str, Any]:
    """Run the service image ``tag`` as Kubernetes would (read-only root, user 10001, ``state_dir`` the only
    writable volume besides a /tmp tmpfs; host network, Redis at ``settings.redis_url``, keys under
    ``namespace``) and check: ``/healthz`` answers, the image's HEALTHCHECK passes, the process runs as
    10001:10001 and cannot write outside its volumes. The numbers; the container is removed after."""
    port, ns = _free_port(), namespace or f"smoke{uuid.uuid4().hex[:8]}"
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chown(state_dir, 10001, 10001)
    argv = [
        "--read-only", "--user", "10001:10001", "--network", "host", *_LIMITS,
        "--tmpfs", "/tmp:rw,size=256m,mode=1777", "-v", f"{state_dir}:/state:rw",
        "-e", "REPLAYREC_HOST=127.0.0.1", "-e", f"REPLAYREC_PORT={port}",
        "-e", f"REPLAYREC_BUS_NAMESPACE={ns}", "-e", f"REPLAYREC_REDIS_URL={settings.redis_url}", tag,
    ]  # fmt: skip
    with _container(argv, f"replayrec-smoke-{uuid.uuid4().hex[:8]}") as name:
        seconds, body = _wait_http(f"http://127.0.0.1:{port}/healthz", name, timeout)
        health = [*podman_command(), "healthcheck", "run", name]
        probe = subprocess.run(health, capture_output=True, timeout=60, check=False)
        ids = _exec(name, "import os; print(os.getuid(), os.getgid())").stdout.split()
        write = _exec(name, "open('/opt/venv/probe', 'w')")
    return {
        "namespace": ns,
        "port": port,
        "healthz_s": seconds,
        "healthz": body,
        "healthcheck_ok": probe.returncode == 0,
        "uid_gid": [int(i) for i in ids],
        "root_read_only": write.returncode != 0 and "Read-only file system" in write.stderr,
    }
