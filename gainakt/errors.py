"""User-facing errors: raised for bad input or config, printed as one message without a traceback."""


class GainAKTError(Exception):
    """Base class for problems the user can fix (config, data files)."""


class DataError(GainAKTError):
    """A dataset file is missing, unreadable or malformed; the message names the file and line."""


class ConfigError(GainAKTError):
    """A config value is invalid; the message names the key."""


class CheckFailed(GainAKTError):
    """A verification check that is configured to stop the run did not pass; the message names it."""
