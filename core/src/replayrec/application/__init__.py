"""The application layer: the operations (evaluate, train, compare, report, recommend, benchmark) as plain
functions with typed inputs and results. The CLI, the promotion pipeline and, later, the service, the
streaming job and the Argo steps call these; none of them holds such logic itself."""

from replayrec.application._baselines import BASELINE_COLUMNS, BaselineTable, baselines_report
from replayrec.application._bench import (
    bench_cascade,
    bench_evaluate,
    bench_rank,
    bench_recall,
    bench_synthetic,
    bench_train,
)
from replayrec.application._bus import (
    ReplayRequest,
    bench_bus,
    bus_start,
    bus_status,
    bus_stop,
    ingest_events,
    replay_command,
    replay_start_detached,
    replay_status,
    replay_stop,
    run_replay,
    settings_env,
)
from replayrec.application._compare import AB_METRICS, ABReport, compare_arms
from replayrec.application._datasets import (
    PreparedDataset,
    dataset_stats,
    download,
    open_dataset,
    prepare_dataset,
)
from replayrec.application._evaluate import (
    EvalOptions,
    EvaluateOutcome,
    evaluate_cascade,
    evaluate_plugin,
    run_evaluate,
)
from replayrec.application._profile import (
    SERVING_PACKAGES,
    TRAINING_ONLY,
    bench_serving_profile,
    build_serving_env,
    cold_start_probe,
    dir_size_mb,
    importable_modules,
)
from replayrec.application._published import PUBLISHED
from replayrec.application._recommend import Recommendations, recommend_for_user
from replayrec.application._stages import STAGE_COLUMNS, StagesReport, StagesRequest, stages_report
from replayrec.application._timing import one_core, percentiles, time_calls
from replayrec.application._train import (
    TrainRequest,
    TrainResult,
    read_training_config,
    read_training_profile,
    train_model,
)

__all__ = [
    "AB_METRICS",
    "BASELINE_COLUMNS",
    "PUBLISHED",
    "SERVING_PACKAGES",
    "STAGE_COLUMNS",
    "TRAINING_ONLY",
    "ABReport",
    "BaselineTable",
    "EvalOptions",
    "EvaluateOutcome",
    "PreparedDataset",
    "Recommendations",
    "ReplayRequest",
    "StagesReport",
    "StagesRequest",
    "TrainRequest",
    "TrainResult",
    "baselines_report",
    "bench_bus",
    "bench_cascade",
    "bench_evaluate",
    "bench_rank",
    "bench_recall",
    "bench_serving_profile",
    "bench_synthetic",
    "bench_train",
    "build_serving_env",
    "bus_start",
    "bus_status",
    "bus_stop",
    "cold_start_probe",
    "compare_arms",
    "dataset_stats",
    "dir_size_mb",
    "download",
    "evaluate_cascade",
    "evaluate_plugin",
    "importable_modules",
    "ingest_events",
    "one_core",
    "open_dataset",
    "percentiles",
    "prepare_dataset",
    "read_training_config",
    "read_training_profile",
    "recommend_for_user",
    "replay_command",
    "replay_start_detached",
    "replay_status",
    "replay_stop",
    "run_evaluate",
    "run_replay",
    "settings_env",
    "stages_report",
    "time_calls",
    "train_model",
]
