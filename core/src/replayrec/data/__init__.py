"""Datasets: registry, ETL, preparation into the canonical event table, synthetic world, loading."""

from replayrec.data._dataset import Dataset, default_dataset, ensure_prepared, load_dataset, prepared_path
from replayrec.data._download import download_dataset, download_file
from replayrec.data._etl import EtlConfig, apply_filters, k_core, read_ratings_csv, read_reviews_json
from replayrec.data._groups import derive_item_groups, kmeans
from replayrec.data._interactions import Catalog, Interactions, UserSequences
from replayrec.data._prepare import prepare, training_mask, write_prepared
from replayrec.data._registry import DATASETS, DataFile, DatasetSpec, get_spec, md5_of, verify_files
from replayrec.data._synthetic import SyntheticWorld, WorldConfig, generate_world
from replayrec.data._times import ACTION_OF, DAY, replay_times, spread_within_days, to_ms

__all__ = [
    "ACTION_OF",
    "DATASETS",
    "DAY",
    "Catalog",
    "DataFile",
    "Dataset",
    "DatasetSpec",
    "EtlConfig",
    "Interactions",
    "SyntheticWorld",
    "UserSequences",
    "WorldConfig",
    "apply_filters",
    "default_dataset",
    "derive_item_groups",
    "download_dataset",
    "download_file",
    "ensure_prepared",
    "generate_world",
    "get_spec",
    "k_core",
    "kmeans",
    "load_dataset",
    "md5_of",
    "prepare",
    "prepared_path",
    "read_ratings_csv",
    "read_reviews_json",
    "replay_times",
    "spread_within_days",
    "to_ms",
    "training_mask",
    "verify_files",
    "write_prepared",
]
