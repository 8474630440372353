"""Search spaces: integer decision vectors that decode to an architecture or a pruning plan."""

from __future__ import annotations

import numpy as np


class SearchSpace:
    """Integer box ``xl <= x <= xu``; subclasses define ``decode`` and, where needed, ``repair``."""

    xl: np.ndarray
    xu: np.ndarray

    @property
    def n_var(self) -> int:
        return len(self.xl)

    def repair(self, x) -> list[int]:
        x = np.clip(np.rint(np.asarray(x, dtype=float)), self.xl, self.xu).astype(int)
        return [int(v) for v in self._repair(x)]

    def _repair(self, x: np.ndarray) -> np.ndarray:
        return x

    def decode(self, x) -> dict:
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        X = rng.integers(self.xl, self.xu + 1, size=(n, self.n_var))
        return np.array([self.repair(x) for x in X])

    def describe(self) -> dict:
        return {"n_var": self.n_var, "xl": self.xl.tolist(), "xu": self.xu.tolist()}
