"""How well the ASSM routers of a MambaIRv2 network have learned: numbers per ASSM layer.

Inputs are ASSM capture records (``model.capture``): ``route_logp`` (B, L, T) the router's
log-probabilities, ``labels`` (B, L) the prompt each pixel took, ``grid`` (Hp, Wp), ``stage``,
``block``. All functions are pure except ``router_records`` / ``router_stats``, which run the network once.

Letters: B batch, L = Hp*Wp tokens of the padded grid, T prompts (num_tokens), H, W the image
size inside the grid (the network pads at the bottom and right).

Numbers per layer (``layer_stats``):
- ``mean_max_prob``: mean over pixels of the largest route probability; 1/T for a router that
  finds every prompt equally likely, 1 for a router that is sure of every pixel.
- ``used`` / ``dead``: prompts chosen by at least one pixel / by none (indices).
- ``perplexity``: exp of the entropy (nats) of the label usage, the "effective number of prompts";
  T for an even split, 1 when all pixels take one prompt.
- ``logit_change`` (with a reference record of the same input): root mean square change of the
  route logits. Logits are defined up to a constant per pixel, so both sides are centred over T
  first; log-probabilities centred this way equal centred logits.

Untrained router (``is_untrained``): a layer counts as near-uniform when its mean largest
probability is below 2/T, and a network is flagged when more than half of its layers are. Why 2/T:
a uniform router gives exactly 1/T, and the random initialisation of the official router
(Linear -> GELU -> Linear, PyTorch's default init, on LayerNorm'd features) gives 1.01/T
-1.02/T (measured on the light x4 preset, seeds 0 and 1, a random 32x32 input; a tiny random
network in tests/test_router_stats.py is flagged too); the shipped demo weights, whose router did
not move, give 1.01/T-1.015/T in all 20 layers. A router that prefers one prompt by
a margin of log(2) nats over the others everywhere already doubles that, and issue 13's target
for a learned router is 4/T, so 2/T separates "still at the start" from "has begun to route"
with room on both sides. "Most layers" rather than all: one sharp layer does not make the
labels of the others meaningful, and one flat layer in a learned network is not a reason to
call the whole network untrained (the pictures of each layer carry their own flag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

Record = dict[str, Any]
Stats = list[dict[str, Any]]  # one dict of numbers per ASSM layer, forward order

UNTRAINED_MESSAGE = "router not trained: every prompt about equally likely; labels are arbitrary"
UNIFORM_FACTOR = 2.0  # a layer is near-uniform when mean max probability < UNIFORM_FACTOR / T

__all__ = ["UNTRAINED_MESSAGE", "UNIFORM_FACTOR", "usage_stats", "mean_max_prob", "logit_change",
           "layer_stats", "records_stats", "slim_records", "pool_records", "router_records", "router_stats",
           "summary", "layer_untrained", "is_untrained", "untrained_message"]


def _np(x: Any) -> np.ndarray:
    """A tensor or array-like as a numpy array (detached, CPU)."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _crop(record: Record, key: str, image_hw: tuple[int, int] | None, batch: int | None) -> np.ndarray:
    """``record[key]`` (B, L, ...) cropped to the image's pixels: (B', H*W, ...), B' = 1 with ``batch``."""
    a = _np(record[key])
    if batch is not None:
        a = a[batch:batch + 1]
    if image_hw is None:
        return a
    hp, wp = (int(v) for v in record["grid"])
    h, w = int(image_hw[0]), int(image_hw[1])
    if not (0 < h <= hp and 0 < w <= wp):
        raise ValueError(f"image size {(h, w)} does not fit in the layer's padded grid {(hp, wp)}")
    rest = a.shape[2:]
    a = a.reshape(a.shape[0], hp, wp, *rest)[:, :h, :w]  # (B, L, ...) -> (B, Hp, Wp, ...) -> (B, H, W, ...)
    return a.reshape(a.shape[0], h * w, *rest)  # (B, H, W, ...) -> (B, H*W, ...)


