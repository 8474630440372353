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


_UNSAFE_HINTS = ("weights_only", "allow_pickle", "can still be loaded", "trust the source", "add_safe_globals",
                 "safe_globals", "arbitrary code")


def scrub(message: str) -> str:
    """One line, without the loaders' hints to retry unsafely (torch's ``weights_only=False``, numpy's
    ``allow_pickle=True``): natkit never follows them, and neither should a user reading the error."""
    text = " ".join(str(message).split())  # one line, ANSI-free enough for a terminal
    text = text.replace("\x1b[1m", "").replace("\x1b[0m", "")
    lowered = text.lower()
    if any(h.lower() in lowered for h in _UNSAFE_HINTS):
        if "weights only load failed" in lowered or "weightsunpickler" in lowered or "weights_only" in lowered:
            head = text.split("Weights only load failed")[0]
            return (head + "the file holds Python objects besides tensors; natkit loads only tensors and "
                    "never unpickles objects").strip()
        if "allow_pickle" in lowered or "object arrays" in lowered:
            head = text.split("Object arrays")[0]
            return (head + "the file holds Python object arrays; natkit reads only numeric arrays and never "
                    "unpickles objects").strip()
        parts = [p for p in text.split(". ") if not any(h.lower() in p.lower() for h in _UNSAFE_HINTS)]
        return ". ".join(parts).strip() or "refused an unsafe file"
    return text
