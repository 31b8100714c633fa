"""Attention injection (``invkit.injection``): the nets' hook point, the per-run store, the recipe
wiring and the presets."""

from __future__ import annotations

import math

import attrs
import pytest
import torch

import invkit
from invkit import DA, BackProj, Recipe
from invkit.errors import CapabilityError, ConfigError
from invkit.injection import AttentionInjection, InjectionSession, attention_layers
from invkit.models import NetBackbone
from invkit.schedule import NoiseSchedule, timesteps
from invkit_adm.model import ADMUNet, qkv_attention
from invkit_ddpm.model import DDPMUNet

from .models import GaussianPrior

DDPM_SMALL = dict(ch=32, out_ch=1, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=32, in_channels=1)
ADM_SMALL = dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions="16,8",
                 num_head_channels=16, learn_sigma=True, resblock_updown=True)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ddpm() -> NetBackbone:
    torch.manual_seed(0)
    net = DDPMUNet(**DDPM_SMALL).eval()
    # A fresh net's proj_out is not zero-initialised here, so attention changes the output.
    return NetBackbone(net, NoiseSchedule.linear(), image_size=32, channels=1)


def _adm() -> NetBackbone:
    torch.manual_seed(1)
    return NetBackbone(ADMUNet(**ADM_SMALL).eval(), NoiseSchedule.linear(), image_size=16, channels=3)


NETS = {"ddpm": (_ddpm, (1, 32, 32)), "adm": (_adm, (3, 16, 16))}


def _x(shape, seed: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


# -- the backbones' hook point ---------------------------------------------------------------------
def test_layer_names_of_the_published_nets_match_the_reference():
    """ImageNet 256: 9 decoder blocks (output_blocks 0–8); CelebA-HQ: 3 (output_0..2_attn)."""
    adm = invkit.backbone("adm-imagenet256-uncond", device="meta")
    dec = [n for n in attention_layers(adm) if n.startswith("output_")]
    assert dec == [f"output_{k}_attn" for k in range(9)]
    celeba = attention_layers(invkit.backbone("ddpm-celebahq256", device="meta"))
    assert [n for n in celeba if n.startswith("output_")] == ["output_0_attn", "output_1_attn", "output_2_attn"]
    f32 = attention_layers(invkit.backbone("fashion32"))
    assert list(f32) == ["input_0_attn", "middle_attn", "output_0_attn", "output_1_attn"]


def test_ddpm_attention_without_hook_is_the_unhooked_formula_bit_for_bit():
    net = _ddpm().net
    blk = net.attention_layers()["output_0_attn"]
    x = _x((blk.q.in_channels, 8, 8), 3)
    b, c, hh, ww = x.shape
    h = blk.norm(x)
    q, k, v = (m(h).reshape(b, c, hh * ww) for m in (blk.q, blk.k, blk.v))
    w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (c**-0.5), dim=2)
    want = x + blk.proj_out(torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww))
    with torch.no_grad():
        assert torch.equal(blk(x), want.detach())
        blk.attn_probs_hook = lambda p: p
        try:
            assert torch.equal(blk(x), want.detach())
        finally:
            blk.attn_probs_hook = None


@pytest.mark.parametrize("legacy", [True, False])
def test_adm_attention_without_hook_is_the_unhooked_formula_bit_for_bit(legacy):
    qkv = _x((3 * 2 * 16, 64), 4)
    b, width, length = qkv.shape
    c = width // 6
    if legacy:
        q, k, v = qkv.reshape(b * 2, 3 * c, length).split(c, dim=1)
    else:
        q, k, v = (z.reshape(b * 2, c, length) for z in qkv.chunk(3, dim=1))
    s = 1.0 / math.sqrt(math.sqrt(c))
    w = torch.softmax(torch.einsum("bct,bcs->bts", q * s, k * s), dim=-1)
    want = torch.einsum("bts,bcs->bct", w, v).reshape(b, 2 * c, length)
    assert torch.equal(qkv_attention(qkv, 2, legacy=legacy), want)
    swapped = torch.full_like(w, 1.0 / length)
    got = qkv_attention(qkv, 2, legacy=legacy, probs_hook=lambda p: swapped)
    torch.testing.assert_close(got, v.mean(-1, keepdim=True).expand_as(v).reshape(b, 2 * c, length))


@pytest.mark.parametrize("kind", list(NETS))
def test_replaying_maps_recorded_at_the_same_x_changes_nothing(kind):
    make, shape = NETS[kind]
    model = make()
    x = _x(shape, 5)
    with torch.no_grad():
        plain = model(x, 300)
        with InjectionSession(attention_layers(model), frozenset({300})) as s:
            with s.call("inversion", 300):
                rec = model(x, 300)
            with s.call("generation", 300):
                rep = model(x, 300)
            assert len(s.maps) == len(attention_layers(model))
    assert torch.equal(rec, plain) and torch.equal(rep, plain)