def usage_stats(counts: np.ndarray) -> dict[str, Any]:
    """Entropy (nats, bits), perplexity, used/dead prompts, unused and largest share of (T,) counts."""
    counts = np.asarray(counts, dtype=np.float64)
    T = counts.size
    total = counts.sum()
    p = counts / total if total > 0 else np.full(T, 1.0 / T)
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    return {
        "num_prompts": int(T),
        "used": int((counts > 0).sum()),
        "dead": [int(k) for k in np.flatnonzero(counts == 0)],
        "entropy_nats": entropy,
        "entropy_bits": entropy / np.log(2.0),
        "perplexity": float(np.exp(entropy)),
        "unused_share": float((counts == 0).sum() / T),
        "largest_share": float(p.max()),
    }


def mean_max_prob(route_logp: Any) -> float:
    """Mean over all pixels of the largest route probability, from (..., T) log-probabilities."""
    logp = _np(route_logp).astype(np.float64)
    return float(np.exp(logp.max(axis=-1)).mean())


def logit_change(route_logp: Any, ref_logp: Any) -> float:
    """RMS change of the route logits between two (..., T) log-probability arrays of the same pixels.

    Each side is centred over T (logits are defined up to a constant per pixel).
    """
    a, b = _np(route_logp).astype(np.float64), _np(ref_logp).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"reference route log-probabilities have shape {b.shape}, expected {a.shape} "
                         "(use a reference record of the same input)")
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return float(np.sqrt(((a - b) ** 2).mean()))


def layer_stats(record: Record, ref: Record | None = None, image_hw: tuple[int, int] | None = None,
                batch: int | None = None) -> dict[str, Any]:
    """Router numbers of one ASSM layer (see the module docstring), pooled over the batch or one
    ``batch`` item, over the image's pixels (``image_hw``, default the whole padded grid).

    Keys: stage, block, num_prompts, mean_max_prob, counts (T,), used, dead, entropy_nats,
    entropy_bits, perplexity, unused_share, largest_share, untrained, and logit_change with ``ref``.
    """
    logp = _crop(record, "route_logp", image_hw, batch)  # (B', H*W, T)
    T = int(logp.shape[-1])
    labels = _crop(record, "labels", image_hw, batch).astype(np.int64)  # (B', H*W)
    counts = np.bincount(labels.ravel(), minlength=T).astype(np.int64)
    out: dict[str, Any] = {"stage": record.get("stage", -1), "block": record.get("block", -1),
                           "mean_max_prob": mean_max_prob(logp), "counts": counts, **usage_stats(counts)}
    out["untrained"] = layer_untrained(out)
    if ref is not None:
        out["logit_change"] = logit_change(logp, _crop(ref, "route_logp", image_hw, batch))
    return out


