"""Suite-wide settings; must run before torch or numba are imported."""

import os

# numba's OpenMP workers spin while idle and slow every later torch op ~10x on
# a 2-core machine; passive waiting removes that (measured in tests/test_vectors).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
