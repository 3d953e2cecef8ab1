"""Window attention on qkv rows in plain torch: the spec of ``cpu.window_attention_rows_numba``.

Letters: w windows (all images' in turn), n tokens per window, nh heads, c channels (c/nh per head),
m masked windows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..archs.common import window_attention_ref


def window_attention_rows_ref(qkv: Tensor, bias_t: Tensor, mask_t: Tensor, slot: Tensor, num_heads: int,
                              scale: float) -> Tensor:
    """softmax(q k^T * scale + bias + mask) v per window and head, from the qkv projection's rows.

    qkv (w, n, 3c): each token's q, k and v, heads in turn within each; bias_t (nh, n, n) and
    mask_t (m, n, n) transposed (``bias_t[h, j, i]``: query i, key j); slot (w,) int64: the
    window's mask in mask_t, or -1 for none. Returns (w, n, c), heads in turn.
    """
    w, n, c3 = qkv.shape
    c = c3 // 3
    q, k, v = qkv.reshape(w, n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)  # (w, nh, n, c/nh) each
    add = bias_t.transpose(1, 2)[None].expand(w, -1, -1, -1)  # (w, nh, n, n) [.., i, j]
    if mask_t.shape[0]:
        masked = slot >= 0
        mask = torch.zeros(w, n, n, dtype=qkv.dtype)
        mask[masked] = mask_t[slot[masked]].transpose(1, 2)  # (w, n, n) [.., i, j]
        add = add + mask[:, None]
    out = window_attention_ref(q, k, v, add, scale)  # (w, nh, n, c/nh)
    return out.permute(0, 2, 1, 3).reshape(w, n, c)  # (w, n, c)
