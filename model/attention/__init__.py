"""Window-attention kernels: a compiled CPU forward and backward (``cpu.py``) beside their plain twin
(``ref.py``).

``model.archs.common.WindowAttention`` calls ``cpu.window_attention_rows_numba`` on CPU (float32,
12-wide heads: MambaIRv2-light) when its bias table takes no gradient (a restore, or LAM's input
gradient), and torch's SDPA everywhere else (training, other widths, exports, GPUs).
"""