@pytest.mark.parametrize("kind", list(NETS))
def test_replay_really_replaces_the_maps_only_at_matching_t(kind):
    make, shape = NETS[kind]
    model = make()
    x1, x2 = _x(shape, 6), _x(shape, 7)
    with torch.no_grad():
        plain = model(x2, 300)
        s = InjectionSession(attention_layers(model), frozenset({300}))
        with s.call("inversion", 300):
            model(x1, 300)
        with s.call("generation", 299):  # not an injection timestep: untouched
            assert torch.equal(model(x2, 299), model(x2, 299))
        with s.call("generation", 300):
            injected = model(x2, 300)
        s.close()
        assert all(b.attn_probs_hook is None for b in attention_layers(model).values())
        assert torch.equal(model(x2, 300), plain)
    assert (injected - plain).abs().max() > 1e-4


# -- the recipe ------------------------------------------------------------------------------------
class SpySession(InjectionSession):
    """Logs every record and replay the hooks perform, and what was replayed."""

    log: list  # set by SpyInjection.open

    def _record(self, t, name):  # noqa: ANN001
        inner = super()._record(t, name)

        def hook(p):  # noqa: ANN001
            self.log.append(("record", t, name))
            return inner(p)

        return hook

    def _replay(self, t, name):  # noqa: ANN001
        inner = super()._replay(t, name)

        def hook(p):  # noqa: ANN001
            out = inner(p)
            self.log.append(("replay", t, name, out is self.maps.get((t, name))))
            return out

        return hook


@attrs.frozen
class SpyInjection(AttentionInjection):
    log: list = attrs.field(factory=list, eq=False)

    def open(self, model, inv):  # noqa: ANN001
        base = super().open(model, inv)
        spy = SpySession(base.blocks, base.timesteps)
        spy.log = self.log
        return spy


def _ssd30(**kw) -> Recipe:
    return Recipe(inverter=DA(eta=0.4), guidance=BackProj(), t0=550, inversion_steps=5, generation_steps=25, **kw)


def _sr_problem():
    op = invkit.operator("sr_bicubic", scale=4)
    return op, op.A(_x((1, 32, 32), 8).clamp(-1, 1))


def test_maps_are_recorded_and_replayed_at_exactly_the_chosen_timesteps_and_layers():
    model = _ddpm()
    op, y = _sr_problem()
    inj = SpyInjection(steps=(2, 3), layers=("output_1_attn", "output_0_attn"))
    seen = []
    res = _ssd30(injection=inj).run(model, y, op, generator=torch.Generator().manual_seed(0), return_info=True,
                                    callback=lambda s: seen.append((s.phase, s.t)))
    assert res.inversion_timesteps == [0, 137, 274, 412, 549]
    layers = {"output_0_attn", "output_1_attn"}
    recs = [e for e in inj.log if e[0] == "record"]
    reps = [e for e in inj.log if e[0] == "replay"]
    assert sorted((t, n) for _, t, n in recs) == sorted((t, n) for t in (274, 412) for n in layers)
    assert sorted((t, n) for _, t, n, _ in reps) == sorted((t, n) for t in (274, 412) for n in layers)
    assert all(same for *_, same in reps)  # the stored tensor itself, not a recomputed map
    # every record happens before every replay (inversion first), replays in descending t
    assert inj.log.index(recs[-1]) < inj.log.index(reps[0])
    assert [t for _, t, *_ in reps][::2] == [412, 274]
    assert res.nfe == 29 and all(b.attn_probs_hook is None for b in attention_layers(model).values())


def test_injection_changes_the_ssd_output_and_stays_consistent():
    model = _ddpm()
    op, y = _sr_problem()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = _ssd30().run(model, y, op, generator=g())
    inj = _ssd30(injection=AttentionInjection(steps=(2, 3))).run(model, y, op, generator=g())
    assert (inj - plain).abs().max() > 1e-4
    assert float((op.A(inj) - y).abs().max()) < 1e-4


def test_no_op_injection_reproduces_ssd_bit_for_bit():
    model = _ddpm()
    op, y = _sr_problem()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = _ssd30().run(model, y, op, generator=g())
    none = _ssd30(injection=AttentionInjection(steps=())).run(model, y, op, generator=g())
    assert torch.equal(plain, none)


def test_a_net_without_the_capability_raises_before_the_first_call():
    prior = GaussianPrior(channels=1)
    op = invkit.operator("denoise")
    y = _x((1, 8, 8), 9)
    with pytest.raises(CapabilityError, match="attention_layers"):
        _ssd30(injection=AttentionInjection(steps=(2,))).run(prior, y, op)
    assert prior.calls == 0


