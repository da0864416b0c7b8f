"""Rule plot_embedding: real and synthetic records in the real classifier's feature space (PCA)."""

from pathlib import Path

from synthecg.evaluation.fidelity import embedding_2d
from synthecg.evaluation.plots import embedding_scatter
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    points = embedding_2d(Path(snakemake.input.real), [Path(p) for p in snakemake.input.synthetic],
                          Path(snakemake.input.real_model), max_records=snakemake.params.max_records)
    title = f"{snakemake.wildcards.dataset}: real vs {snakemake.wildcards.generator}"
    embedding_scatter(points, Path(snakemake.output.png), title)
