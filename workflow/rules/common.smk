# Config validation and every helper the stage files use. Nothing here runs a job.
from pathlib import Path

from synthecg.config import validate_config
from synthecg.errors import PipelineError

try:
    validate_config(
        config, Path(workflow.current_basedir).parent / "schemas" / "config.schema.yaml"
    )
except PipelineError as error:
    raise WorkflowError(str(error)) from None

SOURCE_DATASETS = config["datasets"]
# The merged set needs both sources; a generator is never trained on it.
DATASETS = SOURCE_DATASETS + (["merged"] if len(SOURCE_DATASETS) > 1 else [])
PHYSIONET_CACHE = "results/physionet/files"


wildcard_constraints:
    source="|".join(SOURCE_DATASETS),


def downloaded_files():
    return expand("results/physionet/{source}/manifest.json", source=SOURCE_DATASETS)


def preprocessed_files():
    return expand("results/data/{dataset}.h5", dataset=DATASETS) + expand(
        "results/data/{source}/qc.csv", source=SOURCE_DATASETS
    )


def merge_inputs(wildcards):
    return {source: f"results/data/{source}.h5" for source in SOURCE_DATASETS}
