"""Ansible for ``playbooks/``: the offline checks (ansible-lint's production profile and the syntax check) and
applying the playbook for real to Debian roots made with debootstrap, through Ansible's chroot connection.

The tools come from the deployment tools environment (``settings.deploy_tools_bin``, ``make deploy-tools``):
``ansible-lint``, ``ansible-playbook`` and the collections of the full ``ansible`` package. A chroot target
has no init and no kernel of its own: its hosts get ``replayrec_booted_host: false``, so the roles write
packages, users, files, units and fstab entries and start, load or mount nothing
(``playbooks/group_vars/all.yml``).
Building a root (``debootstrap``) and entering it (``chroot``) need root privileges.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from replayrec.config import Settings
from replayrec.infra._check import CheckStep, deploy_tool, timed_step
from replayrec.infra._terraform import InfraError

__all__ = [
    "DEBIAN_MIRROR",
    "DEBIAN_SUITE",
    "INVENTORY_GROUPS",
    "ChrootHost",
    "HostRecap",
    "PlaybookRun",
    "apply_to_roots",
    "debootstrap_root",
    "lint_playbooks",
    "parse_run",
    "playbooks_dir",
]

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# the groups of the generated inventory (infra/modules/cluster: ansible_inventory)
INVENTORY_GROUPS = (
    "k8s_control_plane",
    "k8s_workers",
    "ingress",
    "storage",
    "ingest",
    "processing",
    "serving",
    "gpu",
)
# a root that never boots must not start services while packages install (the Debian convention for chroots)
_POLICY_RC_D = (
    "#!/bin/sh\n# written by replayrec: no service starts inside this root (it never boots)\nexit 101\n"
)
_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)
_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<task>.+?)\]")
_CHANGED = re.compile(r"^changed: \[(?P<host>[^\]]+)\]")


@dataclass(frozen=True)
class HostRecap:
    """One host's line of the PLAY RECAP."""

    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int
    rescued: int
    ignored: int


@dataclass(frozen=True)
class PlaybookRun:
    """One ``ansible-playbook`` run: exit status, duration, the recap per host and which tasks changed."""

    returncode: int
    seconds: float
    recap: dict[str, HostRecap]
    changed_tasks: list[str]
    output: str

    @property
    def ok(self) -> bool:
        """Exit status 0, a recap for every host, no host failed or unreachable."""
        return (
            self.returncode == 0
            and bool(self.recap)
            and all(r.failed == 0 and r.unreachable == 0 for r in self.recap.values())
        )

    @property
    def changed(self) -> int:
        """Changed tasks over all hosts (0: the run was idempotent)."""
        return sum(r.changed for r in self.recap.values())


@dataclass(frozen=True)
class ChrootHost:
    """A host of the temporary inventory: a root directory, its inventory groups and host variables."""

    name: str
    root: Path
    groups: tuple[str, ...]
    variables: Mapping[str, Any] = field(default_factory=dict)


def playbooks_dir(settings: Settings) -> Path:
    """``playbooks/`` beside ``infra/``."""
    return settings.infra_dir.parent / "playbooks"


