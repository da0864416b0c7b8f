"""Rule summarise_tables: every classifier run and closeness report, as mean ± std over seeds (CSV and Markdown)."""

from pathlib import Path

from synthecg.evaluation.tables import write_tables
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    outputs = {name: Path(path) for name, path in snakemake.output.items()}
    summaries = write_tables(snakemake.input.classifier, snakemake.input.fidelity, outputs, snakemake.input.quality,
                             primary=snakemake.params.primary)
    for name, summary in summaries.items():
        log.info("%s: %d cells", name, len(summary))
