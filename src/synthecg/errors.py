"""Errors a user can act on.

Every failure that comes from bad input (a file, a server, a config value) is raised as a
`PipelineError` whose message names the file or key and says what to do. The workflow
scripts print that message alone, without a traceback from deep inside a library.
"""


class PipelineError(Exception):
    """A problem with the pipeline's input that the user can fix."""


class DownloadError(PipelineError):
    """A file could not be fetched or verified; `reason` is the short code for the QC table."""

    def __init__(self, message: str, reason: str = "download_failed"):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):  # keep `reason` when sent between processes
        return type(self), (str(self), self.reason)


class RecordError(PipelineError):
    """A record cannot be used; `reason` is the short code written to the QC table."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # keep both fields when sent between processes
        return type(self), (self.reason, self.detail)
