"""One seeding helper for training code, and stable seeds derived from run parts."""

import hashlib
import json
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from JSON-able parts (not Python's salted ``hash``)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF
