"""Rule generator_quality: per class, do the synthetic records beat like real records of their class?"""

from pathlib import Path

from synthecg.evaluation.fidelity import write_generator_quality
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    report = write_generator_quality(
        Path(snakemake.input.real), Path(snakemake.input.synthetic), Path(snakemake.input.real_rhythm),
        Path(snakemake.input.synthetic_rhythm), Path(snakemake.output.json),
    )
    for name, entry in report["per_class"].items():
        log.info("%s: detectable %.2f, fits class %s, %s", name, entry["synthetic"]["detectable"],
                 entry["synthetic"]["fits_class"], "passes" if entry["passes"] else "fails")
