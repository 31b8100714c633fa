"""SW1 to the exact GMM posterior: SSD and DDNM with and without DPM-Solver++(2M) steps (issue 13).

d = 8 grid prior (the GMM benchmark's, seed 7919 + d), d_y = 2, σ_y = 0, 10 problems, 1000 samples,
500 slices; recipes as `invkit bench gmm` builds them (clamps off), with DPMSolver2M(BackProj())
swapped in for the "-2m" rows; the same generator seed for a recipe and its 2M twin (paired).
Run: PYTHONPATH=$PWD:$PWD/plugins python scripts/gmm_multistep_sw.py  (about 3 min, 1 thread).
"""
import time

import attrs
import torch

import invkit
from invkit import BackProj
try:  # the GMM benchmark's recipe builder moved into the plugin
    from invkit_gmm.bench import build_recipe
except ImportError:
    from invkit.bench.gmm import build_recipe
from invkit.multistep import DPMSolver2M
from invkit_gmm import ci95, grid_prior, random_directions, random_problem, sliced_wasserstein
torch.set_num_threads(1)
d, dy, P, n = 8, 2, 10, 1000
prior = grid_prior(d, generator=torch.Generator().manual_seed(7919 + d))
theta = random_directions(d, 500, generator=torch.Generator().manual_seed(7920 + d))
rows = {}
floors = []
t = time.time()
for i in range(P):
    g = torch.Generator().manual_seed(1000 + i)
    pb = random_problem(prior, dy, sigma_y=0.0, generator=g)
    post = pb.posterior(prior)
    ref = post.sample(n, generator=g)
    floors.append(sliced_wasserstein(post.sample(n, generator=g), ref, directions=theta))
    op = invkit.operator("matrix", M=pb.A)
    y = pb.y.expand(n, dy).clone()
    for steps in (10, 20, 50, 100):
      for fam in ("ssd", "ddnm"):
        base = build_recipe(fam, steps, sigma_y=0.0)
        for eta in ((0.8, 0.0) if fam == "ssd" else (0.85, 0.0)):
            for name, r in ((fam, base), (fam + "-2m", attrs.evolve(base, guidance=DPMSolver2M(BackProj())))):
                r = attrs.evolve(r, eta=eta)
                res = r.run(prior, y, op, generator=torch.Generator().manual_seed(77 + i), return_info=True)
                sw = sliced_wasserstein(res.x, ref, directions=theta)
                rows.setdefault((name, eta, steps, res.nfe), []).append(sw)
print("noise floor SW1 %.3f ± %.3f" % ci95(floors), "seconds", round(time.time() - t))
for k, v in rows.items():
    m, h = ci95(v)
    line = f"{k} SW1 {m:.3f} ± {h:.3f}"
    if not k[0].endswith("-2m"):
        base = v
    else:
        m2, h2 = ci95([a - b for a, b in zip(v, base)])
        line += f"   paired 2m − plain {m2:+.3f} ± {h2:.3f}"
    print(line)
