# Synthetic ECG for data augmentation and transfer learning in arrhythmia classification.
# Stages: workflow/rules/*.smk; helpers and config validation: workflow/rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/generators.smk"
include: "workflow/rules/classifiers.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/report.smk"


# On a cluster these run where Snakemake runs: the targets, the download (compute nodes often have
# no internet) and the small aggregation jobs, which would spend longer queueing than running.
localrules:
    all,
    download,
    preprocess,
    generators,
    synthetic,
    classifiers,
    fidelity,
    tables,
    plots,
    download_dataset,
    summarise_tables,
    plot_transfer,
    plot_augmentation,
    plot_fidelity,
    plot_heart_rate,
    plot_generator_loss,


rule all:
    input:
        preprocessed_files(),
        synthetic_files(),
        classifier_files(),
        quality_files(),
        fidelity_files(),
        table_files(),
        plot_files(),


rule download:
    input:
        downloaded_files(),


rule preprocess:
    input:
        preprocessed_files(),


rule generators:
    input:
        generator_files(),


rule synthetic:
    input:
        synthetic_files(),


rule classifiers:
    input:
        classifier_files(),


rule quality:
    input:
        quality_files(),


rule fidelity:
    input:
        fidelity_files(),


rule tables:
    input:
        table_files(),


rule plots:
    input:
        plot_files(),
