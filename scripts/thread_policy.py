"""The measurements behind model/threads.py: OpenMP wait policy and thread count against speed.

    python scripts/thread_policy.py            # idle machine
    python scripts/thread_policy.py --busy     # beside one busy process (a Python busy loop)
    python scripts/thread_policy.py --spins 300 10000 --rounds 4 --probes 0   # spin counts only

Each setting runs in its own interpreter (OpenMP reads its settings when torch loads): the time of a
(4096, 48) add, the forward of MambaIRv2-light x4 on 64x64 and MambaIR-light x4 on 48x48, and the
input gradient (forward+backward, what LAM runs) of both on 64x64 (random seeded weights, medians of
7 and 5 after a warm-up). ``--rounds`` repeats the settings in turn, so that a slow spell of a shared
machine falls on all of them. Then ``--probes`` runs of ``choose_threads`` in this process, with the
one-thread / all-core time ratio each measured (> 1: every core is faster).

    python scripts/thread_policy.py --paired 15 --spins 300 3000 10000   # interleaved, per run

``--paired ROUNDS``: one long-lived interpreter per spin count (2 threads), each running a single
forward (or forward+backward) in turn with the others, ROUNDS times per input: a slow spell of a
shared VM then falls on every setting alike, where the per-setting medians above can land in
different spells. Prints each setting's median and its median ratio against the first setting over
the pairs (> 1: faster), then in each interpreter 20 ``choose_threads`` probes: how often an idle
machine gets both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model.threads import SPIN_COUNT  # noqa: E402  (the package's default, compared first)

_WORKER = """
import json, statistics, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from model.archs import build
from model.config import PRESETS
def med(fn, n):
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
x = torch.randn(1, 4096, 48)
out = {"add_us": med(lambda: x + x, 200) * 1e6}
torch.manual_seed(0)
for preset, side in (("mambairv2_lightSR_x4", 64), ("MambaIR_lightSR_x4", 48)):
    net = build(PRESETS[preset]).eval()
    img = torch.rand(1, 3, side, side)
    with torch.no_grad():
        out[f"{preset} {side}x{side} s"] = med(lambda: net(img), 7)
for preset in ("mambairv2_lightSR_x4", "MambaIR_lightSR_x4"):
    net = build(PRESETS[preset]).eval().requires_grad_(False)
    img = torch.rand(1, 3, 64, 64)
    def grad():
        x = img.clone().requires_grad_(True)
        net(x).sum().backward()
    out[f"{preset} 64x64 fwd+bwd s"] = med(grad, 5)
print("RESULT " + json.dumps(out))
"""

_PAIRED_WORKER = """
import json, sys, time
import model  # first, as the app does: its malloc settings apply before torch loads
import torch
from model import threads as mt
from model.archs import build
from model.config import PRESETS
torch.set_num_threads(2)
torch.manual_seed(0)
runs = {}
for preset, side, grad in (("mambairv2_lightSR_x4", 64, False), ("MambaIR_lightSR_x4", 48, False),
                           ("mambairv2_lightSR_x4", 64, True), ("MambaIR_lightSR_x4", 64, True)):
    net = build(PRESETS[preset]).eval().requires_grad_(False)
    img = torch.rand(1, 3, side, side)
    def run(net=net, img=img, grad=grad):
        if grad:
            x = img.clone().requires_grad_(True)
            net(x).sum().backward()
        else:
            with torch.no_grad():
                net(img)
    runs[f"{preset} {side}x{side}" + (" fwd+bwd" if grad else "")] = run
for run in runs.values():
    run(); run()
print("READY " + json.dumps(list(runs)), flush=True)
for line in sys.stdin:
    if line.strip() == "probe":
        picks = [mt.choose_threads(2) for _ in range(20)]
        torch.set_num_threads(2)
        print(json.dumps(picks.count(2)), flush=True)
        continue
    t0 = time.perf_counter()
    runs[line.strip()]()
    print(json.dumps(time.perf_counter() - t0), flush=True)
