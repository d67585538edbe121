"""The public-checkpoint architectures: parameter names, shapes and order equal the originals' at every registry
config (lists in tests/golden/public_architectures.json, taken from guided-diffusion's ``UNetModel`` and score_sde's
``NCSNpp`` at those configs), and on tiny configs the forward pass equals a functional implementation of the papers'
equations written here from the state dict alone."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from medrecon.priors.architectures import adm, architecture, fir, ncsnpp
from medrecon.priors.public import public_checkpoints

GOLDEN = Path(__file__).parent / "golden" / "public_architectures.json"


def _randomise(net: torch.nn.Module, seed: int, std: float = 0.15) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(v.shape, generator=g) * std for k, v in net.state_dict().items()}
    net.load_state_dict(sd)
    return sd


@pytest.mark.parametrize("name", sorted(json.loads(GOLDEN.read_text())["entries"]))
def test_names_shapes_and_order_match_the_originals_at_the_registry_configs(name):
    golden = json.loads(GOLDEN.read_text())["entries"][name]
    entry = public_checkpoints()[name]
    spec = architecture(entry["architecture"]["name"])
    with torch.device("meta"):
        net = spec.build(entry["architecture"]["config"])
    ours = [f"{k} {','.join(map(str, v.shape))}" for k, v in net.state_dict().items()]
    original = [line for line in golden["state_dict"] if not line.startswith("sigmas ")]  # rebuilt from the config
    assert ours == original
    assert sum(p.numel() for p in net.parameters()) == golden["parameters"]
    assert sum(p.requires_grad for p in net.parameters()) == golden["trainable"]  # the EMA list's length


def test_every_registry_entry_has_a_golden_list():
    assert set(public_checkpoints()) == set(json.loads(GOLDEN.read_text())["entries"])


# ---- ADM: the equations of Dhariwal & Nichol (2021), functionally ----------------------------------------------

def _gn(x, sd, p, groups, eps):
    return F.group_norm(x, groups, sd[p + ".weight"], sd[p + ".bias"], eps)


def _adm_res(sd, p, x, emb, up=False, down=False):
    h = F.silu(_gn(x, sd, p + ".in_layers.0", 32, 1e-5))
    if up:
        h, x = F.interpolate(h, scale_factor=2.0), F.interpolate(x, scale_factor=2.0)
    if down:
        h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
    h = F.conv2d(h, sd[p + ".in_layers.2.weight"], sd[p + ".in_layers.2.bias"], padding=1)
    e = F.linear(F.silu(emb), sd[p + ".emb_layers.1.weight"], sd[p + ".emb_layers.1.bias"])[..., None, None]
    scale, shift = e.chunk(2, dim=1)  # FiLM: GN(h) (1 + scale) + shift
    h = F.silu(_gn(h, sd, p + ".out_layers.0", 32, 1e-5) * (1 + scale) + shift)
    h = F.conv2d(h, sd[p + ".out_layers.3.weight"], sd[p + ".out_layers.3.bias"], padding=1)
    if p + ".skip_connection.weight" in sd:
        x = F.conv2d(x, sd[p + ".skip_connection.weight"], sd[p + ".skip_connection.bias"])
    return x + h


def _adm_attn(sd, p, x, head_ch):
    b, c, hh, ww = x.shape
    flat = x.reshape(b, c, -1)
    qkv = F.conv1d(_gn(flat, sd, p + ".norm", 32, 1e-5), sd[p + ".qkv.weight"], sd[p + ".qkv.bias"])
    heads = c // head_ch
    out = []
    for i in range(heads):  # legacy order: each head's block of 3 * head_ch channels is (q, k, v)
        q, k, v = qkv[:, 3 * head_ch * i: 3 * head_ch * (i + 1)].split(head_ch, dim=1)
        w = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(head_ch), dim=-1)  # (b, t, s)
        out.append(v @ w.transpose(1, 2))
    h = F.conv1d(torch.cat(out, dim=1), sd[p + ".proj_out.weight"], sd[p + ".proj_out.bias"])
    return (flat + h).reshape(b, c, hh, ww)


def _adm_reference(sd, t, x, mc, head_ch):
    """Tiny ADM with channel_mult (1, 2), one res block, attention at 8x8 (input_blocks.3, output_blocks.0-1),
    resblock up/down, scale-shift norm, learned sigma."""
    half = mc // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    temb = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
    emb = F.linear(F.silu(F.linear(temb, sd["time_embed.0.weight"], sd["time_embed.0.bias"])),
                   sd["time_embed.2.weight"], sd["time_embed.2.bias"])
    hs = [F.conv2d(x, sd["input_blocks.0.0.weight"], sd["input_blocks.0.0.bias"], padding=1)]
    hs.append(_adm_res(sd, "input_blocks.1.0", hs[-1], emb))
    hs.append(_adm_res(sd, "input_blocks.2.0", hs[-1], emb, down=True))
    hs.append(_adm_attn(sd, "input_blocks.3.1", _adm_res(sd, "input_blocks.3.0", hs[-1], emb), head_ch))
    h = _adm_res(sd, "middle_block.0", hs[-1], emb)
    h = _adm_res(sd, "middle_block.2", _adm_attn(sd, "middle_block.1", h, head_ch), emb)
    for i in range(4):
        h = _adm_res(sd, f"output_blocks.{i}.0", torch.cat([h, hs.pop()], dim=1), emb)
        if i < 2:
            h = _adm_attn(sd, f"output_blocks.{i}.1", h, head_ch)
        if i == 1:
            h = _adm_res(sd, "output_blocks.1.2", h, emb, up=True)
    h = F.silu(_gn(h, sd, "out.0", 32, 1e-5))
    return F.conv2d(h, sd["out.2.weight"], sd["out.2.bias"], padding=1)


def test_adm_forward_matches_the_equations_on_a_tiny_config():
    cfg = {"image_size": 16, "in_channels": 2, "model_channels": 32, "channel_mult": [1, 2],
           "attention_resolutions": [8], "num_head_channels": 16}
    net = adm.build(cfg).eval()
    sd = _randomise(net, 0)
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 2, 16, 16, generator=g), torch.tensor([3.0, 911.5])
    with torch.no_grad():
        out = net(x, t)
        want = _adm_reference(sd, t, x, 32, 16)
    assert out.shape == (2, 4, 16, 16)  # learn_sigma: eps and the variance interpolation
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)


# ---- NCSN++: the equations of Song et al. (2021), functionally ---------------------------------------------------

K = torch.tensor([1.0, 3.0, 3.0, 1.0])
K2 = torch.outer(K, K) / 64.0  # the normalised [1, 3, 3, 1] FIR filter


def _fir_down(x):  # filter, then keep every other sample (phase chosen so a constant stays constant)
    c = x.shape[1]
    return F.conv2d(x, K2.expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


def _fir_up(x):  # zero insertion x2, then the filter with gain 4 (a transposed conv)
    c = x.shape[1]
    return F.conv_transpose2d(x, 4 * K2.expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


def _ncsn_res(sd, p, x, temb, up=False, down=False):
    h = F.silu(_gn(x, sd, p + ".GroupNorm_0", min(x.shape[1] // 4, 32), 1e-6))
    if up:
        h, x = _fir_up(h), _fir_up(x)
    if down:
        h, x = _fir_down(h), _fir_down(x)
    h = F.conv2d(h, sd[p + ".Conv_0.weight"], sd[p + ".Conv_0.bias"], padding=1)
    h = h + F.linear(F.silu(temb), sd[p + ".Dense_0.weight"], sd[p + ".Dense_0.bias"])[..., None, None]
    h = F.silu(_gn(h, sd, p + ".GroupNorm_1", min(h.shape[1] // 4, 32), 1e-6))
    h = F.conv2d(h, sd[p + ".Conv_1.weight"], sd[p + ".Conv_1.bias"], padding=1)
    if p + ".Conv_2.weight" in sd:
        x = F.conv2d(x, sd[p + ".Conv_2.weight"], sd[p + ".Conv_2.bias"])
    return (x + h) / math.sqrt(2)  # skip_rescale


def _ncsn_attn(sd, p, x):
    b, c, hh, ww = x.shape
    n = _gn(x, sd, p + ".GroupNorm_0", min(c // 4, 32), 1e-6).reshape(b, c, -1)
    q, k, v = ((sd[f"{p}.NIN_{i}.W"].T @ n) + sd[f"{p}.NIN_{i}.b"][:, None] for i in range(3))
    w = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)
    h = sd[p + ".NIN_3.W"].T @ (v @ w.transpose(1, 2)) + sd[p + ".NIN_3.b"][:, None]
    return (x + h.reshape(b, c, hh, ww)) / math.sqrt(2)


def _ncsn_reference(sd, x, sigma):
    """Tiny NCSN++ as score-MRI / DiffusionMBIR configure it (BigGAN blocks, FIR, residual input pyramid,
    Fourier features, skip rescale, scale by sigma), ch_mult (1, 2), one res block, attention at 8x8."""
    m = lambda i, s: sd[f"all_modules.{i}.{s}"]  # noqa: E731
    proj = torch.log(sigma)[:, None] * m(0, "W")[None] * 2 * math.pi
    temb = torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)
    temb = F.linear(F.silu(F.linear(temb, m(1, "weight"), m(1, "bias"))), m(2, "weight"), m(2, "bias"))
    x = 2 * x - 1  # data.centered = False
    hs = [F.conv2d(x, m(3, "weight"), m(3, "bias"), padding=1)]
    hs.append(_ncsn_res(sd, "all_modules.4", hs[-1], temb))
    h = _ncsn_res(sd, "all_modules.5", hs[-1], temb, down=True)
    pyramid = F.conv2d(F.conv2d(x, K2.expand(x.shape[1], 1, 4, 4), padding=2, groups=x.shape[1]),
                       m(6, "Conv2d_0.weight"), stride=2) + m(6, "Conv2d_0.bias")[:, None, None]
    hs.append((pyramid + h) / math.sqrt(2))
    hs.append(_ncsn_attn(sd, "all_modules.8", _ncsn_res(sd, "all_modules.7", hs[-1], temb)))
    h = _ncsn_res(sd, "all_modules.9", hs[-1], temb)
    h = _ncsn_res(sd, "all_modules.11", _ncsn_attn(sd, "all_modules.10", h), temb)
    h = _ncsn_res(sd, "all_modules.12", torch.cat([h, hs.pop()], 1), temb)
    h = _ncsn_res(sd, "all_modules.13", torch.cat([h, hs.pop()], 1), temb)
    h = _ncsn_attn(sd, "all_modules.14", h)
    h = _ncsn_res(sd, "all_modules.15", h, temb, up=True)
    h = _ncsn_res(sd, "all_modules.16", torch.cat([h, hs.pop()], 1), temb)
    h = _ncsn_res(sd, "all_modules.17", torch.cat([h, hs.pop()], 1), temb)
    h = F.silu(_gn(h, sd, "all_modules.18", min(h.shape[1] // 4, 32), 1e-6))
    h = F.conv2d(h, m(19, "weight"), m(19, "bias"), padding=1)
    return h / sigma[:, None, None, None]


def test_ncsnpp_forward_matches_the_equations_on_a_tiny_config():
    cfg = {"image_size": 16, "num_channels": 1, "nf": 16, "ch_mult": [1, 2], "num_res_blocks": 1,
           "attn_resolutions": [8]}
    net = ncsnpp.build(cfg).eval()
    sd = _randomise(net, 2)
    assert len(net.all_modules) == 20
    g = torch.Generator().manual_seed(3)
    x, sigma = torch.rand(2, 1, 16, 16, generator=g), torch.tensor([0.02, 50.0])
    with torch.no_grad():
        torch.testing.assert_close(net(x, sigma), _ncsn_reference(sd, x, sigma), rtol=1e-4, atol=1e-4)


def test_fir_resampling_keeps_constants_and_is_the_transpose_pair():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    torch.testing.assert_close(fir.downsample_2d(x, [1, 3, 3, 1]), _fir_down(x))
    torch.testing.assert_close(fir.upsample_2d(y, [1, 3, 3, 1]), _fir_up(y))
    inner = (fir.downsample_2d(x, [1, 3, 3, 1]) * y).sum()  # <D x, y> = <x, U y> / 4 (U has gain 4)
    torch.testing.assert_close(inner, (x * fir.upsample_2d(y, [1, 3, 3, 1])).sum() / 4)
    ones = torch.ones(1, 1, 8, 8)
    assert torch.allclose(fir.downsample_2d(ones, [1, 3, 3, 1])[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def test_positional_embedding_uses_the_sigma_table_index():
    cfg = {"image_size": 16, "num_channels": 1, "nf": 16, "ch_mult": [1, 2], "num_res_blocks": 1,
           "attn_resolutions": [], "embedding_type": "positional", "num_scales": 11, "sigma_min": 0.01,
           "sigma_max": 10.0}
    net = ncsnpp.build(cfg)
    sigmas = net.sigmas
    assert torch.allclose(sigmas[[0, 5, 10]], torch.tensor([10.0, 10**-0.5, 0.01]))
    idx = net.time_condition(torch.tensor([10.0, 0.3, 0.0105]))
    assert idx.tolist() == [0, 5, 10]  # nearest table entry in log sigma


def test_unknown_config_keys_and_choices_are_refused():
    with pytest.raises(ValueError, match="unknown guided_diffusion.UNetModel config keys"):
        adm.build({"num_channels": 128})
    with pytest.raises(ValueError, match="resblock_type"):
        ncsnpp.build({"resblock_type": "resnet"})
    with pytest.raises(KeyError, match="unknown architecture"):
        architecture("unet")
