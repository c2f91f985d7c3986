"""playbooks/: ansible-lint's production profile and the syntax check pass, careless plays are caught with the
rule names, the roles' argument specs reject bad values and match their defaults, the manifests the roles
render are valid Kubernetes, the manifests role builds every overlay, and site.yml's node plays, applied for
real to two Debian 12 roots (debootstrap, Ansible's chroot connection), leave the expected files, users, units
and packages behind, without logging the token — and a second run changes nothing.

The roots are a control-plane + storage node and the GPU node (a k3s agent). Not exercised here: anything a
running system does (no init or kernel of its own in a chroot: services are enabled, never started; no sysctl,
module or mount reaches the kernel; nothing is rebooted); the real k3s binary (GitHub is unreachable: the role
installs a local file the test writes, checked against its sha256, through the same variable an air-gapped
install uses); the NVIDIA driver (needs the GPU node's kernel) and the container toolkit (nvidia.github.io is
unreachable); mounting the volume (a regular file stands in for the block device: the filesystem, its UUID and
the fstab entry are real); and the cluster plays (Argo, device plugin, monitoring, manifests: no API server).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from replayrec.config import Settings
from replayrec.infra import (
    ChrootHost,
    PlaybookRun,
    apply_to_roots,
    debootstrap_root,
    deploy_cache_dir,
    lint_playbooks,
)

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "playbooks"
DEPLOY_BIN = REPO / ".venv-deploy" / "bin"
API = "203.0.113.10"
VOLUME = "/var/lib/replayrec-test/data-volume.img"
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvAKd+0ZmRX5dy4f5ZbcmMuYFbuy16gUpsKBYlm6Ew5 deploy@replayrec-test"
)

pytestmark = pytest.mark.integration


def _require(condition: bool, reason: str) -> None:
    """Skip without the tools, except in CI (REPLAYREC_REQUIRE_SHARED=1): there a missing tool fails."""
    if not condition:
        if os.environ.get("REPLAYREC_REQUIRE_SHARED"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    for tool in ("ansible-lint", "ansible-playbook"):
        _require((DEPLOY_BIN / tool).exists(), f"{DEPLOY_BIN / tool} is missing: run `make deploy-tools`")
    return Settings(
        infra_dir=REPO / "infra", state_dir=tmp_path_factory.mktemp("state"), deploy_tools_bin=DEPLOY_BIN
    )


def test_playbooks_pass_the_production_profile_and_the_syntax_check(settings: Settings) -> None:
    steps = lint_playbooks(settings)
    failed = [f"{s.step} {s.target}: {s.detail}" for s in steps if not s.ok]
    assert not failed, "\n".join(failed)
    assert steps[0].step == "ansible-lint"
    assert steps[0].numbers == {"violations": 0}
    assert {Path(s.target).name for s in steps if s.step == "syntax-check"} == {"site.yml"}


def test_careless_plays_are_reported_with_the_rule_names(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text(
        "---\n- name: A careless play\n  hosts: all\n  tasks:\n"
        "    - name: Say hello\n      command: echo hello\n"
        "    - name: Write a file\n      ansible.builtin.copy:\n        content: x\n        dest: /tmp/x\n"
    )
    (tmp_path / "broken.yml").write_text(
        "---\n- name: A play with a module nobody wrote\n  hosts: all\n  tasks:\n"
        "    - name: Use it\n      ansible.builtin.no_such_module:\n        answer: 42\n"
    )
    steps = {(s.step, Path(s.target).name): s for s in lint_playbooks(settings, tmp_path)}
    lint = steps["ansible-lint", tmp_path.name]
    assert not lint.ok
    for rule in (
        "no-changed-when",
        "fqcn[action-core]",
        "risky-file-permissions",
        "syntax-check[unknown-module]",
    ):
        assert rule in lint.detail, lint.detail
    assert "site.yml:5 " in lint.detail  # with file and line
    assert not steps["syntax-check", "broken.yml"].ok
    assert "no_such_module" in steps["syntax-check", "broken.yml"].detail
    assert steps["syntax-check", "site.yml"].ok


@pytest.mark.parametrize("role", sorted(p.name for p in (PLAYBOOKS / "roles").iterdir()))
def test_argument_specs_document_every_default(role: str) -> None:
    """Each role's argument specs list exactly its defaults (plus the shared replayrec_booted_host), and a
    documented default is the real one: the specs cannot drift from defaults/main.yml."""
    folder = PLAYBOOKS / "roles" / role
    defaults = yaml.safe_load((folder / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((folder / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {name: spec for entry in specs.values() for name, spec in (entry.get("options") or {}).items()}
    assert set(options) - {"replayrec_booted_host"} == set(defaults)
    for name, spec in options.items():
        assert spec.get("description"), f"{role}: {name} has no description"
        if "default" in spec and name in defaults:
            assert spec["default"] == defaults[name], f"{role}: {name}"
    for expected in ("defaults/main.yml", "tasks/main.yml", "handlers/main.yml", "meta/main.yml"):
        assert (folder / expected).is_file(), f"{role}: {expected}"


def _playbook(settings: Settings, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(settings.state_dir / "ansible"),
    }
    return subprocess.run(
        [str(DEPLOY_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", *args, str(path),
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("role", "variables", "complaint"),
    [
        ("k3s", {"k3s_node_role": "master", "k3s_token": "x" * 40}, "k3s_node_role"),
        ("k3s", {"k3s_flannel_backend": "udp", "k3s_token": "x" * 40}, "k3s_flannel_backend"),
        ("storage_volume", {"storage_volume_fstype": "ntfs"}, "storage_volume_fstype"),
        ("common", {"common_sshd_permit_root_login": "yes"}, "common_sshd_permit_root_login"),
    ],
)
def test_argument_specs_reject_bad_values_before_any_task(
    settings: Settings, tmp_path: Path, role: str, variables: dict[str, object], complaint: str
) -> None:
    play = [
        {
            "name": "Bad values",
            "hosts": "localhost",
            "roles": [{"role": role, **variables}],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    proc = _playbook(settings, path)
    assert proc.returncode != 0
    assert "Validating arguments against arg spec" in proc.stdout
    assert f"value of {complaint} must be one of" in proc.stdout + proc.stderr
    assert "ok=1" in proc.stdout  # the facts
    assert "failed=1" in proc.stdout


@pytest.mark.parametrize(
    ("role", "template", "kinds"),
    [
        ("gpu_driver", "nvidia-device-plugin.yaml.j2", ["RuntimeClass", "DaemonSet"]),
        ("storage_volume", "persistent-volumes.yaml.j2", ["PersistentVolume"] * 4),
    ],
)
def test_the_manifests_the_roles_render_are_valid_kubernetes(
    settings: Settings, tmp_path: Path, role: str, template: str, kinds: list[str]
) -> None:
    validate = DEPLOY_BIN / "kubernetes-validate"
    _require(validate.exists(), f"{validate} is missing: run `make deploy-tools`")
    out = tmp_path / "rendered.yaml"
    folder = PLAYBOOKS / "roles" / role
    task = {"src": str(folder / "templates" / template), "dest": str(out), "mode": "0644"}
    play = [
        {
            "name": "Render",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(folder / "defaults" / "main.yml")],
            "vars": {"storage_volume_nfs_server": "10.20.0.11"},
            "tasks": [{"name": "Render the template", "ansible.builtin.template": task}],
        }
    ]
    (tmp_path / "render.yml").write_text(yaml.safe_dump(play))
    proc = _playbook(settings, tmp_path / "render.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    assert [d["kind"] for d in docs] == kinds
    check = subprocess.run(
        [str(validate), "--strict", "--kubernetes-version", "1.35", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    if role == "storage_volume":
        claims = {(d["spec"]["claimRef"]["namespace"], d["spec"]["claimRef"]["name"]) for d in docs}
        assert claims == {
            (ns, c)
            for ns in ("replayrec", "replayrec-staging")
            for c in ("replayrec-state", "replayrec-data")
        }
        assert {d["spec"]["nfs"]["path"] for d in docs} == {
            "/srv/replayrec/state/replayrec", "/srv/replayrec/state/replayrec-staging", "/srv/replayrec/data"
        }  # fmt: skip


def _secrets_play(tmp_path: Path, secrets: dict[str, object]) -> Path:
    play = [
        {
            "name": "Secrets",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Check the secrets",
                    "ansible.builtin.include_role": {"name": "manifests", "tasks_from": "secrets"},
                    "vars": {
                        "manifests_overlays": ["staging", "canary", "prod"],
                        "manifests_secrets_check_only": True,
                        "manifests_secrets_file": str(REPO / "deploy" / "k8s" / "secrets.yaml"),
                        "manifests_secrets": secrets,
                    },
                }
            ],
        }
    ]
    path = tmp_path / "secrets.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return path


def test_the_manifests_role_refuses_an_overlay_whose_secrets_are_incomplete(
    settings: Settings, tmp_path: Path
) -> None:
    """Every key deploy/k8s/secrets.yaml documents must be given for each overlay's namespace (cert-manager's
    certificate excepted) before anything is applied; the values never reach the output."""
    documented = yaml.safe_load((REPO / "deploy" / "k8s" / "secrets.yaml").read_text())
    ours = {name: body for name, body in documented.items() if "provided_by" not in body}
    assert "replayrec-redis" in ours
    assert "replayrec-tls" not in ours
    full = {
        ns: {name: {key: f"s3cr3t-{ns}-{name}-{key}" for key in body["keys"]} for name, body in ours.items()}
        for ns in ("replayrec", "replayrec-staging")
    }
    proc = _playbook(settings, _secrets_play(tmp_path, full))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "s3cr3t" not in proc.stdout + proc.stderr
    del full["replayrec"]["replayrec-redis"]["url"]
    proc = _playbook(settings, _secrets_play(tmp_path, full))
    assert proc.returncode != 0
    assert "manifests_secrets[replayrec][replayrec-redis] lacks url" in proc.stdout
    assert "s3cr3t" not in proc.stdout + proc.stderr


def test_the_manifests_role_builds_every_overlay(settings: Settings, tmp_path: Path) -> None:
    """The manifests role's build step (the part that runs without a cluster) on the real overlays."""
    play = [
        {
            "name": "Build",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"manifests_kustomize_root": str(REPO / "deploy" / "k8s" / "overlays")},
            "tasks": [
                {
                    "name": "Build",
                    "ansible.builtin.include_role": {"name": "manifests", "tasks_from": "build"},
                },
                {
                    "name": "Write what was built",
                    "ansible.builtin.copy": {
                        "content": "{{ item.stdout }}",
                        "dest": f"{tmp_path}/built-{{{{ item.item }}}}.yaml",
                        "mode": "0644",
                    },
                    "loop": "{{ manifests_built.results }}",
                },
            ],
        }
    ]
    (tmp_path / "build.yml").write_text(yaml.safe_dump(play))
    proc = _playbook(settings, tmp_path / "build.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    built = sorted(tmp_path.glob("built-*.yaml"))
    assert [p.name for p in built] == ["built-canary.yaml", "built-prod.yaml", "built-staging.yaml"]
    docs = [d for path in built for d in yaml.safe_load_all(path.read_text()) if d]
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert {"replayrec", "replayrec-staging"} <= namespaces
    claims = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for d in docs
        if d["kind"] == "PersistentVolumeClaim" and d["spec"].get("storageClassName") == "replayrec-shared"
    }
    # the storage_volume role's NFS PersistentVolumes serve exactly the shared (ReadWriteMany) claims
    defaults = yaml.safe_load((PLAYBOOKS / "roles" / "storage_volume" / "defaults" / "main.yml").read_text())
    served = {(v["namespace"], v["claim"]) for v in defaults["storage_volume_persistent_volumes"]}
    assert claims == served


