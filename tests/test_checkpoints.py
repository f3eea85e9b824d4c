"""Checkpoint loading: the real KAIR DnCNN-25 file (published BSD68 figure), scico msgpack, round trips, bad files."""

import os

import numpy as np
import pytest
import torch

from unblur.errors import InputError
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.models import DRUNet, KairDnCNN, ScicoDnCNN, UnblurDenoiser, load_kernel_prior, load_prior, save_unblur
from unblur.models.adm_unet import FFHQ_CONFIG, ADMUNet
from unblur.models.checkpoints import WEIGHTS_DIR
from unblur.diffusion import EpsilonDenoiser


def bsd68_dncnn_psnr(model, files, sigma8=25):
    """KAIR's main_test_dncnn protocol: np.random.seed(0) before each image, noise N(0, sigma/255) added
    to the [0,1] image (no clipping), output clipped and rounded to uint8, PSNR on the whole image."""
    vals = []
    model = model.to(memory_format=torch.channels_last)  # the same numbers, faster convolutions on a CPU
    for f in files:
        x = read_image(f)
        np.random.seed(0)
        y = (x + np.random.normal(0, sigma8 / 255, x.shape)).astype(np.float32)
        with torch.inference_mode():
            yt = torch.from_numpy(y)[None, None].contiguous(memory_format=torch.channels_last)
            e = model(yt, sigma8 / 255)[0, 0].numpy()
        vals.append(psnr(np.round(np.clip(e, 0, 1) * 255) / 255, x))
    return float(np.mean(vals))


def test_kair_dncnn25_bsd68_published_psnr(shared_data):
    path = shared_data("weights/kair_dncnn/dncnn_25.pth")
    files = sorted(shared_data("test/bsd68_gray").glob("*.png"))
    assert len(files) == 68
    m = load_prior(path)
    assert isinstance(m, KairDnCNN) and not m.training
    n = torch.get_num_threads()  # other test modules pin one thread at import; this one is 68 full images
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        assert abs(bsd68_dncnn_psnr(m, files) - 29.23) <= 0.02
    finally:
        torch.set_num_threads(n)


# 17N gains less on natural images than the others (measured here: +2.4 dB at 0.06 on this crop, +4.7 for 6N at
# 0.1); for the N models the gain is also largest when the true sigma is passed (conditioning is used).
@pytest.mark.parametrize("name,sigma,min_gain", [("dncnn6L", 0.06, 3), ("dncnn17M", 0.10, 3), ("dncnn17H", 0.20, 3),
                                                 ("dncnn6N", 0.10, 3), ("dncnn17N", 0.06, 1.5)])
