"""Window-attention kernels: a compiled CPU forward (``cpu.py``) beside its plain twin (``ref.py``).

``model.archs.common.WindowAttention`` calls ``cpu.window_attention_rows_numba`` for a restore on CPU
(no gradient wanted, float32, 12-wide heads: MambaIRv2-light) and torch's SDPA everywhere else.
"""
