"""Rule synthetic_rhythm: the rhythm of a per-class subset of one generator's synthetic set, read once
for its quality and closeness reports."""

from pathlib import Path

from synthecg.evaluation.fidelity import synthetic_rhythms
from synthecg.io import write_csv_atomically
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    table = synthetic_rhythms(Path(snakemake.input.real), [Path(p) for p in snakemake.input.synthetic],
                              max_per_class=snakemake.params.max_per_class)
    write_csv_atomically(table, Path(snakemake.output.csv))
    log.info("%d records, %.1f %% with a detectable rhythm", len(table), 100 * table["detected"].mean())
