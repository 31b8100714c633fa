"""Consistency ‖A x̂ − y‖₂ of invkit.restore (and its floor ‖A A⁺y − y‖₂) on fashion32 with ssd-30:
odd sizes (padding), tiles, every operator kind, float32 and float64. Degrade mode on crops of a
2×2 mosaic of Fashion-MNIST test images.

    PYTHONPATH=.:plugins python scripts/restore_consistency.py
"""
import torch
torch.set_num_threads(1)
import invkit
from invkit.data import fashion_mnist
from invkit.restoration import prepare, restore_batch
x, _ = fashion_mnist("test", limit=4, dtype=torch.float64)
big = torch.cat([torch.cat([x[0], x[1]], -1), torch.cat([x[2], x[3]], -1)], -2)  # (1, 64, 64)
x = big[None].expand(4, -1, -1, -1)
cases = [  # (label, task, image (clean unless measured), kwargs, tile)
    ("sr4 13×9 y (padded 52×36→56×40)", "sr4", x[0, :, :52, :36], {}, "off"),
    ("sr4 33×8 y → 132×32 (128-px tiles)", "sr4", torch.cat([big, big, big], -2)[:, :132, :32], {}, "auto"),
    ("sr4 13×9 y, 32-px tiles", "sr4", x[0, :, :52, :36], {}, 32),
    ("sr8-avgpool 5×3 y", "sr8-avgpool", x[1, :, :40, :24], {}, "off"),
    ("sr8-avgpool 5×8 y, 32-px tiles", "sr8-avgpool", big[:, :40, :64], {}, 32),
    ("inpaint-random 61×59", "inpaint-random", x[2, :, :61, :59], {}, "off"),
    ("inpaint-box 61×59, 32-px tiles", "inpaint-box", x[2, :, :61, :59], {}, 32),
    ("deblur (gauss) 61×59", "deblur", x[3, :, :61, :59], {}, "off"),
    ("blur (kernel 3×5) 61×59", "blur", x[3, :, :61, :59], {"kernel": torch.ones(3, 5)}, "off"),
    ("denoise σ=0 61×59, 32-px tiles", "denoise", x[0, :, :61, :59], {"noise_sigma": 0.0}, 32),
]
print("| case | dtype | ‖Ax̂−y‖ | ‖AA⁺y−y‖ | ‖y‖ | tile | final projection | PSNR |")
print("|---|---|---|---|---|---|---|---|")
for dtype in (torch.float32, torch.float64):
    model = invkit.backbone("fashion32", dtype=dtype)
    for label, task, img, kw, tile in cases:
        job = prepare(img.to(dtype), task, backbone=model, mode="degrade", dtype=dtype, **kw)
        (r,) = restore_batch([job], model, "ssd-30", tile=tile)
        print(f"| {label} | {str(dtype)[6:]} | {r.consistency:.1e} | {r.info['consistency_floor']:.1e} | {float(r.y.norm()):.1f} | {r.info.get('tile')} | {bool(r.info.get('final_projection'))} | {r.psnr:.2f} |", flush=True)
