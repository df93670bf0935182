"""Exceptions raised by the fake, mirroring TD's td.tdError."""


class TDError(Exception):
    """What TD raises as td.tdError: misuse of an operator, parameter, table or channel."""


class ThreadViolation(TDError):
    """A TD object was touched from a thread other than TD's main thread.

    Real TD crashes or corrupts state in this case; the fake refuses loudly instead.
    """


class StorageKeyError(TDError, KeyError):
    """fetch() of a missing key without a default: catchable as KeyError or TDError."""
