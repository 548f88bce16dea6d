"""The data plane's errors: each message is one line naming the dataset, file or record and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used as it is; survives pickling across Ray workers with its message."""

    def __init__(self, message: str):
        super().__init__(message)

    def __reduce__(self):
        return type(self), (str(self),)


def find_data_error(error: BaseException | None) -> DataError | None:
    """The DataError behind `error`, through the wrappers Ray puts around it, or None.

    Ray Data wraps a failed read task's exception, and Ray's task errors carry the original as `cause`;
    Ray Train collects each rank's exception in `worker_failures`. Walked breadth-first, originals first.
    """
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, BaseException):  # a Ray task error: look at what it wraps, not its traceback text
            pending.append(cause)
            continue
        if isinstance(current, DataError):  # Ray Data appends retry advice to the message: keep the first line
            return type(current)(str(current).splitlines()[0])
        pending += [current.__cause__, current.__context__, *getattr(current, "worker_failures", {}).values()]
    return None
