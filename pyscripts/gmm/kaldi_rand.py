"""Kaldi's random numbers (base/kaldi-math: Rand, RandUniform, RandGauss) as a Kaldi binary draws
them on Linux: glibc's rand() from its default state (seed 1), turned into uniforms and Gaussians in
single precision. Each Kaldi process starts from that state, so a fresh KaldiRand per emulated
process (e.g. one gmm-est) draws the same numbers as Kaldi does."""
import ctypes
import ctypes.util
import math
from collections import deque

import numpy as np

RAND_MAX = 2147483647
_libm = ctypes.CDLL(ctypes.util.find_library("m"))
for _name in ("logf", "cosf"):
    getattr(_libm, _name).restype = ctypes.c_float
    getattr(_libm, _name).argtypes = [ctypes.c_float]


class KaldiRand:
    """glibc's default rand() (the TYPE_3 additive feedback generator, r[i] = r[i-3] + r[i-31])."""

    def __init__(self, seed=1):
        r = [seed]
        for _ in range(30):
            r.append(16807 * r[-1] % RAND_MAX)
        r += r[:3]
        for i in range(34, 344):  # glibc discards the first 310 outputs
            r.append((r[i - 31] + r[i - 3]) & 0xFFFFFFFF)
        self._r = deque(r[-34:], maxlen=34)

    def rand(self):
        value = (self._r[-31] + self._r[-3]) & 0xFFFFFFFF
        self._r.append(value)
        return value >> 1

    def uniform(self):
        """RandUniform: strictly between 0 and 1, as a float32."""
        return np.float32((self.rand() + 1.0) / (RAND_MAX + 2.0))

    def gauss(self):
        """RandGauss: Box-Muller in float32; the first uniform goes to the radius (as gcc orders it)."""
        radius = np.sqrt(np.float32(-2.0) * np.float32(_libm.logf(self.uniform())))
        angle = np.float32(_libm.cosf(float(np.float32(2.0 * math.pi * float(self.uniform())))))
        return np.float32(radius * angle)
