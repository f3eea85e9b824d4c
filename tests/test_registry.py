"""The registry as the API contract: parameters from each function's source, capabilities, per-method help."""

import inspect
import subprocess
import sys

import numpy as np
import pytest

from unblur.cli.main import main
from unblur.errors import InputError
from unblur.methods.signature import first_sentence, numpydoc_parameters, plain, read_parameters
from unblur.registry import DEFAULT_BLIND_METHOD, DEFAULT_METHOD, NOT_OPTIONS, get_method, list_methods

METHODS = [m.name for m in list_methods()]


@pytest.mark.parametrize("name", METHODS)
def test_parameters_read_from_source_match_the_imported_signature(name):
    """What the registry reads with ast (no import) is what Python sees; every option has help text."""
    m = get_method(name)
    sig = inspect.signature(m.func)
    not_options = set(NOT_OPTIONS) | set(m.skip) | set(m.fixed)
    expected = {k: p.default for k, p in sig.parameters.items()
                if p.default is not inspect.Parameter.empty and k not in not_options}
    assert {p.name: p.default for p in m.params} == expected
    assert [p.name for p in m.params] == list(expected)  # same order
    for p in m.params:
        assert p.help, f"{name}: parameter {p.name} has no numpydoc entry"
        assert p.default is None or p.choices is None or p.default in p.choices
    assert set(m.fixed) <= set(sig.parameters)


def test_choices_are_the_implementations_constants():
    from unblur.algorithms.guidance import R_CHOICES, ZETA_SCHEDULES
    from unblur.algorithms.rl_diffusion import REFINE_FROM
    from unblur.blind.diffusion_em.mstep import EVEN_RULES, REGULARIZERS
    from unblur.blind.dip.fit import KERNEL_INITS, PRESETS
    from unblur.physics.convolution import BOUNDARIES

    for name in ("fast-em", "diffusion-em"):
        m = get_method(name)
        assert m.param("regularizer").choices == ("auto",) + REGULARIZERS
        assert m.param("even_rule").choices == EVEN_RULES
        assert set(m.param("r_choice").choices) == set(R_CHOICES)
    assert set(get_method("pigdm").param("r_choice").choices) == set(R_CHOICES)
    assert set(get_method("dps").param("zeta_schedule").choices) == set(ZETA_SCHEDULES)
    assert get_method("rl-diffusion").param("refine_from").choices == REFINE_FROM
    for name in ("dps", "pigdm", "rl-diffusion"):
        assert set(get_method(name).param("boundary").choices) == set(BOUNDARIES)
    for name in ("selfdeblur", "vdip-sparse"):
        assert set(get_method(name).param("preset").choices) == set(PRESETS)
        assert get_method(name).param("kernel_init").choices == KERNEL_INITS


def test_signature_reader_on_literal_arithmetic_unions_and_numpydoc(tmp_path, monkeypatch):
    src = tmp_path / "fake_methods.py"
    src.write_text('''
from typing import Literal, Optional

def f(image, psf, *, a: int = 3, b: float = 49 / 255, c: "int | None" = None, d: Literal["x", "y"] = "y",
      e: Optional[float] = None, g=True, h: "Denoiser | str | None" = None, callback=None):
    """Summary.

    Parameters
    ----------
    a : int
        The a, e.g. 3. More text.
    b, c : float
        Shared text. Second sentence.
    d : {"x", "y"}
        See :func:`~pkg.mod.fn` and ``d``.
    """
''')
    monkeypatch.syspath_prepend(str(tmp_path))
    params = {p.name: p for p in read_parameters("fake_methods:f", ("image", "psf", "callback"))}
    assert list(params) == ["a", "b", "c", "d", "e", "g", "h"]
    assert params["b"].default == 49 / 255 and params["b"].type is float
    assert params["c"].type is int and params["c"].default is None
    assert params["d"].choices == ("x", "y") and params["d"].type is str
    assert params["e"].type is float and params["g"].type is bool and params["h"].type is str
    assert params["a"].help == "The a, e.g. 3." and params["c"].help == "Shared text."
    assert params["d"].help == "See fn and d."
    assert numpydoc_parameters("no sections") == {}
    assert first_sentence("Weight (default 0.3). Next.") == "Weight (default 0.3)."
    assert plain(":mod:`unblur.physics`") == "unblur.physics"


def test_resolve_unknown_names_and_bad_choices():
    m = get_method("rl")
    with pytest.raises(InputError, match="no parameter"):
        m.resolve({"num_iters": 3})
    with pytest.raises(InputError, match="not one of"):
        get_method("pigdm").resolve({"r_choice": "nope"})
    with pytest.raises(InputError, match="unknown method 'nope'"):
        get_method("nope")


