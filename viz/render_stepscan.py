"""A GIF and a frame strip of the scan step-through, for the README:
``python -m viz.render_stepscan --image assets/coffee.png --out docs``.

Records one MambaIRv2 and one MambaIR checkpoint on a square centre crop of the image (``--size``,
default 64, the size the app's step-through is measured at), picks the MambaIRv2 layer whose router is
most decided on it (largest mean route probability; ``--layer stage.block`` to choose) and the MambaIR
layer at the same stage.block, and writes ``stepscan.gif`` and ``stepscan_strip.png`` with
``viz.stepscan.step_frame``: the same picture as the app's canvas, drawn in numpy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import stepscan

ROOT = Path(__file__).resolve().parent.parent
V2 = ROOT / "weights" / "mambairv2_lightSR_x2_demo.pth"
V1 = ROOT / "weights" / "MambaIR_lightSR_x2_demo.pth"


def centre_crop(path: str, size: int) -> np.ndarray:
    """(size, size, 3) uint8 centre crop of an image file."""
    img = np.asarray(Image.open(path).convert("RGB"))
    h, w = img.shape[:2]
    if min(h, w) < size:
        raise SystemExit(f"{path}: {w}x{h} is smaller than --size {size}")
    r, c = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[r:r + size, c:c + size])


def records(ckpt: Path, img: np.ndarray) -> list[dict]:
    """The scan records (ASSM for MambaIRv2, SS2D for MambaIR) of one forward on the image."""
    from model import capture, load_checkpoint

    net = load_checkpoint(str(ckpt)).eval()
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255.0  # (H, W, 3) -> (1, 3, H, W)
    with torch.no_grad(), capture(net) as rec:
        net(x)
    return list(rec.assm) or list(rec.ss2d)


def most_decided(v2: list[dict]) -> dict:
    """The MambaIRv2 record whose router has the largest mean route probability."""
    return max(v2, key=lambda r: float(torch.as_tensor(r["route_logp"]).exp().amax(-1).mean()))


def main(argv: list[str] | None = None) -> None:
    """Write the GIF and the frame strip."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=str(ROOT / "assets" / "coffee.png"))
    ap.add_argument("--v2", default=str(V2), help="MambaIRv2 checkpoint")
    ap.add_argument("--v1", default=str(V1), help="MambaIR checkpoint")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--layer", default="", help="MambaIRv2 stage.block (default: the most decided router)")
    ap.add_argument("--frames", type=int, default=40, help="GIF frames from t = 0 to the whole image")
    ap.add_argument("--zoom", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args(argv)
    img = centre_crop(args.image, args.size)
    v2s, v1s = records(Path(args.v2), img), records(Path(args.v1), img)
    if args.layer:
        st, bl = (int(v) for v in args.layer.split("."))
        v2 = next(r for r in v2s if (r["stage"], r["block"]) == (st, bl))
    else:
        v2 = most_decided(v2s)
    v1 = next((r for r in v1s if (r["stage"], r["block"]) == (v2["stage"], v2["block"])), v1s[0])
    data = stepscan.step_data(v2, v1, img, img.shape[:2])
    n = args.size * args.size
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = [round(n * k / args.frames) for k in range(args.frames + 1)]
    frames = [Image.fromarray(stepscan.step_frame(data, t, args.zoom)) for t in steps]
    durations = [120] * (len(frames) - 1) + [1500]  # hold the last frame
    frames[0].save(out / "stepscan.gif", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=True)
    strip = stepscan.frame_strip(data, [n // 8, n // 4, n // 2, 3 * n // 4], zoom=args.zoom)
    Image.fromarray(strip).save(out / "stepscan_strip.png")
    print(f"layer {v2['stage']}.{v2['block']} (MambaIR {v1['stage']}.{v1['block']}), {len(frames)} frames: "
          f"{out / 'stepscan.gif'}, {out / 'stepscan_strip.png'}")


if __name__ == "__main__":
    main()