# ---- the real apply to Debian roots ------------------------------------------------------------------------


@dataclass
class Applied:
    """The two roots, the secret and the two runs of site.yml's node plays."""

    cp: Path
    gpu: Path
    token: str
    binary_sha256: str
    first: PlaybookRun
    second: PlaybookRun


def _hosts(base: Path, cp: Path, gpu: Path) -> list[ChrootHost]:
    common = {"kubernetes_api_endpoint": f"https://{API}:6443", "replayrec_environment": "test"}
    return [
        ChrootHost(
            "cp-1",
            cp,
            ("k8s_control_plane", "storage", "ingest"),
            {
                **common,
                "private_ip": "10.20.0.11",
                "storage_volume_device": VOLUME,
                "storage_volume_allow_regular_file": True,
            },
        ),
        ChrootHost(
            "gpu-1",
            gpu,
            ("gpu",),
            {**common, "private_ip": "10.30.0.21", "k3s_node_external_ip": "203.0.113.21"},
        ),
    ]


def _leftovers(base: Path) -> list[str]:
    """Processes whose root is inside ``base`` and mounts below it: there must be none."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "root").startswith(str(base)):
                    found.append(f"process {proc.name}")
            except OSError:
                continue
    found += [
        f"mount {line.split()[1]}"
        for line in Path("/proc/mounts").read_text().splitlines()
        if str(base) in line
    ]
    return found


@pytest.fixture(scope="module")
def applied(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    _require(os.geteuid() == 0, "the chroot test needs root (debootstrap, chroot)")
    _require(shutil.which("debootstrap") is not None, "debootstrap is missing (apt-get install debootstrap)")
    base = tmp_path_factory.mktemp("roots")
    try:
        start = time.perf_counter()
        cp, gpu = (debootstrap_root(deploy_cache_dir(), base / name) for name in ("cp-1", "gpu-1"))
        volume = cp / VOLUME.lstrip("/")
        volume.parent.mkdir(parents=True)
        with volume.open("wb") as handle:
            handle.truncate(64 * 2**20)  # sparse: the stand-in for the attached block device
        binary = base / "k3s"
        binary.write_text(
            "#!/bin/sh\necho 'k3s version v1.35.6+k3s1 (a local file standing in for the release)'\n"
        )
        token = secrets.token_hex(32)
        extra = {
            "k3s_token": token,
            "k3s_binary_src": str(binary),
            "k3s_binary_sha256": hashlib.sha256(binary.read_bytes()).hexdigest(),
            "gpu_driver_install_driver": False,
            "gpu_driver_install_toolkit": False,
            "common_admin_authorized_keys": [PUBLIC_KEY],
        }
        roots_s = time.perf_counter() - start
        hosts = _hosts(base, cp, gpu)
        first = apply_to_roots(settings, hosts, base / "run-1", extra_vars=extra)
        second = apply_to_roots(settings, hosts, base / "run-2", extra_vars=extra) if first.ok else first
        print(
            f"\nroots {roots_s:.1f} s; run 1 {first.seconds:.1f} s changed={first.changed}; "
            f"run 2 {second.seconds:.1f} s changed={second.changed}"
        )
        yield Applied(cp, gpu, token, extra["k3s_binary_sha256"], first, second)
        assert not _leftovers(base), _leftovers(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _in(root: Path, *argv: str) -> str:
    proc = subprocess.run(
        ["chroot", str(root), *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
    return proc.stdout


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o7777)


@pytest.mark.slow
def test_site_applies_to_debian_roots_and_a_second_run_changes_nothing(applied: Applied) -> None:
    first, second = applied.first, applied.second
    assert first.ok, first.output[-8000:]
    assert set(first.recap) == {"cp-1", "gpu-1"}
    assert first.changed > 20
    assert second.ok, second.output[-8000:]
    assert second.changed == 0, "not idempotent, changed on the second run:\n" + "\n".join(
        second.changed_tasks
    )
    for run in (first, second):
        assert applied.token not in run.output  # no_log on every task that sees it


@pytest.mark.slow
def test_common_sshd_hardening_and_kernel_settings(applied: Applied) -> None:
    for root, forwarding in ((applied.cp, "local"), (applied.gpu, "no")):
        effective = dict(line.split(" ", 1) for line in _in(root, "/usr/sbin/sshd", "-T").splitlines())
        assert effective["permitrootlogin"] == "no"
        assert effective["passwordauthentication"] == "no"
        assert effective["kbdinteractiveauthentication"] == "no"
        assert effective["authenticationmethods"] == "publickey"
        assert effective["allowtcpforwarding"] == forwarding  # the control plane is the SSH jump host
        assert effective["x11forwarding"] == "no"
        assert effective["ciphers"].startswith("chacha20-poly1305@openssh.com")
        sysctl = (root / "etc/sysctl.d/60-replayrec.conf").read_text()
        assert "net.ipv4.ip_forward = 1" in sysctl
        assert "net.bridge.bridge-nf-call-iptables = 1" in sysctl
        assert (root / "etc/modules-load.d/60-replayrec-kubernetes.conf").read_text().split()[-2:] == [
            "br_netfilter",
            "overlay",
        ]


@pytest.mark.slow
def test_common_deploy_user_packages_updates_and_time(applied: Applied) -> None:
    for root in (applied.cp, applied.gpu):
        passwd = _in(root, "getent", "passwd", "deploy").strip().split(":")
        assert passwd[0] == "deploy"
        assert passwd[5] == "/home/deploy"
        assert passwd[6] == "/bin/bash"
        assert _in(root, "passwd", "-S", "deploy").split()[1] == "L"  # password locked: keys only
        assert (root / "home/deploy/.ssh/authorized_keys").read_text().strip() == PUBLIC_KEY
        sudoers = root / "etc/sudoers.d/90-replayrec-deploy"
        assert _mode(sudoers) == "0o440"
        assert "NOPASSWD: ALL" in sudoers.read_text()
        packages = [
            "openssh-server",
            "chrony",
            "unattended-upgrades",
            "sudo",
            "systemd",
            "apparmor",
            "nfs-common",
        ]
        status = _in(root, "dpkg-query", "-W", "-f", "${Package} ${Status}\n", *packages).splitlines()
        assert status == [f"{p} install ok installed" for p in sorted(packages)]
        apt = _in(root, "apt-config", "dump")
        assert (
            'Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename}-security,'
            in apt
        )
        assert 'label=Debian";' not in apt  # security only: the default's point-release origin is cleared
        assert 'Unattended-Upgrade::Automatic-Reboot "false";' in apt
        assert "SystemMaxUse=1G" in (root / "etc/systemd/journald.conf.d/50-replayrec.conf").read_text()
        assert "pool pool.ntp.org iburst" in (root / "etc/chrony/chrony.conf").read_text()
        assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Etc/UTC"
        assert _in(root, "systemctl", "is-enabled", "ssh", "chrony").split() == ["enabled", "enabled"]


@pytest.mark.slow
def test_k3s_server_and_agent_files(applied: Applied) -> None:
    for root, unit, role in ((applied.cp, "k3s", "server"), (applied.gpu, "k3s-agent", "agent")):
        binary = root / "usr/local/bin/k3s"
        assert hashlib.sha256(binary.read_bytes()).hexdigest() == applied.binary_sha256
        assert _mode(binary) == "0o755"
        assert os.readlink(root / "usr/local/bin/kubectl") == "/usr/local/bin/k3s"
        token = root / "etc/rancher/k3s/token"
        assert _mode(token) == "0o600"
        assert token.read_text().strip() == applied.token
        config_path = root / "etc/rancher/k3s/config.yaml"
        assert _mode(config_path) == "0o600"
        assert applied.token not in config_path.read_text()
        text = (root / f"etc/systemd/system/{unit}.service").read_text()
        assert f"ExecStart=/usr/local/bin/k3s {role}\n" in text
        assert "Delegate=yes" in text
        assert ("Type=notify" if role == "server" else "Type=exec") in text
        assert _in(root, "systemctl", "is-enabled", unit).strip() == "enabled"
        assert "vm.overcommit_memory = 1" in (root / "etc/sysctl.d/90-kubelet.conf").read_text()
        assert _mode(root / "etc/rancher/k3s/registries.yaml") == "0o600"
        assert "unix:///run/k3s/containerd/containerd.sock" in (root / "etc/crictl.yaml").read_text()
    server = yaml.safe_load((applied.cp / "etc/rancher/k3s/config.yaml").read_text())
    assert server["node-name"] == "cp-1"
    assert server["node-ip"] == "10.20.0.11"
    assert server["tls-san"] == [API]
    assert server["disable"] == ["traefik"]  # the project's Ingress is class nginx
    assert server["secrets-encryption"] is True
    assert "ExtendedResourceToleration" in server["kube-apiserver-arg"][0]
    assert server["token-file"] == "/etc/rancher/k3s/token"
    assert "server" not in server
    agent = yaml.safe_load((applied.gpu / "etc/rancher/k3s/config.yaml").read_text())
    assert agent["server"] == f"https://{API}:6443"  # the GPU site reaches the control plane's public address
    assert agent["node-external-ip"] == "203.0.113.21"
    assert agent["default-runtime"] == "nvidia"
    assert agent["node-label"] == ["replayrec.io/accelerator=nvidia"]
    assert agent["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert "tls-san" not in agent


@pytest.mark.slow
def test_storage_volume_filesystem_fstab_and_export(applied: Applied) -> None:
    root = applied.cp
    probe = _in(root, "blkid", "-p", "-o", "export", VOLUME)
    fields = dict(line.split("=", 1) for line in probe.splitlines())
    assert fields["TYPE"] == "ext4"
    assert fields["LABEL"] == "replayrec-data"
    fstab = [
        line.split() for line in (root / "etc/fstab").read_text().splitlines() if "/srv/replayrec" in line
    ]
    options = "defaults,noatime,nofail,x-systemd.device-timeout=30s"
    assert fstab == [[f"UUID={fields['UUID']}", "/srv/replayrec", "ext4", options, "0", "2"]]
    exports = (root / "etc/exports.d/replayrec.exports").read_text()
    assert "/srv/replayrec 10.20.0.11(rw,sync,no_subtree_check,root_squash)" in exports
    assert _in(root, "dpkg-query", "-W", "-f", "${Status}", "nfs-kernel-server") == "install ok installed"
    assert _in(root, "systemctl", "is-enabled", "nfs-server").strip() == "enabled"


@pytest.mark.slow
def test_gpu_node_configuration(applied: Applied) -> None:
    root = applied.gpu
    assert "blacklist nouveau" in (root / "etc/modprobe.d/blacklist-nouveau.conf").read_text()
    sources = (root / "etc/apt/sources.list.d/debian-nonfree.sources").read_text()
    assert "Components: contrib non-free non-free-firmware" in sources
    policy = _in(root, "apt-cache", "policy", "nvidia-driver")
    assert "Candidate: (none)" not in policy
    assert "Candidate:" in policy
    assert 'Unattended-Upgrade::Package-Blacklist:: "nvidia-";' in _in(root, "apt-config", "dump")
    assert not (applied.cp / "etc/modprobe.d/blacklist-nouveau.conf").exists()  # only the gpu group