def test_an_unknown_layer_raises_before_the_first_call():
    model = _ddpm()
    calls = []
    model.register_forward_pre_hook(lambda *a: calls.append(1))
    op, y = _sr_problem()
    with pytest.raises(CapabilityError, match="output_7_attn"):
        _ssd30(injection=AttentionInjection(steps=(2,), layers=("output_7_attn",))).run(model, y, op)
    assert calls == []


@pytest.mark.parametrize(
    "kw, match",
    [(dict(steps=(-1,)), "indices"), (dict(steps=(1.5,)), "indices"), (dict(steps=(1,), layers=()), "layers"),
     (dict(steps=(1,), layers="output_0_attn"), "layers")],
)
def test_bad_parts_fail_where_they_are_built(kw, match):
    with pytest.raises(ConfigError, match=match):
        AttentionInjection(**kw)


def test_an_index_past_the_last_inversion_call_fails_at_construction():
    with pytest.raises(ConfigError, match="<= 3"):
        _ssd30(injection=AttentionInjection(steps=(4,)))


def test_a_recipe_without_inverter_cannot_inject():
    model = _ddpm()
    op, y = _sr_problem()
    r = Recipe(guidance=BackProj(), generation_steps=5, injection=AttentionInjection(steps=(1,)))
    with pytest.raises(ConfigError, match="inverter"):
        r.run(model, y, op)


def test_alignment_matches_the_reference_lists():
    """Only t0 = 750, F = 15 changes SSD's uniform generation list (spec ssd.md §3.4)."""
    for t0, F, B, idx in [(550, 5, 25, (2, 3)), (550, 15, 85, range(6, 14)), (750, 5, 25, (2, 3))]:
        r = Recipe(inverter=DA(), guidance=BackProj(), t0=t0, inversion_steps=F, generation_steps=B,
                   injection=AttentionInjection(steps=idx))
        assert r.timesteps()[1] == timesteps(B, t0)
    r = invkit.recipe("ssd-inject-100", task="colorization")
    inv, gen = r.timesteps()
    assert [inv[k] for k in range(6, 14)] == [321, 374, 428, 482, 535, 588, 642, 696]
    changed = [(a, b) for a, b in zip(timesteps(85, 750), gen) if a != b]
    assert changed == [(375, 374), (589, 588), (704, 696)]
    assert set(inv[6:14]) <= set(gen) and all(a < b for a, b in zip(gen, gen[1:]))


def test_presets_carry_the_reference_choices():
    r30 = invkit.recipe("ssd-inject-30", task="sr")
    assert r30.injection == AttentionInjection(steps=(2, 3)) and r30.injection.layers == "decoder"
    assert (r30.inversion_steps, r30.generation_steps, r30.t0, r30.inverter) == (5, 25, 550, DA(eta=0.4))
    inv, _ = r30.timesteps()
    assert [inv[k] for k in r30.injection.steps] == [274, 412]
    r100 = invkit.recipe("ssd-inject-100", task="inpainting")
    assert r100.injection.steps == tuple(range(6, 14))
    inv, _ = r100.timesteps()
    assert [inv[k] for k in r100.injection.steps] == [235, 274, 314, 353, 392, 431, 471, 510]
    col = invkit.recipe("ssd-inject-30", task="colorization")
    assert (col.t0, col.inverter) == (750, DA(eta=0.8))
    assert [col.timesteps()[0][k] for k in (2, 3)] == [374, 562]


def test_the_family_rule_gives_the_reference_choices_and_any_budget():
    # indices ⌈0.4 (F − 1)⌉ … F − 2: the two published choices, and a valid list for every F
    for F, preset in ((5, "ssd-inject-30"), (15, "ssd-inject-100")):
        fam = invkit.recipe("ssd-inject", task="sr", inversion_steps=F, generation_steps=85)
        assert fam.injection == invkit.recipe(preset, task="sr").injection
    for F in range(2, 40):
        steps = invkit.recipe("ssd-inject", task="sr", inversion_steps=F, generation_steps=2 * F).injection.steps
        assert list(steps) == list(range(math.ceil(0.4 * (F - 1)), F - 1)) if F > 2 else steps == ()
        assert all(1 <= k <= F - 2 for k in steps)
    custom = AttentionInjection(steps=(1,))
    assert invkit.recipe("ssd-inject", task="sr", inversion_steps=5, generation_steps=5, injection=custom).injection == custom
    with pytest.raises(ConfigError, match="needs explicit inversion_steps=N and generation_steps=N"):
        invkit.recipe("ssd-inject", task="sr")