def _tool_env(settings: Settings, playbooks: Path) -> dict[str, str]:
    """The tools' environment: their bin first on PATH, the playbooks' ansible.cfg, no colours, no prompts."""
    env = dict(os.environ)
    env.update(
        PATH=f"{settings.deploy_tools_bin}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
        PY_COLORS="0",
        ANSIBLE_HOME=str(settings.state_dir / "ansible"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    config = playbooks / "ansible.cfg"
    if config.is_file():
        env["ANSIBLE_CONFIG"] = str(config)
    return env


def _run(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from exc


def lint_playbooks(settings: Settings, root: Path | None = None) -> list[CheckStep]:
    """ansible-lint (offline, production profile) over ``root`` (default ``playbooks/``), then
    ``ansible-playbook --syntax-check`` of every playbook at its top level; never raises for a failed
    check."""
    root = root or playbooks_dir(settings)
    steps = [timed_step("ansible-lint", _shown(settings, root), partial(_lint, settings, root))]
    for playbook in sorted(root.glob("*.yml")):
        check = partial(_syntax_check, settings, playbook)
        steps.append(timed_step("syntax-check", _shown(settings, playbook), check))
    return steps


def _shown(settings: Settings, path: Path) -> str:
    """``path`` relative to the checkout when it is inside it (how a step names its target)."""
    try:
        return str(path.resolve().relative_to(settings.infra_dir.parent.resolve()))
    except ValueError:
        return str(path)


def _lint(settings: Settings, root: Path) -> tuple[str, dict[str, int]]:
    argv = [str(deploy_tool(settings, "ansible-lint")), "--offline", "--profile", "production"]
    argv += ["--nocolor", "--format", "codeclimate", "."]
    proc = _run(argv, cwd=root, env=_tool_env(settings, root), timeout=600)
    try:
        issues = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise InfraError(
            f"ansible-lint printed no JSON (status {proc.returncode}): {proc.stderr[-1500:]}"
        ) from exc
    if proc.returncode == 0 and not issues:
        return "production profile passed", {"violations": 0}
    if not issues:
        raise InfraError(f"ansible-lint failed (status {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    listing = "\n".join(
        f"{i.get('check_name')} {i['location']['path']}:{_line(i['location'])} {i.get('description', '')}"
        for i in issues
    )
    raise InfraError(f"ansible-lint: {len(issues)} violation(s)\n{listing}")


def _line(location: Mapping[str, Any]) -> int:
    """The first line of a codeclimate location (``lines.begin`` or ``positions.begin.line``)."""
    if "lines" in location:
        begin = location["lines"].get("begin", 0)
    else:
        begin = location.get("positions", {}).get("begin", {})
    return int(begin.get("line", 0) if isinstance(begin, dict) else begin)


def _syntax_check(settings: Settings, playbook: Path) -> tuple[str, dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="replayrec-syntax-") as tmp:
        inventory = Path(tmp) / "hosts.yml"
        groups: dict[str, dict[str, Any]] = {group: {"hosts": {}} for group in INVENTORY_GROUPS}
        inventory.write_text(yaml.safe_dump({"all": {"children": groups}}))
        argv = [str(deploy_tool(settings, "ansible-playbook")), "--syntax-check", "-i", str(inventory)]
        proc = _run(
            [*argv, str(playbook)], cwd=playbook.parent, env=_tool_env(settings, playbook.parent), timeout=300
        )
    if proc.returncode != 0:
        raise InfraError(
            f"syntax check of {playbook.name} failed:\n{(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return "syntax ok", {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (concurrent builders of one cache wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise InfraError(f"{what} needs root privileges (debootstrap and chroot)")


def debootstrap_root(
    cache: Path, dest: Path, *, suite: str = DEBIAN_SUITE, mirror: str = DEBIAN_MIRROR, timeout: float = 900
) -> Path:
    """A fresh Debian root at ``dest``, extracted from ``cache/debootstrap-<suite>-minbase.tar``, which is
    built once (``debootstrap --variant=minbase``) and replaced atomically; concurrent callers share one
    build (a lock file beside the archive)."""
    _need_root("building a Debian root")
    tarball = cache / f"debootstrap-{suite}-minbase.tar"
    if not tarball.is_file():
        with _locked(cache / f".debootstrap-{suite}.lock"):
            if not tarball.is_file():
                _build_tarball(tarball, suite=suite, mirror=mirror, timeout=timeout)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InfraError(f"{dest} is not empty: a root is extracted into an empty directory")
    proc = subprocess.run(
        ["tar", "-C", str(dest), "--numeric-owner", "-xpf", str(tarball)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise InfraError(f"extracting {tarball} failed: {proc.stderr.strip()[-1000:]}")
    return dest


def _build_tarball(tarball: Path, *, suite: str, mirror: str, timeout: float) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise InfraError("debootstrap is missing (apt-get install debootstrap)")
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=tarball.parent))
    try:
        root = work / "root"
        proc = subprocess.run(
            [debootstrap, "--variant=minbase", suite, str(root), mirror],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise InfraError(f"debootstrap {suite} failed:\n{(proc.stderr or proc.stdout).strip()[-2000:]}")
        policy = root / "usr" / "sbin" / "policy-rc.d"
        policy.write_text(_POLICY_RC_D)
        policy.chmod(0o755)
        partial = work / "root.tar"
        proc = subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise InfraError(f"archiving the root failed: {proc.stderr.strip()[-1000:]}")
        partial.replace(tarball)  # atomic: readers see the whole archive or none
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _chroot_inventory(hosts: Sequence[ChrootHost]) -> dict[str, Any]:
    """Inline host variables: they take precedence over the playbook's group_vars (booted_host included)."""
    connection = {
        "ansible_connection": "community.general.chroot",
        "ansible_become": False,
        "ansible_python_interpreter": "/usr/bin/python3",
        "replayrec_booted_host": False,
    }
    members: dict[str, dict[str, Any]] = {group: {"hosts": {}} for group in INVENTORY_GROUPS}
    for host in hosts:
        for group in host.groups:
            members.setdefault(group, {"hosts": {}})["hosts"][host.name] = None
    every = {h.name: {**h.variables, **connection, "ansible_host": str(h.root)} for h in hosts}
    return {"all": {"hosts": every, "children": members}}


def apply_to_roots(
    settings: Settings,
    hosts: Sequence[ChrootHost],
    work_dir: Path,
    *,
    playbook: Path | None = None,
    tags: Sequence[str] = ("node",),
    extra_vars: Mapping[str, Any] | None = None,
    timeout: float = 1200,
) -> PlaybookRun:
    """Run ``playbook`` (default ``playbooks/site.yml``) against Debian roots through the chroot connection.

    ``work_dir`` receives the inventory and the extra variables (a JSON file, mode 0600: secrets stay off the
    command line) and the run's log (``ansible.log``). Raises InfraError only when the run cannot start or
    times out; a failed play is a PlaybookRun whose ``ok`` is false.
    """
    _need_root("the chroot connection")
    if not hosts:
        raise InfraError("no hosts to apply the playbook to")
    playbook = playbook or playbooks_dir(settings) / "site.yml"
    work_dir.mkdir(parents=True, exist_ok=True)
    inventory = work_dir / "hosts.yml"
    inventory.write_text(yaml.safe_dump(_chroot_inventory(hosts), sort_keys=False))
    variables = work_dir / "extra-vars.json"
    _write_private(variables, json.dumps(dict(extra_vars or {})))
    argv = [str(deploy_tool(settings, "ansible-playbook")), "-i", str(inventory), "-e", f"@{variables}"]
    if tags:
        argv += ["--tags", ",".join(tags)]
    start = time.perf_counter()
    proc = _run(
        [*argv, str(playbook)], cwd=playbook.parent, env=_tool_env(settings, playbook.parent), timeout=timeout
    )
    output = proc.stdout + (f"\n{proc.stderr}" if proc.stderr else "")
    (work_dir / "ansible.log").write_text(output)
    return parse_run(output, proc.returncode, round(time.perf_counter() - start, 2))


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (created that way, never readable in between)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def parse_run(output: str, returncode: int, seconds: float) -> PlaybookRun:
    """The PLAY RECAP and the changed tasks ("host: role : task") of ``ansible-playbook``'s default output."""
    recap = {
        m["host"]: HostRecap(**{k: int(v) for k, v in m.groupdict().items() if k != "host"})
        for m in _RECAP.finditer(output)
    }
    changed: list[str] = []
    task = ""
    for line in output.splitlines():
        if found := _TASK.match(line):
            task = found["task"]
        elif (hit := _CHANGED.match(line)) and f"{hit['host']}: {task}" not in changed:
            changed.append(f"{hit['host']}: {task}")
    return PlaybookRun(returncode, seconds, recap, changed, output)
