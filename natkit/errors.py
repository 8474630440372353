"""User-facing errors. The CLI prints them on one line and exits with code 2."""


class NatkitError(Exception):
    """Any problem caused by the user's input or environment, not by a bug in natkit."""


class ConfigError(NatkitError):
    """A malformed or semantically wrong option, TOML file, search space or budget."""


class DataError(NatkitError):
    """A dataset that is missing, corrupt or of the wrong shape."""


class WeightsError(NatkitError):
    """A checkpoint that is missing, corrupt or made for another architecture."""


class DivergedError(NatkitError):
    """Training produced a non-finite loss; ends one candidate with status ``failed``."""