def records_stats(records: Sequence[Record], refs: Sequence[Record] | None = None,
                  image_hw: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """``layer_stats`` of every record (forward order), each against the reference of the same index."""
    if refs is not None and len(refs) != len(records):
        raise ValueError(f"{len(refs)} reference records for {len(records)} layers")
    return [layer_stats(r, None if refs is None else refs[i], image_hw) for i, r in enumerate(records)]


def slim_records(records: Sequence[Record], image_hw: tuple[int, int] | None = None) -> list[Record]:
    """Keep what the router numbers need (stage, block, route_logp, labels) cropped to the image's
    pixels, with ``grid`` = ``image_hw``: small enough to keep as a reference or save."""
    out = []
    for r in records:
        hw = tuple(int(v) for v in (image_hw or r["grid"]))
        logp = torch.as_tensor(_crop(r, "route_logp", hw, None))  # (B, H*W, T)
        labels = torch.as_tensor(_crop(r, "labels", hw, None))  # (B, H*W)
        out.append({"stage": r.get("stage", -1), "block": r.get("block", -1), "grid": hw,
                    "route_logp": logp, "labels": labels})
    return out


def pool_records(runs: Sequence[Sequence[Record]]) -> list[Record]:
    """Join the slim records of several inputs (one list per input, same layers) into one list whose
    pixels are all of theirs: route_logp (B, sum of L, T), labels (B, sum of L), grid (1, sum of L)."""
    if not runs:
        raise ValueError("no records to pool")
    if len({len(r) for r in runs}) != 1:
        raise ValueError("every input must have the same number of ASSM layers")
    pooled = []
    for layer in zip(*runs, strict=True):
        logp = torch.cat([torch.as_tensor(r["route_logp"]) for r in layer], dim=1)  # (B, sum L, T)
        labels = torch.cat([torch.as_tensor(r["labels"]) for r in layer], dim=1)  # (B, sum L)
        pooled.append({"stage": layer[0].get("stage", -1), "block": layer[0].get("block", -1),
                       "grid": (1, int(labels.shape[1])), "route_logp": logp, "labels": labels})
    return pooled


@torch.no_grad()
def router_records(net: nn.Module, x: Tensor) -> list[Record]:
    """Run ``net`` on ``x`` (B, C, H, W) once under capture, with argmax routing and in eval mode
    (its modes are restored afterwards); the slim records of its ASSM layers over the image's pixels
    (empty for a network without ASSM layers, e.g. MambaIR)."""
    from model.archs import get_options, set_options
    from model.capture import capture

    routing, was_training = get_options(net).get("routing"), net.training
    net.eval()
    if routing is not None:
        set_options(net, routing="argmax")
    try:
        with capture(net) as rec:
            net(x)
    finally:
        net.train(was_training)
        if routing is not None:
            set_options(net, routing=routing)
    return slim_records(rec.assm, tuple(x.shape[-2:]))


def router_stats(net: nn.Module, x: Tensor, refs: Sequence[Record] | None = None,
                 keep_records: bool = False) -> Stats | tuple[Stats, list[Record]]:
    """``layer_stats`` per ASSM layer of one forward of ``net`` on ``x`` (see ``router_records``).

    ``refs``: records of an earlier forward on the same input, for ``logit_change``. With
    ``keep_records`` also return the slim records (e.g. as ``refs`` for a later call).
    """
    records = router_records(net, x)
    stats = records_stats(records, refs)
    return (stats, records) if keep_records else stats


def summary(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The per-layer numbers as short JSON-friendly rows (no counts), for logs and manifests."""
    rows = []
    for s in stats:
        row = {"layer": f"{s['stage']}.{s['block']}", "mean_max_prob": round(s["mean_max_prob"], 5),
               "mean_max_prob_xT": round(s["mean_max_prob"] * s["num_prompts"], 3), "used": s["used"],
               "dead": len(s["dead"]), "perplexity": round(s["perplexity"], 3)}
        if "logit_change" in s:
            row["logit_change"] = round(s["logit_change"], 5)
        rows.append(row)
    T = stats[0]["num_prompts"] if stats else 0
    return {"num_prompts": T, "layers": rows, "untrained": is_untrained(stats),
            "layers_at_4_over_T": sum(s["mean_max_prob"] >= 4 / s["num_prompts"] for s in stats)}


def layer_untrained(stats: dict[str, Any]) -> bool:
    """True when a layer's mean largest route probability is below UNIFORM_FACTOR / T."""
    return bool(stats["mean_max_prob"] < UNIFORM_FACTOR / stats["num_prompts"])


def is_untrained(stats: Sequence[dict[str, Any]]) -> bool:
    """True when more than half of the layers' routers are near uniform (False with no layers)."""
    if not stats:
        return False
    return sum(layer_untrained(s) for s in stats) * 2 > len(stats)


def untrained_message(stats: Sequence[dict[str, Any]]) -> str | None:
    """UNTRAINED_MESSAGE when ``is_untrained(stats)``, else None."""
    return UNTRAINED_MESSAGE if is_untrained(stats) else None