def test_scico_flax_dncnn_denoises(shared_data, name, sigma, min_gain):
    path = shared_data(f"weights/scico_flax_dncnn/{name}.mpk")
    x = read_image(sorted(shared_data("test/bsd68_gray").glob("*.png"))[0])[:160, :160]
    m = load_prior(path)
    assert isinstance(m, ScicoDnCNN) and m.noise_input == name.endswith("N")
    xt = torch.from_numpy(np.ascontiguousarray(x))[None, None]
    y = xt + sigma * torch.randn(xt.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        e = m(y, sigma)
    gain = psnr(e[0, 0].numpy(), x) - psnr(y[0, 0].numpy(), x)
    assert gain > min_gain, gain
    if m.noise_input:  # the noise-level channel matters: the wrong level denoises worse
        with torch.no_grad():
            wrong = m(y, sigma / 4)
        assert psnr(wrong[0, 0].numpy(), x) < psnr(e[0, 0].numpy(), x) - 0.5


def test_kair_drunet_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    ref = DRUNet(1, nc=(16, 32, 32, 64), nb=2)
    sd = ref.net.state_dict()  # KAIR keys: m_head.weight, m_down1.0.res.0.weight, ...
    assert "m_head.weight" in sd and "m_down1.2.weight" in sd and "m_up3.0.weight" in sd and "m_tail.weight" in sd
    assert not any(k.endswith("bias") for k in sd)
    torch.save(sd, tmp_path / "drunet.pth")
    m = load_prior(tmp_path / "drunet.pth")
    x = torch.rand(1, 1, 24, 24)
    assert torch.equal(m(x, 0.1), ref.eval()(x, 0.1))


def test_kair_drunet_full_size_keys():
    """The published drunet_gray.pth layout: 64/128/256/512 channels, 4 blocks, input 1+1 channels."""
    sd = DRUNet(1).net.state_dict()
    assert sd["m_head.weight"].shape == (64, 2, 3, 3)
    assert sd["m_down1.4.weight"].shape == (128, 64, 2, 2)
    assert sd["m_body.3.res.2.weight"].shape == (512, 512, 3, 3)
    assert sd["m_up3.0.weight"].shape == (512, 256, 2, 2)  # ConvTranspose: (in, out, kh, kw)
    assert sd["m_tail.weight"].shape == (1, 64, 3, 3)
    assert len(sd) == 1 + 3 * (4 * 2 + 1) + 4 * 2 + 3 * (1 + 4 * 2) + 1


def test_guided_diffusion_ffhq_keys():
    """Key names/shapes of ffhq_10m.pt as laid out by guided-diffusion's UNetModel for the DPS config."""
    sd = ADMUNet(**FFHQ_CONFIG).state_dict()
    expect = {
        "time_embed.0.weight": (512, 128), "time_embed.2.weight": (512, 512),
        "input_blocks.0.0.weight": (128, 3, 3, 3),
        "input_blocks.1.0.emb_layers.1.weight": (256, 512),        # scale-shift: 2 x out channels
        "input_blocks.2.0.in_layers.2.weight": (128, 128, 3, 3),    # down-sampling ResBlock
        "input_blocks.5.0.skip_connection.weight": (256, 128, 1, 1),
        "input_blocks.9.1.qkv.weight": (1536, 512, 1),             # attention at 16x16 (level 4)
        "input_blocks.9.1.proj_out.weight": (512, 512, 1),
        "input_blocks.11.0.out_layers.3.weight": (512, 512, 3, 3),
        "middle_block.1.norm.weight": (512,), "middle_block.2.emb_layers.1.weight": (1024, 512),
        "output_blocks.0.0.skip_connection.weight": (512, 1024, 1, 1),
        "output_blocks.1.1.in_layers.2.weight": (512, 512, 3, 3),   # up-sampling ResBlock
        "output_blocks.3.1.qkv.weight": (1536, 512, 1), "output_blocks.3.2.emb_layers.1.weight": (1024, 512),
        "output_blocks.11.0.skip_connection.weight": (128, 256, 1, 1),
        "out.0.weight": (128,), "out.2.weight": (6, 128, 3, 3),
    }
    for k, shape in expect.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("input_blocks.12") or k.startswith("output_blocks.12") for k in sd)
    assert not any(".1.qkv" in k for k in sd if k.startswith(("input_blocks.7.", "output_blocks.5.")))
    n = sum(v.numel() for v in sd.values())
    assert 93.0e6 < n < 94.0e6  # the published model has ~93.6 M parameters
    with pytest.raises(InputError, match="resblock_updown"):  # the only resampling written
        ADMUNet(**dict(FFHQ_CONFIG, resblock_updown=False))


def test_guided_diffusion_random_state_dict_loads_as_denoiser(tmp_path):
    torch.manual_seed(0)
    cfg = dict(FFHQ_CONFIG, model_channels=32)
    net = ADMUNet(**cfg)
    sd = {k: torch.randn_like(v) * 0.02 for k, v in net.state_dict().items()}
    torch.save(sd, tmp_path / "ffhq_like.pt")
    d = load_prior(tmp_path / "ffhq_like.pt", channels=3)
    assert isinstance(d, EpsilonDenoiser)
    x = torch.rand(1, 3, 64, 64)
    y = d(x, 0.5)
    assert y.shape == x.shape and torch.isfinite(y).all()
    with pytest.raises(InputError):
        load_prior(tmp_path / "ffhq_like.pt", channels=1)


