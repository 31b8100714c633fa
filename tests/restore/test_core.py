"""invkit.restore's core: measured and degrade mode for every task, any size, samples, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from invkit import hookimpl
from invkit.operator import Operator
from invkit.plugins import register_plugin, unregister_plugin
from invkit.errors import CapabilityError, ConfigError, InvalidInputError, UnknownNameError
from invkit.evaluation import image_seed

try:  # the evaluation tasks were renamed EVAL_TASKS (TASKS stays as a deprecated alias)
    from invkit.evaluation import EVAL_TASKS as TASKS
except ImportError:
    from invkit.evaluation import TASKS
from invkit.models import NetBackbone
from invkit.restoration import (
    batch_key,
    padding,
    prepare,
    read_kernel,
    read_mask,
    reflect_pad,
    restore,
    restore_batch,
    sample_seed,
    size_multiple,
)
from invkit.schedule import NoiseSchedule

FAST = "ssd:inversion_steps=2,generation_steps=3"


class _Eps(nn.Module):
    """A 3×3 convolution whose output depends on t: cheap, deterministic, batch-invariant."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(0.2 * torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.zero_()

    def forward(self, x, t):
        return self.conv(x) * (0.5 + t.to(x.dtype).reshape(-1, 1, 1, 1) / 1000)


def tiny(channels: int = 1, image_size: int | None = 16, multiple: int | None = 4, dtype=torch.float32) -> NetBackbone:
    """A random backbone 'trained' at ``image_size`` that runs on multiples of ``multiple``."""
    model = NetBackbone(_Eps(channels), NoiseSchedule.linear(1000), image_size=image_size, channels=channels)
    if multiple is not None:
        model.net.size_multiple = multiple
    return model.to(dtype)