"""


def paired(spins: list[str], rounds: int) -> None:
    """Interleaved A/B of spin counts in long-lived interpreters (see the module text)."""
    workers, names = [], []
    for n in spins:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(GOMP_SPINCOUNT=n, PYTHONPATH=ROOT)
        w = subprocess.Popen([sys.executable, "-c", _PAIRED_WORKER], env=env, cwd=ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = w.stdout.readline()
        if not ready.startswith("READY "):
            raise SystemExit(f"worker for GOMP_SPINCOUNT={n} failed to start")
        names = json.loads(ready[len("READY "):])
        workers.append(w)

    def ask(w: subprocess.Popen, line: str) -> float:
        w.stdin.write(line + "\n")
        w.stdin.flush()
        return json.loads(w.stdout.readline())

    times = {(i, k): [] for i in range(len(spins)) for k in names}
    for r in range(rounds):
        for k in names:
            order = list(range(len(spins)))
            for i in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
                times[(i, k)].append(ask(workers[i], k))
    picks = [ask(w, "probe") for w in workers]
    for w in workers:
        w.stdin.close()
        w.wait()
    for k in names:
        cells = []
        for i, n in enumerate(spins):
            ratio = statistics.median(a / b for a, b in zip(times[(0, k)], times[(i, k)], strict=True))
            cells.append(f"{n}: {statistics.median(times[(i, k)]):.3f} s ({ratio:.2f}x)")
        print(f"{k:34s} " + " | ".join(cells))
    print("choose_threads picks 2 threads (of 20, idle): " +
          " | ".join(f"{n}: {p}" for n, p in zip(spins, picks, strict=True)))


def settings(spins: list[str]) -> list[tuple[str, dict[str, str], int]]:
    """(name, environment, torch threads) to measure: asleep, each spin count on 2 threads, and
    the first spin count on 1 thread."""
    out = [("asleep (OMP_WAIT_POLICY=PASSIVE), 2 threads", {"OMP_WAIT_POLICY": "PASSIVE"}, 2)]
    out += [(f"spin (GOMP_SPINCOUNT={n}), 2 threads", {"GOMP_SPINCOUNT": n}, 2) for n in spins]
    return out + [(f"spin (GOMP_SPINCOUNT={spins[0]}), 1 thread", {"GOMP_SPINCOUNT": spins[0]}, 1)]


def run_setting(env_extra: dict[str, str], threads: int) -> dict[str, float]:
    """One interpreter with ``env_extra`` and ``threads``: its RESULT line."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", _WORKER, str(threads)], env=env, capture_output=True,
                          text=True, cwd=ROOT)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not line:
        raise SystemExit(f"worker failed:\n{done.stderr[-2000:]}")
    return json.loads(line[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", action="store_true", help="measure beside one busy process")
    ap.add_argument("--probes", type=int, default=20, help="choose_threads runs to report")
    ap.add_argument("--spins", nargs="+", default=[SPIN_COUNT, "10000"],
                    help="GOMP_SPINCOUNT values to compare (the first is also run on one thread)")
    ap.add_argument("--rounds", type=int, default=1, help="times to run every setting, in turn")
    ap.add_argument("--no-asleep", action="store_true", help="leave out OMP_WAIT_POLICY=PASSIVE")
    ap.add_argument("--paired", type=int, metavar="ROUNDS", default=0,
                    help="interleaved A/B of --spins in long-lived interpreters, ROUNDS per input")
    args = ap.parse_args(argv)
    if args.paired and args.busy:
        ap.error("--paired measures an idle machine; run --busy without it")
    if args.paired:
        print(f"# paired, {args.paired} rounds; load average {os.getloadavg()[0]:.1f}; GOMP_SPINCOUNT "
              f"(2 threads): median s (median ratio against {args.spins[0]} over the pairs)")
        paired(args.spins, args.paired)
        return 0
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        print(f"# {'beside one busy process' if hog else 'idle'}; load average {os.getloadavg()[0]:.1f}")
        chosen = settings(args.spins)[1 if args.no_asleep else 0:]
        for r in range(args.rounds):
            for name, env, threads in chosen:
                res = run_setting(env, threads)
                print(f"[{r + 1}] {name}: " + ", ".join(f"{k} {v:.3f}" if k.endswith(" s") else f"{k} {v:.0f}"
                                                  for k, v in res.items()), flush=True)
        from model import threads as mt

        ratios, picks = [], []
        for _ in range(max(0, args.probes)):
            picks.append(mt.choose_threads())
            one, every = mt.last_probe
            ratios.append(one / every)
        if ratios:
            print(f"choose_threads x{len(ratios)}: one-thread / all-core time {min(ratios):.2f}-"
                  f"{max(ratios):.2f}; picked {sorted(set(picks))} ({picks.count(1)} x one thread)")
    finally:
        if hog is not None:
            hog.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
