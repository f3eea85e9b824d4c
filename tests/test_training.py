"""Training loops: a few steps on tiny data reduce the loss; checkpoints, resume and determinism; the CLI."""

import numpy as np
import pytest
import torch

from unblur.cli.main import main
from unblur.errors import InputError
from unblur.io import write_image
from unblur.models import KernelDenoiser, UnblurDenoiser, load_kernel_prior, load_prior
from unblur.training.data import dihedral, random_patches
from unblur.training.denoiser import DenoiserTrainConfig, edm_loss, sample_sigmas, train_denoiser
from unblur.training.kernel_denoiser import KernelTrainConfig, kernel_psnr, train_kernel_denoiser
from unblur.training.state import cosine_lr


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny networks: run with one thread (see conftest.one_torch_thread)."""


NC = [8, 8, 16, 16]


@pytest.fixture
def tiny_data(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    yy, xx = np.mgrid[:40, :40] / 40
    for i in range(5):
        img = 0.5 + 0.3 * np.sin(2 * np.pi * (xx * (i + 1) + yy * 0.5 * i)) + 0.05 * rng.standard_normal((40, 40))
        write_image(d / f"img{i}.png", np.clip(img, 0, 1).astype(np.float32))
    return d


def test_a_few_steps_reduce_the_edm_loss():
    torch.manual_seed(0)
    m = UnblurDenoiser(1, NC, 1)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    x0 = (0.5 + 0.4 * torch.sin(6 * xx + 3 * yy)).expand(4, 1, 16, 16).contiguous()
    sig = torch.full((4,), 0.1)
    noise = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        first = float(edm_loss(m, x0, sig, noise))
    for _ in range(25):
        loss = edm_loss(m, x0, sig, torch.randn(x0.shape, generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(edm_loss(m, x0, sig, noise)) < 0.7 * first


def test_patches_and_sigmas_are_seeded():
    imgs = [torch.rand(1, 30, 30) for _ in range(3)]
    a = random_patches(imgs, 4, 16, torch.Generator().manual_seed(3))
    b = random_patches(imgs, 4, 16, torch.Generator().manual_seed(3))
    assert a.shape == (4, 1, 16, 16) and torch.equal(a, b)
    assert len({dihedral(torch.arange(4.0).view(1, 2, 2), k).flatten().tolist().__str__() for k in range(8)}) == 8
    s = sample_sigmas(4000, torch.Generator().manual_seed(0), 0.2, 0.25)
    # P(s > 0.2) = 0.25 * P(exp(N(-1.2, 1.2^2)) / 2 > 0.2) = 0.25 * 0.406 = 0.101 (+-0.016 = 3.5 binomial std)
    assert (s >= 0).all() and 0.085 < float((s > 0.2).float().mean()) < 0.117
    assert float(s.max()) > 2  # the log-normal tail reaches high noise levels (measured max 12.2)
    with pytest.raises(InputError):
        random_patches(imgs, 1, 64, torch.Generator())


def test_cosine_schedule():
    assert cosine_lr(0, 100, 1e-3, 1e-5, warmup=10) == pytest.approx(1e-4)
    assert cosine_lr(10, 100, 1e-3, 1e-5, warmup=10) == pytest.approx(1e-3)
    assert cosine_lr(100, 100, 1e-3, 1e-5, warmup=10) == pytest.approx(1e-5)


def test_train_denoiser_checkpoints_resume_and_determinism(tiny_data, tmp_path):
    kw = dict(data=str(tiny_data), channels=1, nc=NC, nb=1, patch=16, batch=4, steps=6, val_images=1, val_every=3,
              seed=1, progress=False, warmup=2)
    full = train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "a"), **kw), log=lambda *_: None)
    assert full["steps"] == 6 and (tmp_path / "a" / "last.pt").exists() and (tmp_path / "a" / "best.pt").exists()
    # a 3-step run resumed to 6 steps continues from the saved step
    train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "b"), **{**kw, "steps": 3}), log=lambda *_: None)
    train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "b"), **kw), resume=str(tmp_path / "b"), log=lambda *_: None)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert b["step"] == 6
    # the cosine schedule depends on --steps, so compare two full runs for bit-equality instead
    train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "c"), **kw), log=lambda *_: None)
    c = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])
    d = load_prior(tmp_path / "a" / "best.pt")
    assert isinstance(d, UnblurDenoiser)
    with pytest.raises(InputError):
        train_denoiser(DenoiserTrainConfig(out=str(tmp_path / "b"), **{**kw, "nc": [8, 8, 8, 8]}),
                       resume=str(tmp_path / "b"), log=lambda *_: None)


def test_train_kernel_denoiser_improves_kernels(tmp_path):
    cfg = KernelTrainConfig(out=str(tmp_path / "k"), size=17, batch=8, steps=60, val_every=60, lr=2e-3,
                            progress=False, seed=0)
    res = train_kernel_denoiser(cfg, log=lambda *_: None)
    assert res["steps"] == 60
    m = load_kernel_prior(tmp_path / "k" / "best.pt")
    assert isinstance(m, KernelDenoiser) and m.size == 17
    ck = torch.load(tmp_path / "k" / "last.pt", weights_only=True)
    (noisy, den), = [v for k, v in ck["history"][-1]["val"].items() if k == "0.01"]
    assert den > noisy  # the denoised kernels are closer to the truth than the noisy ones
    with pytest.raises(InputError):
        load_prior(tmp_path / "k" / "best.pt")


def test_kernel_psnr():
    k = torch.zeros(1, 1, 5, 5)
    k[0, 0, 2, 2] = 1.0
    assert float(kernel_psnr(k + 0.1, k)) == pytest.approx(20.0, abs=1e-4)


def test_cli_train_denoiser_and_errors(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "denoiser", "--data", str(tiny_data), "--out", str(out), "--steps", "2", "--nc", "8,8,16,16",
               "--patch", "16", "--batch", "2", "--val-images", "1", "--val-every", "2", "--no-progress"])
    assert rc == 0 and (out / "last.pt").exists()
    rc = main(["train", "denoiser", "--data", str(tiny_data), "--out", str(out), "--steps", "3", "--nc", "8,8,16,16",
               "--patch", "16", "--batch", "2", "--val-images", "1", "--no-progress", "--resume"])
    assert rc == 0 and torch.load(out / "last.pt", weights_only=True)["step"] == 3
    assert main(["train", "denoiser", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert main(["train", "denoiser", "--data", str(tiny_data), "--out", str(out), "--nc", "8,8"]) == 2
    assert main(["train", "denoiser", "--data", str(tiny_data), "--out", str(out), "--patch", "20"]) == 2


def _help(*argv) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        main(["train", *argv, "--help"])
    return " ".join(buf.getvalue().split())


@pytest.mark.parametrize("what", ["denoiser", "kernel-denoiser", "deepblur"])
def test_cli_options_come_from_the_config_dataclass(what):
    """Every config field is an option of ``unblur train WHAT`` and --help shows the dataclass default."""
    import argparse
    from dataclasses import MISSING, fields

    from unblur.training.config import TRAINERS, add_config_arguments, config_from_args

    cls = TRAINERS[what][0]
    text = _help(what)
    p = argparse.ArgumentParser()
    add_config_arguments(p, cls)
    required = {f.name: "x" for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    argv = [a for k, v in required.items() for a in (f"--{k.replace('_', '-')}", "identify" if k == "stage" else v)]
    cfg = config_from_args(cls, p.parse_args(argv))
    for f in fields(cls):
        flag = ("--no-" if f.type in (bool, "bool") else "--") + f.name.replace("_", "-")
        assert flag in text, (what, flag)
        if f.name not in required:  # parsing no option gives the dataclass default
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            assert getattr(cfg, f.name) == default, f.name
            if default not in (None, True, False):
                shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
                assert f"(default {shown})" in text, (what, f.name, shown)


def test_trainer_defaults_differ_where_they_should():
    from unblur.training.config import DeepblurTrainConfig, DenoiserTrainConfig, KernelTrainConfig

    d, k, b = DenoiserTrainConfig(out="o", data="d"), KernelTrainConfig(out="o"), DeepblurTrainConfig(stage="identify")
    assert (d.steps, k.steps, b.steps) == (100_000, 5000, 20_000)
    assert (d.lr_schedule, b.lr_schedule, b.lr_min) == ("cosine", "constant", 0.0)
    assert (d.grad_clip, k.grad_clip, b.grad_clip) == (1.0, None, None) and b.ckpt_minutes == 3.0
    assert "(default 3.0)" in _help("deepblur") and "--checkpoint-minutes" in _help("deepblur")


def test_train_cli_modules_do_not_import_torch():
    """``unblur --help`` stays fast: the train command and the configs import no torch at module level."""
    import ast
    import inspect

    import unblur.cli.train
    import unblur.training
    import unblur.training.config

    allowed = {"__future__", "argparse", "importlib", "inspect", "typing", "dataclasses", "..training.config", "..errors",
               ".config"}
    for mod in (unblur.cli.train, unblur.training.config, unblur.training):
        tree = ast.parse(inspect.getsource(mod))
        for node in tree.body:  # module level only: imports inside functions run when a trainer starts
            if isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {"." * node.level + (node.module or "")}
            else:
                continue
            assert names <= allowed, (mod.__name__, names)


def test_cli_train_deepblur_exports_and_the_module_entry_point(tiny_data, tmp_path):
    """``unblur train deepblur`` (options from the config) trains, validates, exports and resumes."""
    from unblur.blind.deepblur.train import load_weights
    from unblur.blind.deepblur.train import main as module_main

    common = ["--data", str(tiny_data), "--size", "24", "--psf-size", "9", "--width", "4", "--batch", "2",
              "--val-every", "2", "--no-progress", "--checkpoint-minutes", "100"]
    out = tmp_path / "in"
    assert main(["train", "deepblur", "--stage", "identify", "--out", str(out), "--steps", "2",
                 "--export", str(tmp_path / "in.pt"), "--lr-schedule", "cosine", *common]) == 0
    w = load_weights(tmp_path / "in.pt")
    assert w["kind"] == "identify" and w["train"]["steps"] == 2 and w["train"]["lr_schedule"] == "cosine"
    assert w["config"]["widths"] == [4, 8, 16, 32] and (out / "best.pt").exists()
    assert module_main(["--stage", "identify", "--out", str(out), "--steps", "3", "--resume", *common]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3
    assert main(["train", "deepblur", "--stage", "deblur", "--out", str(tmp_path / "dn"), *common]) == 2  # no IN


def _start_then_signal(argv, ready, signum, timeout=120):
    """Run ``python -m unblur ARGV`` in a subprocess, send ``signum`` once ``ready()`` holds; (rc, stderr)."""
    import os
    import signal  # noqa: F401 - signum values
    import subprocess
    from pathlib import Path
    import sys
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "unblur", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    t0 = time.time()
    while not ready() and p.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.05)
    assert p.poll() is None, "the command ended before the signal: " + p.stderr.read()
    p.send_signal(signum)
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


@pytest.mark.parametrize("signame,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_train_signal_writes_the_resume_checkpoint_and_says_so(tiny_data, tmp_path, signame, code):
    """SIGTERM (and SIGINT) stop training with a resume checkpoint, named in the one-line message."""
    import signal

    out = tmp_path / "run"
    argv = ["train", "denoiser", "--data", str(tiny_data), "--out", str(out), "--steps", "100000", "--nc", "8,8,16,16",
            "--patch", "16", "--batch", "2", "--val-images", "1", "--val-every", "1", "--no-progress"]
    rc, err = _start_then_signal(argv, lambda: (out / "best.pt").exists(), getattr(signal, signame))
    assert rc == code, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("unblur train")]
    assert len(lines) == 1 and "resume checkpoint" in lines[0] and "last.pt" in lines[0], err
    assert "no partial output" not in err
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["step"] >= 1 and not list(out.glob("*.tmp"))


def test_bf16_precision_trains_and_the_gpu_recipe_parses(tmp_path):
    """``--precision bf16`` (the GPU recipe's setting) runs the loop under autocast and writes float32 weights;
    ``scripts/train_gpu.sh`` is valid bash (it is run end to end on a GPU machine, or with DEVICE=cpu SMALL=1)."""
    import subprocess
    from pathlib import Path

    from unblur.cli.main import main as cli_main
    from unblur.models.checkpoints import read_checkpoint

    out = tmp_path / "k"
    assert cli_main(["train", "kernel-denoiser", "--steps", "3", "--batch", "4", "--features", "8", "--blocks", "2",
                     "--val-every", "3", "--precision", "bf16", "--out", str(out), "--no-progress"]) == 0
    ck = read_checkpoint(out / "last.pt")
    assert ck["step"] == 3 and ck["config"] is not None
    assert all(v.dtype == torch.float32 for v in ck["model"].values() if v.is_floating_point())
    repo = Path(__file__).resolve().parents[1]
    assert subprocess.run(["bash", "-n", str(repo / "scripts" / "train_gpu.sh")]).returncode == 0
