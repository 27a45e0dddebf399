"""Errors that name the problem and the fix."""


class ConfigError(ValueError):
    """A configuration value is wrong (unknown name, out of range, inconsistent with another)."""


class DataError(RuntimeError):
    """A data set cannot be found, downloaded or read."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite during training."""
