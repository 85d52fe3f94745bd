"""Sparse training speed and mask memory: growcore's SparseController against the plain-torch
dense-mask way of rigl-torch (re-implemented in ``torch_common.py``), measured in the same run.

Three tables:

1. **One RigL update** of an ``nn.Linear(4096, 4096)`` at 10% density, drop fraction 0.3, Adam
   state present. growcore: one ``controller.step()`` at an update step (the policy is
   ``RigL(interval=1, decay="constant")``, statistics off), i.e. the core's decision, applying the
   plan to the bool mask, the weights and Adam's moments, and re-masking the weights. Peer: the
   rigl-torch update (two full top-k passes over the dense scores, dense mask algebra, masking of
   weights, gradient and optimizer state). Before every repeat, untimed, the kept weights and the
   whole gradient are refilled with fresh normal values on both sides. Also: growcore's time
   split into the core's decision, the plan's application and the re-masking, and how far each
   side's first update raises the process's peak resident memory.
2. **A whole RigL training run**: an MLP (784-1024-1024-10 by default) on fixed random batches
   of 128, Adam, every Linear at 10% (uniform), RigL every 100 steps with growcore's cosine
   schedule (0.3 decaying to 0 at 75% of the run). Plain loop: ``w.mul_(mask)`` after every
   optimizer step and the rigl-torch update at the same steps with the same fractions. growcore:
   ``controller.step()`` after every optimizer step, with its statistics hooks on (the default)
   and off. Wall time of the training loop (model and controller built outside the timer); the
   variants run interleaved, in a shuffled order per repeat, and the table gives medians and
   ratios of medians. CPU time (all threads) is given as a second, less contention-sensitive
   reading.
3. **Bytes of mask state per edge** at 10% density on 4096 x 4096.

    python benches/torch_table.py                  # all three (about 5 minutes on 2 cores)
    python benches/torch_table.py --only update    # or: run, memory
    python benches/torch_table.py --steps 200 --run-repeats 3 --hidden 512,512

Timings on a shared machine are noisy; read the ratios, which compare runs made side by side.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import growcore
from growcore.torch import SparseController
from growcore.torch.journal import Journal
from growcore.torch.policies import RigL
from growcore.torch.rewire import apply_rewire, decide_rewire
from torch_common import median_time, rigl_torch_update, topk_dense_update

SIDE, DENSITY, FRACTION = 4096, 0.1, 0.3


# ---------------------------------------------------------------------------------------- memory


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_added(fn: Callable[[], Any]) -> int | None:
    """Bytes by which ``fn`` raises the process's peak resident memory above its current
    resident memory (Linux only; ``None`` where the peak cannot be reset)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak (VmHWM) to the current resident size
    except OSError:
        return None
    before = _status("VmRSS")
    fn()
    return _status("VmHWM") - before


# ---------------------------------------------------------------------------------------- 1. update


def _linear_with_adam() -> tuple[nn.Linear, torch.optim.Optimizer]:
    layer = nn.Linear(SIDE, SIDE, bias=False)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    layer.weight.grad = torch.randn_like(layer.weight)
    opt.step()  # creates Adam's moments
    return layer, opt


@torch.no_grad()
def _refill(layer: nn.Linear, mask: torch.Tensor, gen: torch.Generator) -> None:
    w = layer.weight
    w.copy_(torch.randn(w.shape, generator=gen) * mask)
    assert w.grad is not None
    w.grad.copy_(torch.randn(w.shape, generator=gen))


