"""Reference selective scan: plain PyTorch, the spec every faster backend must equal.

Same signature and semantics as ``mamba_ssm``'s ``selective_scan_ref``.

Dimension letters (used in every file of ``model/scan``):
  b  batch          d  channels (d_inner, or K*d_inner for grouped scans)
  l  sequence length n  state size (d_state)
  g  groups of B/C (1 for MambaIRv2, K=4 for MambaIR's SS2D); channel c
     belongs to group c // (d // g)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _expand_groups(M: Tensor, d: int) -> Tensor:
    """(b, n, l) or (b, g, n, l) -> (b, d, n, l), channel c reading group c // (d // g)."""
    if M.dim() == 3:
        return M.unsqueeze(1).expand(-1, d, -1, -1)  # (b, d, n, l)
    b, g, n, l = M.shape
    return M.repeat_interleave(d // g, dim=1)  # (b, g, n, l) -> (b, d, n, l)


def scan_inputs(u: Tensor, delta: Tensor, B: Tensor, C: Tensor, delta_bias: Tensor | None,
                delta_softplus: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Prologue shared by every backend: float32 u, dt (bias, softplus), B/C as (b, g, n, l)."""
    uf = u.float()
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float()[:, None]  # (b, d, l)
    if delta_softplus:
        dt = F.softplus(dt)
    Bg = B.float() if B.dim() == 4 else B.float().unsqueeze(1)  # (b, n, l) -> (b, 1, n, l)
    Cg = C.float() if C.dim() == 4 else C.float().unsqueeze(1)  # (b, n, l) -> (b, 1, n, l)
    return uf, dt, Bg, Cg


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """y[b,d,l] = sum_n C[l,n] h[l,d,n] + D[d] u[b,d,l], h[l] = exp(dt A) h[l-1] + dt B[l] u[l].

    u, delta: (b, d, l); A: (d, n); B, C: (b, n, l) or (b, g, n, l);
    D, delta_bias: (d,); z: (b, d, l) gates the output with silu(z).
    Computes in float32 and returns u's dtype.
    """
    dtype_in = u.dtype
    u, delta, Bg, Cg = scan_inputs(u, delta, B, C, delta_bias, delta_softplus)
    b, d, l = u.shape
    A = A.float()
    Bf = _expand_groups(Bg, d)  # (b, d, n, l)
    Cf = _expand_groups(Cg, d)  # (b, d, n, l)
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # (b, d, l, n)
    deltaB_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, Bf, u)  # (b, d, l, n)
    h = u.new_zeros((b, d, A.shape[1]))  # (b, d, n)
    ys = []
    for i in range(l):
        h = deltaA[:, :, i] * h + deltaB_u[:, :, i]  # (b, d, n)
        ys.append(torch.einsum("bdn,bdn->bd", h, Cf[:, :, :, i]))  # (b, d)
    y = torch.stack(ys, dim=2)  # (b, d, l)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)


def _flip_groups(x: Tensor, g: int, reverse: tuple[bool, ...]) -> Tensor:
    """(b, g*p, l) or (b, g, n, l) with the groups marked in ``reverse`` flipped along l."""
    if not any(reverse):
        return x
    parts = x.view(x.shape[0], g, -1, x.shape[-1]).unbind(1)  # g x (b, p, l)
    return torch.stack([p.flip(-1) if r else p for p, r in zip(parts, reverse, strict=True)], 1).view(x.shape)


def lowrank_delta(delta: Tensor, dt_weight: Tensor) -> Tensor:
    """(b, g, q, l) low-rank inputs and a (g, p, q) or (g*p, q) weight -> (b, g*p, l) step inputs, by
    the official ``einsum("bkrl,kdr->bkdl")`` of the models' dt projections."""
    b, g, q, l = delta.shape
    weight = dt_weight.reshape(g, -1, q)  # (g, p, q)
    return torch.einsum("bkrl,kdr->bkdl", delta, weight).reshape(b, -1, l)  # (b, g*p, l)


def directed_by_flips(scan, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
                      delta_bias: Tensor | None, delta_softplus: bool, reverse: tuple[bool, ...],
                      dt_weight: Tensor | None = None, out_index: Tensor | None = None) -> Tensor:
    """``selective_scan_directed_ref`` through any ``selective_scan``-like ``scan``: forms a low-rank
    delta, copies u for each group, flips the reversed groups' inputs and outputs, adds them into
    out_index's rows."""
    if dt_weight is not None:
        delta = lowrank_delta(delta, dt_weight)
    b, d, l = delta.shape
    g = len(reverse)
    per = d // g
    gu = u.shape[1] // per
    us = u.view(b, gu, 1, per, l).expand(b, gu, g // gu, per, l).reshape(b, d, l)  # gi reads gi // (g // gu)
    y = scan(_flip_groups(us, g, reverse), _flip_groups(delta, g, reverse), A,
             _flip_groups(B, g, reverse), _flip_groups(C, g, reverse), D, None, delta_bias, delta_softplus)
    y = _flip_groups(y, g, reverse)  # (b, d, l)
    if out_index is None:
        return y
    index = out_index.expand(b, g, l)  # (b, g, l)
    out = y.new_zeros(b, l, per)  # (b, l, p), the groups added in turn
    for gi, yg in enumerate(y.view(b, g, per, l).unbind(1)):  # (b, p, l) each
        out = out.scatter_add(1, index[:, gi, :, None].expand(b, l, per), yg.transpose(1, 2))
    return out


def selective_scan_directed_ref(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                                D: Tensor | None, delta_bias: Tensor | None, delta_softplus: bool,
                                reverse: tuple[bool, ...], dt_weight: Tensor | None = None,
                                out_index: Tensor | None = None) -> Tensor:
    """Grouped scans that share u and may run backwards, all in one layout (returns u's dtype).

    delta: (b, g*p, l); B, C: (b, g, n, l); u: (b, gu*p, l), consecutive groups sharing u's groups
    (group gi reads u's group gi // (g // gu); gu divides g); reverse: (g,) bools, group gi scans
    from the end of its rows when set. Every tensor stays in its rows' order: y[..., i] is the
    output of the step that read index i. Equal to ``selective_scan_ref`` on u repeated per group
    and the reversed groups flipped (MambaIR's four SS2D scans: two layouts of the image, each
    read forwards and backwards). With ``dt_weight`` (g*p, q) given, delta is low-rank, (b, g, q, l),
    and the step inputs are ``lowrank_delta(delta, dt_weight)`` (the models' dt projections).
    With ``out_index`` (b or 1, g, l) int given, the output is (b, l, p), channel-last: group gi's
    output at index i of its rows is added into row out_index[:, gi, i], the groups in turn from a
    zero start (rows of a permutation: each row takes one output per group).
    """
    return directed_by_flips(selective_scan_ref, u, delta, A, B, C, D, delta_bias, delta_softplus, reverse,
                             dt_weight, out_index)



def tokens_to_rows(u: Tensor, proj: Tensor, g: int, per: int, q: int, index: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Channel-last tokens -> each group's rows in its own order, as ``selective_scan_directed_ref``
    takes them: u (b, g*p, l), step inputs (b, g, q, l), B, C (b, g, n, l).

    u (b, l, gu*p), group gi reading u's channel group gi // (g // gu); proj (b, l, g*(q + 2n)),
    group gi's columns [dt inputs (q), B (n), C (n)]; index (b or 1, g, l) the token at index i
    of group gi's order.
    """
    b, l, _ = u.shape
    gu = u.shape[2] // per
    idx = index.expand(b, g, l)  # (b, g, l)
    us, ps = [], []
    for gi in range(g):
        rows = idx[:, gi, :, None]  # (b, l, 1)
        ug = u.view(b, l, gu, per)[:, :, gi // (g // gu)]  # (b, l, p)
        us.append(torch.gather(ug, 1, rows.expand(b, l, per)).transpose(1, 2))  # (b, p, l)
        pg = proj.view(b, l, g, -1)[:, :, gi]  # (b, l, q + 2n)
        ps.append(torch.gather(pg, 1, rows.expand(b, l, pg.shape[2])).transpose(1, 2))  # (b, q + 2n, l)
    p_all = torch.stack(ps, 1)  # (b, g, q + 2n, l)
    n = (p_all.shape[2] - q) // 2
    dts, B, C = torch.split(p_all, [q, n, n], dim=2)
    return torch.cat(us, 1), dts, B, C


def selective_scan_tokens_ref(u: Tensor, proj: Tensor, A: Tensor, D: Tensor | None, delta_bias: Tensor | None,
                              dt_weight: Tensor, reverse: tuple[bool, ...], index: Tensor,
                              delta_softplus: bool = True) -> Tensor:
    """Grouped scans over channel-last tokens, each group in its own token order, summed back into
    the tokens' rows: (b, l, p), u's dtype.

    u (b, l, gu*p) tokens, group gi reading u's channel group gi // (g // gu); proj
    (b, l, g*(q + 2n)) each token's per-group step inputs, B and C (a projection of the tokens);
    A (g*p, n); D, delta_bias (g*p,); dt_weight (g*p, q); reverse (g,); index (b or 1, g, l): the
    token at index i of group gi's order (a permutation of the l tokens). The same as
    ``selective_scan_directed_ref`` on each group's rows gathered in its order, with
    ``out_index=index`` (MambaIR's SS2D: the row-major and column-major orders, each both ways).
    """
    g = len(reverse)
    rows = tokens_to_rows(u, proj, g, A.shape[0] // g, dt_weight.shape[-1], index)
    return directed_by_flips(selective_scan_ref, *rows[:2], A, *rows[2:], D, delta_bias, delta_softplus,
                             reverse, dt_weight, index).to(u.dtype)
