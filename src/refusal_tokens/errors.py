"""The two kinds of failure the data layer reports.

Every loader raises exactly one of these, with a message that names the source, the file and (where there is
one) the line, so that a user can fix the input without reading a traceback.
"""


class DataError(ValueError):
    """Input that is present but wrong: checksum mismatch, malformed line, missing column, unknown category,
    empty result, bad mix parameters."""


class SourceUnavailable(RuntimeError):
    """A source that cannot be obtained here (no mirror copy, no cached copy, no network / Hub).

    Benchmark code catches this and marks the set "not run" instead of inventing a number.
    """

    def __init__(self, source: str, message: str):
        super().__init__(f"{source}: {message}")
        self.source = source
