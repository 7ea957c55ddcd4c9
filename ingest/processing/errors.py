"""The error processing raises."""


class PipelineError(RuntimeError):
    """A file could not be processed. Names LA codes, fingerprints and ids, never file names."""