def test_unblur_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = UnblurDenoiser(3, nc=(8, 16, 16, 16), nb=1).eval()
    save_unblur(m, tmp_path / "u.pt", "denoiser", {"note": "test"})
    d = load_prior(tmp_path / "u.pt", channels=3)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(d(x, 0.2), m(x, 0.2)) and d.meta == {"note": "test"}
    with pytest.raises(InputError):
        load_kernel_prior(tmp_path / "u.pt")


def test_bad_checkpoints_rejected(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    (tmp_path / "junk.mpk").write_bytes(b"\xc1\xc1\xc1")
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "other.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    sd = KairDnCNN(1, depth=5, features=8).state_dict()
    sd.pop("model.8.bias")
    sd["model.2.weight"] = torch.zeros(8, 8, 5, 5)
    torch.save(sd, tmp_path / "broken_dncnn.pth")
    data = (tmp_path / "u.pt")
    save_unblur(UnblurDenoiser(1, nc=(8, 8, 8, 8)), data, "denoiser")
    (tmp_path / "truncated.pt").write_bytes(data.read_bytes()[:200])
    for name in ["junk.pt", "junk.mpk", "other.pt", "list.pt", "broken_dncnn.pth", "truncated.pt", "missing.pt"]:
        with pytest.raises(InputError) as e:
            load_prior(tmp_path / name)
        assert name in str(e.value) or "not found" in str(e.value), str(e.value)
    with pytest.raises(InputError):
        load_prior(data, channels=3)
    with pytest.raises(InputError):
        load_prior(channels=2)


@pytest.mark.parametrize("channels, image, min_psnr", [(1, "test/set12/05.png", 28.0),
                                                      (3, "test/cbsd68_color/101085.png", 28.0)])
def test_shipped_priors_denoise_real_images(shared_data, channels, image, min_psnr):
    """The embedded gray and colour priors load without any flag and denoise a test image at sigma 25/255."""
    d = load_prior(channels=channels)
    assert isinstance(d, UnblurDenoiser) and d.channels == (channels,)
    x = read_image(shared_data(image))
    x = x[..., None] if x.ndim == 2 else x
    x = torch.from_numpy(np.ascontiguousarray(x[:128, :128].transpose(2, 0, 1)))[None]
    y = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        e = d(y, 25 / 255).clamp(0, 1)
    noisy, den = psnr(y.numpy(), x.numpy()), psnr(e.numpy(), x.numpy())
    assert den > min_psnr and den > noisy + 6, (noisy, den)


def test_shipped_kernel_prior_denoises_kernels():
    assert (WEIGHTS_DIR / "unblur_kernel_denoiser_33.pt").exists(), "shipped kernel denoiser missing"
    from unblur.psf.motion import random_motion_kernels
    from unblur.training.kernel_denoiser import kernel_psnr
    m = load_kernel_prior(size=33)
    gen = torch.Generator().manual_seed(7)
    k = random_motion_kernels(33, 8, generator=gen)
    y = k + 3e-3 * torch.randn(k.shape, generator=gen)
    with torch.no_grad():
        e = m(y, 3e-3)
    assert float(kernel_psnr(e, k).mean()) > float(kernel_psnr(y, k).mean()) + 6


class _RunsCode:
    """Unpickling this object would call ``touch(path)``: what a malicious checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_checkpoint_with_code_is_refused_without_running_it(tmp_path):
    from unblur.blind.deepblur.train import load_weights
    from unblur.models.checkpoints import read_checkpoint

    marker = tmp_path / "code_ran"
    ck = {"format": "unblur", "kind": "denoiser", "config": {}, "model": {}, "meta": {"x": _RunsCode(marker)}}
    torch.save(ck, tmp_path / "evil.pt")
    for load in (read_checkpoint, load_prior, load_kernel_prior, load_weights):
        with pytest.raises(InputError) as e:
            load(tmp_path / "evil.pt")
        msg = str(e.value)
        assert "refused" in msg and "\n" not in msg and e.value.__cause__ is None and e.value.__suppress_context__
    assert not marker.exists()
    # a file that is not a checkpoint: one clear line
    (tmp_path / "notes.pt").write_text("not a checkpoint\n")
    torch.save({"weights": [1, 2]}, tmp_path / "dict.pt")
    for name in ("notes.pt", "dict.pt"):
        with pytest.raises(InputError) as e:
            read_checkpoint(tmp_path / name)
        assert name in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="not an unblur checkpoint"):
        read_checkpoint(tmp_path / "dict.pt")


def test_every_torch_load_in_src_is_weights_only():
    import ast
    from pathlib import Path

    import unblur

    src = Path(unblur.__file__).parent
    calls = []
    for p in src.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                calls.append((f"{p.relative_to(src)}:{node.lineno}", safe))
    assert calls, "expected torch.load calls in src/unblur"
    assert all(safe for _, safe in calls), [where for where, safe in calls if not safe]


def test_one_format_for_every_network_and_the_legacy_deepblur_converter(tmp_path):
    from unblur.blind.deepblur.identify import IdentificationNet
    from unblur.blind.deepblur.train import load_weights, model_from_weights
    from unblur.models.checkpoints import make_checkpoint, read_checkpoint, save_checkpoint
    from unblur.training.export import export

    torch.manual_seed(0)
    net = IdentificationNet(5, widths=(4, 8, 8, 8), scale=0.15).eval()
    desc = {"kind": "zernike", "noll": [4, 5, 6, 7, 8], "optics": [1.2, 0.6, 0.1], "psf_size": 9}
    old = {"kind": "identify", "config": net.config, "state": net.state_dict(), "psf_model": desc,
           "train": {"steps": 7, "wall_s": 1.5, "size": 24, "final_loss": 0.25}}
    torch.save(old, tmp_path / "old.pt")
    new = read_checkpoint(tmp_path / "old.pt")
    assert new["format"] == "unblur" and new["kind"] == "deepblur-identify" and new["step"] == 7
    assert new["meta"]["loss"] == 0.25 and new["psf_model"] == desc
    w = load_weights(tmp_path / "old.pt")
    assert w["kind"] == "identify" and w["train"]["size"] == 24 and w["train"]["steps"] == 7
    y = torch.rand(2, 1, 24, 24)
    torch.testing.assert_close(model_from_weights(w)(y), net(y), atol=0, rtol=0)
    # a training checkpoint exports to the same format without its training state
    train = make_checkpoint("deepblur-identify", net.config, net.state_dict(), step=3, meta={"steps": 3},
                            psf_model=desc, optimizer={"state": {}, "param_groups": []}, history=[], best=None)
    save_checkpoint(train, tmp_path / "last.pt")
    meta = export(tmp_path / "last.pt", tmp_path / "w.pt")
    out = torch.load(tmp_path / "w.pt", weights_only=True)
    assert meta == {"steps": 3} and out["step"] == 3 and out["psf_model"] == desc
    assert set(out) == {"format", "kind", "config", "model", "step", "meta", "psf_model"}
    # a deep-blur file is not an image prior
    with pytest.raises(InputError, match="deepblur-identify"):
        load_prior(tmp_path / "w.pt")


def test_shipped_weights_are_in_the_one_format():
    for path in sorted(WEIGHTS_DIR.glob("*.pt")):
        obj = torch.load(path, weights_only=True)
        assert obj["format"] == "unblur" and {"kind", "config", "model", "meta"} <= set(obj), path.name
        assert obj["kind"] in ("denoiser", "kernel-denoiser", "deepblur-identify", "deepblur-deblur"), path.name