def test_api_passes_arrays_and_callbacks_that_are_not_cli_options():
    y = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    seen = []
    m = get_method("rl")
    assert "callback" in m.api_only and "channel_axis" in m.api_only and "callback" not in m.defaults()
    restored, info = m.run(y, np.ones((3, 3)) / 9, num_iter=3, channel_axis=-1,
                           callback=lambda i, x, inf: seen.append(i))
    assert restored.shape == y.shape and len(seen) == 3
    assert "init_kernel" in get_method("fast-em").api_only
    with pytest.raises(InputError, match="no parameter"):
        m.resolve({"image": y})


def test_classical_methods_get_their_info_and_default_methods():
    assert DEFAULT_METHOD == "rl" and get_method(DEFAULT_BLIND_METHOD).kind == "blind"
    y = np.random.default_rng(0).random((24, 24)).astype(np.float32)
    psf = np.ones((3, 3), np.float32) / 9
    restored, info = get_method("tikhonov").run(y, psf, lam=0.01)
    assert restored.shape == y.shape and info["time_s"] >= 0 and info["params"]["lam"] == 0.01
    assert info["method"] == "tikhonov"


def test_stack_refused_by_a_2d_only_method():
    stack = np.random.default_rng(0).random((6, 20, 20)).astype(np.float32)
    psf3d = np.ones((3, 3, 3), np.float32) / 27
    assert 3 not in get_method("dpir").capabilities.dims and 3 in get_method("rl").capabilities.dims
    with pytest.raises(InputError, match="2-D images, not 3-D stacks"):
        get_method("dpir").run(stack, psf3d)
    with pytest.raises(InputError, match="3-D stacks"):
        get_method("selfdeblur").run(stack)
    restored, _ = get_method("rl").run(stack, psf3d, num_iter=2)
    assert restored.shape == stack.shape


def test_help_shows_each_methods_own_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["deconvolve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "options of --method rl" in text and "(default 50)" in text and "(default valid)" in text
    assert "--method NAME --help" in text and "--rho" not in text
    with pytest.raises(SystemExit):
        main(["deconvolve", "--method", "dpir", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "options of --method dpir" in text and "(default 8)" in text and "(default valid)" in text
    assert "[--acceleration" not in text and "options of --method rl " not in text
    with pytest.raises(SystemExit):
        main(["blind", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {DEFAULT_BLIND_METHOD})" in text
    assert main(["methods", "rl"]) == 0
    out = capsys.readouterr().out
    assert "--num-iter" in out and "default=50" in out and "2-D/3-D" in out
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "stochastic" in out and "default of 'unblur blind'" in out
    assert main(["methods", "nope"]) == 2


def test_option_of_another_method_is_refused(tmp_path, capsys):
    from unblur.io import write_image
    write_image(tmp_path / "y.tif", np.full((16, 16), 0.5, np.float32))
    write_image(tmp_path / "k.tif", np.full((3, 3), 1 / 9, np.float32))
    rc = main(["deconvolve", str(tmp_path / "y.tif"), "--psf", str(tmp_path / "k.tif"), "--method", "wiener",
               "--num-iter", "3", "-o", str(tmp_path / "o.tif")])
    assert rc == 2 and "does not take --num-iter" in capsys.readouterr().err


def test_device_cuda_without_gpu_is_a_one_line_error(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from unblur.cli.main import main
    from unblur.io import write_image
    write_image(tmp_path / "y.tif", np.full((16, 16), 0.5, np.float32))
    write_image(tmp_path / "k.tif", np.full((3, 3), 1 / 9, np.float32))

    def argv(method):
        return ["deconvolve", str(tmp_path / "y.tif"), "--psf", str(tmp_path / "k.tif"), "--method", method,
                "--device", "cuda", "-o", str(tmp_path / f"{method}.tif")]
    for method in ("rl", "wiener", "tikhonov"):  # in this process: the message main() writes
        assert main(argv(method)) == 2
        err = capsys.readouterr().err
        assert "CUDA was requested" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / f"{method}.tif").exists()
    # a whole process (a learned method: torch's own CUDA error must not leak out)
    r = subprocess.run([sys.executable, "-m", "unblur", *argv("dpir")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "CUDA was requested" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["methods"], ["methods", "fast-em"],
                                  ["deconvolve", "--help"], ["blind", "--method", "fast-em", "--help"]])
def test_fast_start_imports_neither_torch_nor_scipy(argv):
    """The command line answers these without importing torch or scipy (checked, not timed)."""
    code = ("import sys\nfrom unblur.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'scipy') if m in sys.modules)\n"
            "assert not heavy, heavy\nprint('light')")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("light"), r.stderr[-2000:]
