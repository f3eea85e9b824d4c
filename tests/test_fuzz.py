"""Fuzzing the classical methods: any image, PSF and parameters give a finite result of the documented
shape and dtype, or an InputError; never NaN, Inf or another exception."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import unblur
from unblur.errors import InputError

EXAMPLES = 500  # per method; tiny arrays and 2-3 iterations keep the file under a minute on one core

VALUES = st.one_of(st.floats(-0.5, 2.0, width=32), st.sampled_from([0.0, 1.0, 1e-30, 1e4, -1e-7]))


@st.composite
def problems(draw):
    ndim = draw(st.sampled_from([2, 2, 2, 3]))
    colour = ndim == 2 and draw(st.booleans())
    sizes = st.sampled_from([4, 5, 6, 7, 8, 9, 10, 2, 3] + ([1] if ndim == 3 else []))  # mostly valid
    shape = tuple(draw(sizes) for _ in range(ndim))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.uint8, np.uint16]))
    full = shape + ((3,) if colour else ())
    if np.dtype(dtype).kind == "u":
        image = draw(arrays(dtype, full, elements=st.integers(0, int(np.iinfo(dtype).max))))
    else:
        image = draw(arrays(dtype, full, elements=VALUES))
    kshape = tuple(draw(st.sampled_from([1, 2, 3, 3, 5, 5, 7])) for _ in range(ndim))
    psf = draw(arrays(np.float64, kshape, elements=st.floats(0, 1))) + 1e-3
    if draw(st.integers(0, 15)) == 15:  # now and then an all-zero PSF
        psf = np.zeros(kshape)
    if draw(st.integers(0, 7)) == 7:  # now and then negative values (a little, or too much)
        psf = psf - draw(st.sampled_from([1e-3, 0.2]))
    return image, psf


ITERS = st.sampled_from([2, 3, 2, 3, 2, 3, 0, -1])  # 2-3 iterations, now and then an invalid count

PARAMS = {
    "rl": lambda: st.fixed_dictionaries({
        "num_iter": ITERS,
        "boundary": st.sampled_from(["valid", "circular", "zero", "replicate", "reflect"]),
        "acceleration": st.sampled_from(["none", "biggs-andrews"]),
        "background": st.sampled_from([0.0, 0.0, 0.0, 0.01, -0.1, 5.0]),
        "stop": st.sampled_from(["none", "relative-change", "poisson-discrepancy"])}),
    "rl-tv": lambda: st.fixed_dictionaries({
        "num_iter": ITERS,
        "lambda_tv": st.sampled_from([1e-4, 0.005, 0.02, 0.08, 0.124, 0.005, 0.2, 10.0, -1.0]),
        "boundary": st.sampled_from(["valid", "circular", "reflect"])}),
    "wiener": lambda: st.fixed_dictionaries({
        "boundary": st.sampled_from(["circular", "reflect", "replicate", "valid", "circular", "zero"]),
        "noise_sigma": st.sampled_from([None, 0.0, 0.01, 1.0, -0.1])}),
    "tikhonov": lambda: st.fixed_dictionaries({
        "lam": st.sampled_from([1e-6, 1e-3, 1.0, 1e-2, 0.0, -1.0]),
        "boundary": st.sampled_from(["circular", "reflect", "valid", "zero", "replicate"])}),
    "tv-admm": lambda: st.fixed_dictionaries({
        "lam": st.sampled_from([1e-4, 2e-3, 0.1, 2e-3, 0.0]),
        "num_iter": ITERS,
        "tv_iter": st.sampled_from([1, 2, 3])}),
}


def _check(method, image, psf, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = unblur.deconvolve(image, psf, method=method, **params).image
        except InputError as e:
            assert "\n" not in str(e)
            return
    assert isinstance(out, np.ndarray) and out.shape == image.shape
    assert out.dtype == (np.float64 if image.dtype == np.float64 else np.float32)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("method", sorted(PARAMS))
def test_fuzz_classical_method(method):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(problems(), PARAMS[method]())
    def run(problem, params):
        _check(method, *problem, params)

    run()