def bench_update(repeats: int) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    ours, ours_opt = _linear_with_adam()
    policy = RigL(interval=1, drop_fraction=FRACTION, decay="constant", end=1.0)
    ctl = SparseController(
        ours, ours_opt, density=DENSITY, total_steps=10**9, policy=policy, distribution="uniform", stats=False
    )
    mask = ctl.layers[0].mask
    peer, peer_opt = _linear_with_adam()
    peer_mask = torch.rand(peer.weight.shape) < DENSITY
    with torch.no_grad():
        peer.weight.mul_(peer_mask)

    def peer_update() -> None:
        assert peer.weight.grad is not None
        rigl_torch_update(peer.weight, peer_mask, peer.weight.grad, FRACTION, peer_opt)

    lean, lean_opt = _linear_with_adam()
    lean_mask = torch.rand(lean.weight.shape) < DENSITY
    with torch.no_grad():
        lean.weight.mul_(lean_mask)

    def lean_update() -> None:
        assert lean.weight.grad is not None
        topk_dense_update(lean.weight, lean_mask, lean.weight.grad, FRACTION, lean_opt)

    sides: list[tuple[Callable[[], Any], Callable[[], None]]] = [
        (ctl.step, lambda: _refill(ours, mask, gen)),
        (peer_update, lambda: _refill(peer, peer_mask, gen)),
        (lean_update, lambda: _refill(lean, lean_mask, gen)),
    ]
    # Warm-up (first touches, thread pools), measuring how far each side's first update raises
    # the process's peak memory; then interleaved timed repeats.
    mems = []
    for fn, refill in sides:
        refill()
        mems.append(peak_added(fn))
    mem_ours, mem_peer, mem_lean = mems
    t_ours: list[float] = []
    t_peer: list[float] = []
    t_lean: list[float] = []
    for _ in range(repeats):
        for times, (fn, refill) in zip((t_ours, t_peer, t_lean), sides):
            times += median_time(fn, refill, repeats=1)

    # growcore's time, split (the same work as step(), called piece by piece).
    layer = ctl.layers[0]
    split: dict[str, list[float]] = {"decide": [], "apply": [], "mask": []}
    for _ in range(repeats):
        _refill(ours, mask, gen)
        count = round(FRACTION * ctl.graph.block_nnz(*layer.block))
        with torch.no_grad():
            t0 = time.perf_counter()
            w, g = layer.matrix(layer.weight.detach()), layer.matrix(ctl.gradient(layer))
            plan = decide_rewire(ctl.graph, layer.block, w, g, mask, count, ctl.policy)
            t1 = time.perf_counter()
            apply_rewire(plan, mask, layer.weight, ctl.optimizer, Journal())
            t2 = time.perf_counter()
            ctl.apply_masks()
            t3 = time.perf_counter()
        split["decide"].append(t1 - t0)
        split["apply"].append(t2 - t1)
        split["mask"].append(t3 - t2)


    def ms(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1e3:.0f} ms"

    def mb(x: int | None) -> str:
        return "n/a" if x is None else f"{x / 2**20:.0f} MB"

    lo_o, hi_o = min(t_ours), max(t_ours)
    lo_p, hi_p = min(t_peer), max(t_peer)
    ratio = statistics.median(t_peer) / statistics.median(t_ours)
    print(f"\n### One RigL update: nn.Linear({SIDE}, {SIDE}), density {DENSITY}, drop fraction {FRACTION}, Adam")
    print(f"{repeats} interleaved repeats, torch threads {torch.get_num_threads()}; median (min-max)\n")
    print("| | time | peak memory added |")
    print("|---|---|---|")
    print(f"| growcore `controller.step()` at an update step | {ms(t_ours)} ({lo_o * 1e3:.0f}-{hi_o * 1e3:.0f}) | {mb(mem_ours)} |")
    print(
        f"| - core decision (`Graph.prune_and_grow`) | {ms(split['decide'])} | |\n"
        f"| - plan applied to mask, weights, Adam moments | {ms(split['apply'])} | |\n"
        f"| - weights re-masked (`apply_masks`) | {ms(split['mask'])} | |"
    )
    print(f"| plain torch, rigl-torch's dense-mask update | {ms(t_peer)} ({lo_p * 1e3:.0f}-{hi_p * 1e3:.0f}) | {mb(mem_peer)} |")
    print(
        f"| plain torch, leaner: top-k of the count only, index writes | {ms(t_lean)} "
        f"({min(t_lean) * 1e3:.0f}-{max(t_lean) * 1e3:.0f}) | {mb(mem_lean)} |"
    )
    print(f"\ngrowcore is {ratio:.1f}x faster than rigl-torch's update (ratio of medians; per-repeat ratios "
          f"{min(p / o for p, o in zip(t_peer, t_ours)):.1f}-{max(p / o for p, o in zip(t_peer, t_ours)):.1f}x) "
          f"and {statistics.median(t_lean) / statistics.median(t_ours):.1f}x faster than the leaner plain-torch update")
    print("(peak memory added: growth of the process's peak resident memory during each side's first update, "
          "above what the process held just before)")


# ---------------------------------------------------------------------------------------- 2. run


