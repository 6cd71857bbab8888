"""Errors a user can act on. The CLI prints their message (naming the file and what was expected) and exits 2."""


class RVOSError(Exception):
    """Base class of user-facing errors: bad input, wrong layout, incompatible checkpoint."""


class DatasetError(RVOSError, ValueError):
    """A dataset, video or prediction on disk does not have the expected layout or content."""


class ConfigError(RVOSError, ValueError):
    """A config, a key=value override or a checkpoint does not match what the code expects."""
