"""hera definitions: the promotion pipeline as an Argo WorkflowTemplate and scheduled retraining.

Each step runs ``replayrec pipeline step <step> <plugin>`` — the same functions ``replayrec pipeline run``
composes locally — in the project's container image. Steps write ``version``, ``passed`` and
``decision.json`` under ``/tmp/out``; the DAG branches on ``passed`` with ``when`` and hands each step the
previous step's decision as an input artifact (``--after``), which the CLI checks again before it runs.
"""

from __future__ import annotations

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    CronWorkflow,
    Env,
    Parameter,
    Resources,
    RetryStrategy,
    WorkflowTemplate,
)
from hera.workflows import models as m

__all__ = ["PLUGINS", "SCHEDULES", "TEMPLATE", "cron_workflow", "promotion_template"]

TEMPLATE = "replayrec-promotion"
NAMESPACE = "replayrec"
#: the training image, GPU variant (deploy/docker/training.Dockerfile with TORCH_VARIANT=cu128)
IMAGE = "registry.replayrec.internal/replayrec-training:0.6.8-cu128"
PLUGINS = ("lightgcn", "din", "ranknet")
#: nightly retraining, staggered so each stage trains on its upstream's fresh prod model
SCHEDULES = {"lightgcn": "0 1 * * *", "din": "0 3 * * *", "ranknet": "0 5 * * *"}
OUT = "/tmp/out"
GATES = "/etc/replayrec/gates.yaml"
GATE_STEPS = ("evaluate", "optimize", "stage", "canary", "prod")


def _env() -> list[Env | m.EnvVar]:
    secret = m.EnvVarSource(secret_key_ref=m.SecretKeySelector(name="replayrec-mlflow", key="tracking-uri"))
    return [
        Env(name="REPLAYREC_STATE_DIR", value="/state"),
        Env(name="REPLAYREC_DATA_DIR", value="/data"),
        Env(name="REPLAYREC_GIT_COMMIT", value="{{workflow.parameters.git-commit}}"),
        m.EnvVar(name="MLFLOW_TRACKING_URI", value_from=secret),
    ]


def _mounts() -> list[m.VolumeMount]:
    return [
        m.VolumeMount(name="state", mount_path="/state"),
        m.VolumeMount(name="data", mount_path="/data", read_only=True),
        m.VolumeMount(name="config", mount_path="/etc/replayrec", read_only=True),
    ]


def _outputs() -> list[Parameter | Artifact]:
    return [
        Parameter(name="version", value_from=m.ValueFrom(path=f"{OUT}/version")),
        Parameter(name="passed", value_from=m.ValueFrom(path=f"{OUT}/passed")),
        Artifact(name="decision", path=f"{OUT}/decision.json"),
    ]


def _retry() -> RetryStrategy:
    """Infrastructure failures are retried; a gate saying no exits 0 with passed=false and is not."""
    return RetryStrategy(
        limit=2, retry_policy="OnError", backoff=m.Backoff(duration="30s", factor=2, max_duration="10m")
    )


def _common() -> list[str]:
    return ["{{workflow.parameters.plugin}}", "--dataset", "{{workflow.parameters.dataset}}", "--out", OUT]


def promotion_template() -> WorkflowTemplate:
    """train → evaluate → optimize → stage → canary → prod for the plugin given as a parameter; *optimize*
    makes the serving variant the gate config names (``optimize.method``) and passes the candidate on
    unchanged when it names none."""
    with WorkflowTemplate(
        name=TEMPLATE,
        namespace=NAMESPACE,
        entrypoint="promote",
        labels={"app.kubernetes.io/name": "replayrec", "app.kubernetes.io/component": "promotion"},
        arguments=[
            Parameter(name="plugin", value="lightgcn", enum=list(PLUGINS)),
            Parameter(name="dataset", value="amazon-books-2014-1m"),
            Parameter(name="image", value=IMAGE),
            Parameter(name="git-commit", value="unknown"),
        ],
        volumes=[
            m.Volume(
                name="state",
                persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name="replayrec-state"),
            ),
            m.Volume(
                name="data",
                persistent_volume_claim=m.PersistentVolumeClaimVolumeSource(claim_name="replayrec-data"),
            ),
            m.Volume(name="config", config_map=m.ConfigMapVolumeSource(name="replayrec-config")),
        ],
        service_account_name="replayrec-pipeline",
        active_deadline_seconds=8 * 3600,
    ) as wt:
        train = Container(
            name="train",
            image="{{workflow.parameters.image}}",
            command=["replayrec"],
            args=["pipeline", "step", "train", *_common(), "--accelerator", "auto"],
            env=_env(),
            volume_mounts=_mounts(),
            outputs=_outputs(),
            retry_strategy=_retry(),
            resources=Resources(cpu_request=8, memory_request="32Gi", memory_limit="48Gi", gpus=1),
            timeout="6h",
        )
        gate = Container(
            name="gate",
            image="{{workflow.parameters.image}}",
            command=["replayrec"],
            args=[
                "pipeline",
                "step",
                "{{inputs.parameters.step}}",
                *_common(),
                "--model",
                "{{inputs.parameters.version}}",
                "--gates",
                GATES,
                "--after",
                "/tmp/in/after.json",
            ],
            inputs=[
                Parameter(name="step", enum=list(GATE_STEPS)),
                Parameter(name="version"),
                Artifact(name="after", path="/tmp/in/after.json"),
            ],
            env=_env(),
            volume_mounts=_mounts(),
            outputs=_outputs(),
            retry_strategy=_retry(),
            resources=Resources(cpu_request=2, cpu_limit=2, memory_request="12Gi", memory_limit="16Gi"),
            timeout="2h",
        )
        with DAG(name="promote"):
            t_train = train(name="train")
            previous, previous_name = t_train, "train"
            for step in GATE_STEPS:
                task = gate(
                    name=step,
                    arguments=[
                        Parameter(name="step", value=step),
                        Parameter(
                            name="version", value=f"{{{{tasks.{previous_name}.outputs.parameters.version}}}}"
                        ),
                        Artifact(
                            name="after", from_=f"{{{{tasks.{previous_name}.outputs.artifacts.decision}}}}"
                        ),
                    ],
                    when=f"{{{{tasks.{previous_name}.outputs.parameters.passed}}}} == true",
                )
                previous >> task
                previous, previous_name = task, step
    return wt


def cron_workflow(plugin: str) -> CronWorkflow:
    """Scheduled retraining of one plugin through the promotion template."""
    return CronWorkflow(
        name=f"replayrec-retrain-{plugin}",
        namespace=NAMESPACE,
        schedules=[SCHEDULES[plugin]],
        timezone="UTC",
        concurrency_policy="Forbid",
        starting_deadline_seconds=900,
        successful_jobs_history_limit=7,
        failed_jobs_history_limit=7,
        workflow_template_ref=m.WorkflowTemplateRef(name=TEMPLATE),
        arguments=[Parameter(name="plugin", value=plugin)],
        labels={"app.kubernetes.io/name": "replayrec", "app.kubernetes.io/component": "retraining"},
    )
