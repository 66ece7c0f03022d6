"""The seed article's method, as a baseline: one dense float64 product of a 10000 x 100 query matrix by a
100 x 10000 key matrix, then the mean and standard deviation of the 10^8 scores divided by sqrt(100).

Run: python benchmarks/seed_method.py [N]   (N queries and keys, default 10000)
"""

import math
import sys

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
d = 100
rng = np.random.default_rng(0)
query = rng.normal(0, 1, (n, d))
key = rng.normal(0, 1, (d, n))
qk = query @ key / math.sqrt(d)
print(f"{qk.size} scores: mean {qk.mean():.5f}, std {np.std(qk, ddof=1):.5f}")
