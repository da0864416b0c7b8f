"""synthecg: synthetic 12-lead ECG for augmentation and transfer learning.

The package holds the data, model and evaluation code; the Snakemake workflow in
`workflow/` is the only place that knows about files and wildcards.
"""

from synthecg.errors import PipelineError

__all__ = ["PipelineError"]
