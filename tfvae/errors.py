"""Errors that name the problem and the fix."""


class ConfigError(ValueError):
    """A configuration value is wrong (unknown name, out of range, inconsistent with another)."""


class DataError(RuntimeError):
    """A data set cannot be found, downloaded or read."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite during training."""


class CheckpointError(RuntimeError):
    """A checkpoint or backup file is missing, truncated or corrupt."""


class WorkdirError(RuntimeError):
    """The workdir cannot be used: not writable, finished, or started with another config."""


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker run stopped (crashed, killed or preempted)."""


class DiskFullError(RuntimeError):
    """The disk of the workdir filled up while writing; what was saved before is intact."""