def _mlp(sizes: list[int]) -> nn.Sequential:
    torch.manual_seed(1)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class Run:
    """One training run's setup; ``__call__`` runs the timed loop and returns (wall, cpu)."""

    def __init__(self, kind: str, sizes: list[int], batch: int, steps: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, batch, sizes[0], generator=gen)
        self.y = torch.randint(0, sizes[-1], (8, batch), generator=gen)
        self.kind, self.steps = kind, steps
        self.model = _mlp(sizes)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.policy = RigL()  # every 100 steps, 0.3 with cosine decay to 0 at 75% of the run
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        self.ctl: SparseController | None = None
        if kind == "plain":
            torch.manual_seed(2)
            self.masks = [torch.rand(m.weight.shape) < DENSITY for m in self.linears]
            with torch.no_grad():
                for m, k in zip(self.linears, self.masks):
                    m.weight.mul_(k)
        else:
            self.ctl = SparseController(
                self.model, self.opt, density=DENSITY, total_steps=steps, policy=self.policy,
                distribution="uniform", stats=kind == "growcore, stats on",
            )

    def __call__(self) -> tuple[float, float]:
        loss_fn = nn.CrossEntropyLoss()
        model, opt, ctl = self.model, self.opt, self.ctl
        wall, cpu = time.perf_counter(), time.process_time()
        for step in range(1, self.steps + 1):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(self.x[step % 8]), self.y[step % 8]).backward()
            opt.step()
            if ctl is not None:
                ctl.step()
                continue
            with torch.no_grad():
                for m, k in zip(self.linears, self.masks):
                    m.weight.mul_(k)  # rigl-torch's apply_mask_to_weights
            fraction = self.policy.fraction(step, self.steps)
            if fraction > 0:
                for m, k in zip(self.linears, self.masks):
                    assert m.weight.grad is not None
                    rigl_torch_update(m.weight, k, m.weight.grad, fraction, opt)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if ctl is not None:
            ctl.remove()
        return wall, cpu


def bench_run(sizes: list[int], batch: int, steps: int, repeats: int) -> None:
    kinds = ["plain", "growcore, stats on", "growcore, stats off"]
    Run("growcore, stats on", sizes, batch, min(steps, 20))()  # warm-up
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    cpus: dict[str, list[float]] = {k: [] for k in kinds}
    order = random.Random(0)
    for _ in range(repeats):
        for kind in order.sample(kinds, len(kinds)):
            run = Run(kind, sizes, batch, steps)
            wall, cpu = run()
            walls[kind].append(wall)
            cpus[kind].append(cpu)
    plain_wall, plain_cpu = statistics.median(walls["plain"]), statistics.median(cpus["plain"])
    updates = sum(RigL().fraction(s, steps) > 0 for s in range(1, steps + 1))
    print(f"\n### A whole RigL training run: MLP {'-'.join(map(str, sizes))}, batch {batch}, Adam, "
          f"{steps} steps, {updates} updates, density {DENSITY}")
    print(f"{repeats} repeats, interleaved; torch threads {torch.get_num_threads()}; medians\n")
    print("| loop | wall time | vs plain | CPU time | vs plain |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        w, c = statistics.median(walls[kind]), statistics.median(cpus[kind])
        print(f"| {kind} | {w:.2f} s | {w / plain_wall:.3f}x | {c:.2f} s | {c / plain_cpu:.3f}x |")
    spread = ", ".join(f"{k}: {min(v):.2f}-{max(v):.2f} s" for k, v in walls.items())
    print(f"\nwall time ranges: {spread}")


# ---------------------------------------------------------------------------------------- 3. memory


def bench_memory() -> None:
    g = growcore.Graph([SIDE, SIDE], DENSITY, seed=0, distribution="uniform")
    nnz = g.nnz
    positions = SIDE * SIDE
    graph_b = g.nbytes / nnz
    bool_b = positions / nnz
    print(f"\n### Mask state per edge: {SIDE} x {SIDE} at density {DENSITY} ({nnz:,} edges)\n")
    print("| mask state | bytes per edge |")
    print("|---|---|")
    print(f"| growcore graph (CSR: column index, birth step, frozen flag, row pointers) | {graph_b:.2f} |")
    print(f"| growcore's dense bool mask, kept on the weight's device as a cache | {bool_b:.2f} |")
    print(f"| growcore total | {graph_b + bool_b:.2f} |")
    print(f"| dense bool mask (rigl-torch keeps its masks as bool) | {bool_b:.2f} |")
    print(f"| dense float32 mask | {4 * bool_b:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["update", "run", "memory"], help="run one table")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of the single update")
    parser.add_argument("--run-repeats", type=int, default=5, help="repeats of each training run")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps per training run")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", default="1024,1024", help="hidden layer sizes of the MLP")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"growcore {growcore.__version__}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    if args.only in (None, "update"):
        bench_update(args.repeats)
    if args.only in (None, "run"):
        sizes = [784, *(int(h) for h in args.hidden.split(",")), 10]
        bench_run(sizes, args.batch, args.steps, args.run_repeats)
    if args.only in (None, "memory"):
        bench_memory()


if __name__ == "__main__":
    main()
