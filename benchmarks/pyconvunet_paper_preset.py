"""Search PyConvU-Net pyramids for the one closest to the paper's Table 3 (3.7 M parameters, 10.65 GMac at 3x512x512)
under equation (7)'s constraint: level 1 of every PyConv is a full-depth K_1 x K_1 convolution (groups 1).

Run ``python benchmarks/pyconvunet_paper_preset.py``; prints the best configurations as markdown
(docs/papers/pyconvunet.md quotes it) and checks the winner with a full 512x512 count.

Counts come from :func:`segzoo.complexity.measure` (the pinned ptflops rule). A network's counts are additive
over its stages, so each candidate pyramid is measured once per level (its encoder and decoder stages) at
1/8 of the resolution, scaled by 64 (convolutions, norms and activations scale exactly with the area), and
every combination of per-level candidates is then scored exactly in NumPy. The search space per level:
kernels 3 / 3-5 / 3-5-7 / 3-5-7-9; groups of levels 2.. from four geometric ladders; the share of level 1 in
the output channels from 1/1 (equal shares) down to 1/8 of the others'; base width 16, 24 or 32.
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
import torch

import segzoo
from segzoo.complexity import measure
from segzoo.nn import DoubleConv
from segzoo_pyconvunet.pyconv import PyConv

PAPER_PARAMS_M, PAPER_GMAC = 3.7, 10.65
SIZE, SCALE, DEPTH, IN_CHANNELS = 512, 8, 4, 3
KERNELS = ([3], [3, 5], [3, 5, 7], [3, 5, 7, 9])
GROUP_LADDERS = ((2, 4, 8), (4, 8, 16), (8, 16, 32), (16, 32, 64))
LEVEL1_SHARES = (1.0, 0.5, 0.25, 0.125)
BASES = (16, 24, 32)


def candidates() -> list[dict]:
    """Every pyramid of the search space; level 1 always has groups 1 (equation 7)."""
    out = [{"kernels": [3], "groups": [1]}]
    for kernels, ladder, share in itertools.product(KERNELS[1:], GROUP_LADDERS, LEVEL1_SHARES):
        n = len(kernels)
        out.append({"kernels": kernels, "groups": [1, *ladder[: n - 1]], "shares": [share, *[1.0] * (n - 1)]})
    return out


def stage_costs(base: int, level: int, pyramid: dict) -> tuple[float, float]:
    """Parameters (M) and GMac at 512x512 of the encoder and decoder stages of ``level`` built with ``pyramid``."""
    channels = [base * 2**i for i in range(DEPTH + 1)]
    size = SIZE // SCALE // 2**level

    def conv(i: int, o: int) -> PyConv:
        return PyConv(i, o, pyramid["kernels"], pyramid["groups"], pyramid.get("shares"), implementation="grouped")

    inputs = [IN_CHANNELS if level == 0 else channels[level - 1]] + ([2 * channels[level]] if level < DEPTH else [])
    params = gmac = 0.0
    for cin in inputs:  # the encoder stage, and the decoder stage (skip + up-sampled) above the bottleneck
        try:
            counts = measure(DoubleConv(cin, channels[level], conv), cin, size)
        except ValueError:  # shares that leave a level of a narrow stage without channels: not a candidate here
            return math.inf, math.inf
        params, gmac = params + counts.params_m, gmac + counts.gmac * SCALE**2
    return params, gmac


def full_costs(base: int, pyramids: list[dict], size: int = SIZE // SCALE) -> tuple[float, float]:
    model = segzoo.build("architecture", "pyconvunet", in_channels=IN_CHANNELS, out_channels=1, base_channels=base, depth=DEPTH,
                             pyramids=pyramids, implementation="grouped")
    counts = measure(model, IN_CHANNELS, size)
    return counts.params_m, counts.gmac * (SIZE / size) ** 2


def search(base: int, pool: list[dict], top: int) -> list[tuple[float, float, float, tuple[int, ...]]]:
    """The best single pyramid for all levels, then the ``top`` per-level choices closest to the paper,
    each as (error, params, gmac, candidate indices)."""
    cost = np.array([[stage_costs(base, level, p) for p in pool] for level in range(DEPTH + 1)])  # (level, cand, 2)
    fixed = np.array(full_costs(base, [pool[0]] * (DEPTH + 1))) - cost[:, 0].sum(0)  # up-convolutions, head, pooling
    deep = (cost[2][:, None, None] + cost[3][None, :, None] + cost[4][None, None, :]).reshape(-1, 2)
    best: list[tuple[float, float, float, tuple[int, ...]]] = []
    uniform = fixed + cost.sum(0)  # the same pyramid at every level
    err = np.hypot(uniform[:, 0] / PAPER_PARAMS_M - 1, uniform[:, 1] / PAPER_GMAC - 1)
    i = int(np.argmin(err))
    best.append((float(err[i]), *map(float, uniform[i]), (i,) * (DEPTH + 1)))
    for i0, i1 in itertools.product(range(len(pool)), repeat=2):
        total = fixed + cost[0, i0] + cost[1, i1] + deep
        err = np.hypot(total[:, 0] / PAPER_PARAMS_M - 1, total[:, 1] / PAPER_GMAC - 1)
        for j in np.argsort(err)[:top]:
            best.append((float(err[j]), *map(float, total[j]), (i0, i1, *np.unravel_index(j, (len(pool),) * 3))))
    return best[:1] + sorted(best[1:])[:top]


def describe(p: dict) -> str:
    shares = p.get("shares")
    share = "" if not shares or len(set(shares)) == 1 else f", level-1 share {shares[0]:g}"
    return f"k {'/'.join(map(str, p['kernels']))} g {'/'.join(map(str, p['groups']))}{share}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=3, help="best configurations shown per base width")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pool = candidates()
    print(f"{len(pool)} candidate pyramids per level, {len(pool) ** (DEPTH + 1):.2e} networks per base width\n")
    print("| base | level 0 (512²) | level 1 (256²) | level 2 (128²) | level 3 (64²) | level 4 (32²) | params (M) | GMac | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    winners = []
    for base in BASES:
        for err, params, gmac, idx in search(base, pool, args.top):  # the first row of a base: one pyramid everywhere
            print(f"| {base} | " + " | ".join(describe(pool[i]) for i in idx) + f" | {params:.2f} | {gmac:.2f} | {err:.3f} |")
            winners.append((err, base, [pool[i] for i in idx]))
    err, base, pyramids = min(winners, key=lambda w: w[0])
    params, gmac = full_costs(base, pyramids, SIZE)
    print(f"\nbest: base {base}, pyramids {pyramids}\nfull count at 3x512x512: {params:.3f} M parameters, {gmac:.2f} GMac "
          f"({100 * (params / PAPER_PARAMS_M - 1):+.1f}% / {100 * (gmac / PAPER_GMAC - 1):+.1f}%)")
    assert math.isclose(err, math.hypot(params / PAPER_PARAMS_M - 1, gmac / PAPER_GMAC - 1), abs_tol=1e-3), "additive model disagrees"


if __name__ == "__main__":
    main()
