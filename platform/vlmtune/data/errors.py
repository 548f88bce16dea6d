"""The data plane's errors: each message is one line naming the dataset, file or record and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used as it is; survives pickling across Ray workers with its message."""

    def __init__(self, message: str):
        super().__init__(message)

    def __reduce__(self):
        return type(self), (str(self),)