def rand(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def tol(res) -> float:
    """Float32 tolerance of ‖A x̂ − y‖ relative to the scale of y."""
    return 1e-5 * max(1.0, float(res.y.norm()))


# ---- measured mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("task,scale", [("sr2", 2), ("sr4", 4), ("sr8", 8), ("sr8-avgpool", 8)])
def test_measured_sr_gives_a_larger_consistent_image(task, scale):
    y = rand((1, 6, 8))
    res = restore(y, task, recipe=FAST, backbone=tiny(), return_info=True, tile="off")
    assert res.x.shape == (1, 6 * scale, 8 * scale)
    assert torch.equal(res.y, y)
    assert res.consistency < tol(res)
    assert res.nfe == 1 + 3 and res.psnr is None and res.x_true is None


@pytest.mark.parametrize("operator", ["sr_bicubic", "sr_avgpool"])
def test_odd_size_is_padded_and_cropped_consistently(operator):
    # a 13×9 y at ×4 is a 52×36 x, not a multiple of 8: padded to 56×40, then cropped
    y = rand((1, 13, 9), seed=1)
    model = tiny(multiple=8, image_size=None)
    res = restore(y, "sr4", operator=operator, params={"scale": 4}, recipe=FAST, backbone=model, return_info=True)
    assert res.x.shape == (1, 52, 36)
    assert res.info["padded"] == [56, 40] and res.info["tile"] is None
    assert res.consistency < tol(res)
    # bicubic is not block-local: a final exact projection restores consistency with the given y
    assert res.info.get("final_projection", False) == (operator == "sr_bicubic")


def test_inpainting_with_a_mask_file(tmp_path):
    y = rand((1, 13, 11), seed=2)
    m = np.ones((13, 11), np.uint8) * 255
    m[3:9, 2:7] = 0
    Image.fromarray(m, "L").save(tmp_path / "mask.png")
    res = restore(y, "inpainting", mask=tmp_path / "mask.png", recipe=FAST, backbone=tiny(), return_info=True)
    assert res.x.shape == (1, 13, 11)
    known = torch.from_numpy(m > 0)
    assert torch.allclose(res.x[0][known], y[0][known], atol=1e-6)  # known pixels kept
    assert res.consistency < tol(res)
    assert any("set to 0" in n for n in res.notes)  # the holes of y carried values
    # the random/box tasks take the user's mask in measured mode too
    res2 = restore(y, "inpaint-box", mask=tmp_path / "mask.png", recipe=FAST, backbone=tiny(), return_info=True)
    assert torch.equal(res2.x, res.x)


def test_inpainting_mask_errors(tmp_path):
    y = rand((1, 8, 8))
    with pytest.raises(InvalidInputError, match="mask"):
        restore(y, "inpainting", recipe=FAST, backbone=tiny())
    with pytest.raises(InvalidInputError, match="never resized"):
        restore(y, "inpainting", mask=np.ones((4, 4), bool), recipe=FAST, backbone=tiny())
    with pytest.raises(InvalidInputError, match="no pixel"):
        read_mask(np.zeros((4, 4), bool))
    with pytest.raises(ConfigError, match="inpainting"):
        restore(y, "sr4", mask=np.ones((8, 8), bool), recipe=FAST, backbone=tiny())


def test_read_mask_thresholds_gray_images():
    u = np.array([[0, 100, 130, 255]], np.uint8)
    assert read_mask(u).tolist() == [[[0.0, 0.0, 1.0, 1.0]]]


def test_deblur_with_a_kernel_file(tmp_path):
    k = np.outer([1, 2, 3, 2, 1], [1, 2, 1]).astype(np.float64)
    np.save(tmp_path / "k.npy", k)
    Image.fromarray((k / k.max() * 255).astype(np.uint8), "L").save(tmp_path / "k.png")
    assert torch.allclose(read_kernel(tmp_path / "k.npy"), torch.from_numpy(k / k.sum()))
    assert abs(float(read_kernel(tmp_path / "k.png").sum()) - 1) < 1e-12
    import invkit

    op = invkit.operator("blur_fft", kernel=torch.from_numpy(k / k.sum()), rcond=0.03)
    y = op.A(rand((1, 1, 13, 10), seed=3).double()).float()[0]  # a blurry photo: y in the range of A
    res = restore(y, "deblur", kernel=tmp_path / "k.npy", recipe=FAST, backbone=tiny(), return_info=True)
    assert res.x.shape == (1, 13, 10) and res.consistency < tol(res)
    assert res.info["final_projection"]  # padded 13×10 -> 16×12: blur is not block-local
    assert "blur_fft" in repr(prepare(y, "deblur", kernel=k, backbone=1).task)
    with pytest.raises(InvalidInputError, match="2-D"):
        read_kernel(np.ones(3))
    with pytest.raises(InvalidInputError, match="positive sum"):
        read_kernel(-np.ones((3, 3)))
    with pytest.raises(InvalidInputError, match="kernel"):
        prepare(y, "blur", backbone=1)
    with pytest.raises(ConfigError, match="deblurring"):
        prepare(y, "sr4", kernel=k, backbone=1)


def test_denoise_and_colorization_measured():
    y = rand((1, 8, 8), seed=4)
    res = restore(y, "denoise", noise_sigma=0.1, recipe="ddnm+:generation_steps=3", backbone=tiny(), return_info=True)
    assert res.x.shape == (1, 8, 8) and "sigma_y=0.1" in res.info["recipe"]
    res = restore(y, "denoise", noise_sigma=0.1, recipe=FAST, backbone=tiny(), return_info=True)
    assert torch.equal(res.x, y) and any("noise-aware" in n for n in res.notes)
    job = prepare(y, "denoise", backbone=1)
    assert job.noise.sigma == 0.2 and any("assumed" in n for n in job.notes)
    with pytest.raises(CapabilityError, match="3-channel"):
        restore(y, "colorization", recipe=FAST, backbone=tiny())
    res = restore(y, "colorization", recipe=FAST, backbone=tiny(3), return_info=True)
    assert res.x.shape == (3, 8, 8) and res.consistency < tol(res)
    # a colour photo given for colorization is turned gray with the operator's weights
    job = prepare(rand((3, 8, 8)), "colorization", backbone=3)
    assert job.y.shape == (1, 8, 8) and any("gray" in n for n in job.notes)


def test_rgb_photo_on_a_gray_backbone_is_converted_with_a_note():
    res = restore(rand((3, 4, 4)), "sr4", recipe="input", backbone=tiny(), return_info=True)
    assert res.x.shape == (1, 16, 16) and any("luma" in n for n in res.notes)


def test_any_registered_operator():
    y = rand((1, 5, 7))
    res = restore(y, "sr4", operator="sr_avgpool", params={"scale": 3}, recipe=FAST, backbone=tiny(image_size=None, multiple=1), return_info=True)
    assert res.x.shape == (1, 15, 21) and res.consistency < tol(res)
    with pytest.raises(UnknownNameError):
        restore(y, "sr4", operator="no_such_operator", backbone=tiny())
    with pytest.raises(UnknownNameError):
        prepare(y, "sr5", backbone=1)


class _Halve(Operator):
    """A third-party operator that changes the shape but cannot say the input shape."""

    def A(self, x):
        return x[..., ::2, ::2]


class _HalvePlugin:
    @hookimpl
    def invkit_register_operators(self, register):
        register("test_halve", _Halve, description="keeps every other pixel; no input_shape")


def test_measured_mode_needs_an_operator_that_knows_its_input_shape():
    name = register_plugin(_HalvePlugin(), "restore-tests")
    try:
        with pytest.raises(CapabilityError, match="input_shape"):
            prepare(rand((1, 4, 4)), "sr4", operator="test_halve", backbone=1)
        job = prepare(rand((1, 8, 8)), "sr4", operator="test_halve", backbone=1, mode="degrade")
        assert job.y.shape == (1, 4, 4)  # in degrade mode it is simply applied to x
    finally:
        unregister_plugin(name)


def test_input_baseline_is_the_pseudo_inverse():
    y = rand((1, 6, 5))
    res = restore(y, "sr4", recipe="input", backbone=tiny(), return_info=True)
    assert torch.equal(res.x, res.pinv) and res.nfe == 0


# ---- degrade mode -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(TASKS))
def test_degrade_every_task(task):
    rgb = TASKS[task].rgb
    x = rand((3 if rgb else 1, 16, 16), seed=5)
    model = tiny(3 if rgb else 1)
    res = restore(x, task, recipe=FAST, backbone=model, degrade=True, return_info=True)
    assert res.x.shape == x.shape and torch.equal(res.x_true, x)
    assert res.psnr is not None and res.ssim is not None
    job = prepare(x, task, backbone=model, mode="degrade", seed=3, index=7)
    job2 = prepare(x, task, backbone=model, mode="degrade", seed=3, index=7)
    assert torch.equal(job.y, job2.y)  # seeded per image
    noisy = TASKS[task].default_sigma > 0
    if noisy or TASKS[task].mask is not None:
        other = prepare(x, task, backbone=model, mode="degrade", seed=3, index=8)
        assert not torch.equal(job.y, other.y)
    if not noisy:  # noiseless and BackProj: consistent with the synthesised y
        assert res.consistency < tol(res)


def test_degrade_crops_to_the_scale_and_matches_eval_seeds():
    x = rand((1, 18, 17), seed=6)
    job = prepare(x, "sr4", backbone=1, mode="degrade")
    assert job.x_shape == (1, 16, 16) and any("cropped" in n for n in job.notes)
    job = prepare(x[:, :16, :16], "inpaint-random", backbone=1, mode="degrade", seed=2, index=4)
    mask = TASKS["inpaint-random"].masks((1, 16, 16), [torch.Generator().manual_seed(image_seed(2, 4, "operator"))])
    assert torch.equal(job.mask, mask[0])


# ---- samples and batches ------------------------------------------------------------------------


def test_spread_is_zero_when_y_determines_x_and_positive_otherwise():
    y = rand((1, 8, 8), seed=7)
    res = restore(y, "denoise", noise_sigma=0.0, recipe=FAST, backbone=tiny(), samples=3, return_info=True)
    assert res.samples.shape == (3, 1, 8, 8) and res.std is not None
    assert float(res.std.abs().max()) == 0.0
    res = restore(y[:, :4, :4], "sr4", recipe=FAST, backbone=tiny(), samples=3, return_info=True)
    assert float(res.std.min()) >= 0 and float(res.std.mean()) > 1e-3
    assert torch.allclose(res.x, res.samples.mean(0))
    assert res.consistency < tol(res)  # every sample is consistent, hence the mean too


def test_sample_seeds():
    assert sample_seed(3, 5, 0) == image_seed(3, 5, "recipe")
    seeds = {sample_seed(3, 5, k) for k in range(4)} | {sample_seed(3, 6, k) for k in range(4)}
    assert len(seeds) == 8


@pytest.mark.parametrize("task", ["inpaint-random", "sr4"])
def test_batch_equals_one_by_one_bit_for_bit(task):
    model = tiny()
    jobs = [prepare(rand((1, 16, 12), seed=10 + i), task, backbone=model, mode="degrade", seed=1, index=i) for i in range(3)]
    batched = restore_batch(jobs, model, FAST, samples=2, keep_samples=True, tile=8)
    for job, b in zip(jobs, batched):
        (one,) = restore_batch([job], model, FAST, samples=2, keep_samples=True, tile=8)
        assert torch.equal(one.samples, b.samples)
        assert one.consistency == b.consistency
    assert not torch.equal(batched[0].samples, batched[1].samples)


def test_batch_errors():
    model = tiny()
    a = prepare(rand((1, 4, 4)), "sr4", backbone=model)
    b = prepare(rand((1, 4, 5)), "sr4", backbone=model)
    assert batch_key(a) != batch_key(b)
    with pytest.raises(InvalidInputError, match="batch_key"):
        restore_batch([a, b], model, FAST)
    with pytest.raises(ConfigError, match="samples"):
        restore_batch([a], model, FAST, samples=0)
    with pytest.raises(ConfigError):
        restore_batch([a], model, "ssd:no_such_knob=1")
    assert restore_batch([], model) == []


# ---- sizes --------------------------------------------------------------------------------------


def test_size_multiple():
    import invkit

    assert size_multiple(invkit.backbone("fashion32")) == 8
    assert size_multiple(tiny(image_size=None, multiple=None)) == 1
    assert size_multiple(tiny(image_size=16, multiple=None)) == 16  # fixed-size backbone
    assert size_multiple(tiny(multiple=4)) == 4
    from invkit_adm.model import ADMUNet

    net = ADMUNet(image_size=32, num_channels=32, num_res_blocks=1, channel_mult=(1, 1, 2), attention_resolutions="8", num_heads=1)
    assert size_multiple(NetBackbone(net, NoiseSchedule.linear(1000), image_size=32)) == 4


def test_padding_and_reflect():
    assert padding((52, 36), 4, 8) == (56, 40)
    assert padding((32, 24), 4, 8) == (32, 24)
    assert padding((15, 9), 3, 8) == (24, 24)
    t = torch.arange(3.0).reshape(1, 1, 3)
    assert reflect_pad(t, (1, 8)).tolist() == [[[0, 1, 2, 1, 0, 1, 2, 1]]]
    assert reflect_pad(torch.ones(1, 1, 1), (3, 2)).shape == (1, 3, 2)


def test_fixed_size_backbone_refuses_other_sizes_for_untileable_operators():
    with pytest.raises(CapabilityError, match="only"):
        restore(rand((1, 20, 20)), "deblur", recipe=FAST, backbone=tiny(image_size=16, multiple=None))


def test_public_restore_with_fashion32():
    y = rand((1, 8, 6), seed=8) * 0.5
    x = restore(y, "sr4", recipe="ssd-30:inversion_steps=2,generation_steps=3")
    assert x.shape == (1, 32, 24) and x.dtype == torch.float32


def test_invkit_restore_is_the_function_whatever_is_imported():
    import invkit
    import invkit.restoration as package
    from invkit.restoration.files import restore_files

    assert invkit.restore is package.restore and invkit.restore_files is restore_files
    x = invkit.restore(rand((1, 2, 2)), "sr4", recipe="input", backbone=tiny())
    assert x.shape == (1, 8, 8)


def test_degrade_reproduces_invkit_eval_per_image():
    from invkit.evaluation import EvalConfig, evaluate

    model = tiny(image_size=None, multiple=1)
    x = torch.stack([rand((1, 16, 16), seed=20 + i) for i in range(3)])
    for task in ("sr4", "inpaint-random"):
        ev = evaluate(EvalConfig(task=task, methods=(FAST,), n=3, seed=5, batch_size=2), model=model, images=x)
        jobs = [prepare(x[i], task, backbone=model, mode="degrade", seed=5, index=i) for i in range(3)]
        for row, res in zip(ev.rows, restore_batch(jobs, model, FAST)):
            assert (row["index"], row["psnr"], row["ssim"]) == (res.index, res.psnr, res.ssim)


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "data"


def test_shipped_examples_restore_offline():
    model = tiny(image_size=None, multiple=1)
    sizes = {p.name: restore(p, "sr4", recipe="input", backbone=model).shape for p in sorted((EXAMPLES / "lowres").glob("*.png"))}
    assert sizes and all(s[-2:] == (32, 32) or s[-2:] == (32, 24) for s in sizes.values())
    assert any(s[-2:] == (32, 24) for s in sizes.values())  # a non-square one
    holes = sorted((EXAMPLES / "holes").glob("*.png"))
    assert holes and all((EXAMPLES / "holes" / "masks" / p.name).is_file() for p in holes)
    for p in holes:
        res = restore(p, "inpainting", mask=EXAMPLES / "holes" / "masks" / p.name, recipe="input", backbone=model, return_info=True)
        assert res.x.shape == (1, 32, 32) and res.consistency == 0
    for p in sorted((EXAMPLES / "blurry").glob("*.png")):
        res = restore(p, "deblur", kernel=EXAMPLES / "blurry" / "kernel.npy", recipe="input", backbone=model, return_info=True)
        assert res.x.shape == (1, 32, 32)
    assert len(list((EXAMPLES / "noisy").glob("*.png"))) >= 2 and len(list((EXAMPLES / "clean").glob("*.png"))) >= 2
    assert sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file()) < 100_000


def test_plan_job_decides_before_running():
    from invkit.restoration import plan_job

    model = tiny(image_size=8, multiple=4)
    job = prepare(rand((1, 13, 9)), "sr4", backbone=model)
    plan = plan_job(job, model)
    assert plan.padded == (52, 36) and plan.tile == 32 and plan.overlap == 8 and plan.surrogate
    assert [(t.top, t.left) for t in plan.tiles] == [(0, 0), (0, 4), (20, 0), (20, 4)]
    assert any("tiles" in n for n in plan.notes)
    assert plan_job(job, model, tile="off").tiles == ()
    with pytest.raises(CapabilityError):
        plan_job(prepare(rand((1, 40, 40)), "deblur", backbone=model), model, tile=8)


def test_no_denoise_warning_without_noise():
    res = restore(rand((1, 4, 4)), "denoise", noise_sigma=0.0, recipe=FAST, backbone=tiny(), return_info=True)
    assert not any("noise-aware" in n for n in res.notes)
