"""Deep-blur PSF identification when the image's pupil cut-off differs from the training one.

The shipped identification network was trained at NA 1.2, wavelength 0.6 um, pixel 0.1 um (cut-off 0.2
cycles/pixel). An image with pixel size ``0.1 r`` um has cut-off ``0.2 r``. For each ratio ``r``: 128x128
crops (2 per image) blurred by random Zernike PSFs (Noll 4-11, uniform in +-0.1 waves) at the image's optics,
Poisson-Gaussian noise ``sqrt(0.01 A x + 1e-4)``; PSF SNR (dB, up to the PSF's point reflection) of the
identified PSF evaluated at the image's optics (what reading the pixel size from the metadata does), at the
training optics (ignoring it), and of the aberration-free PSF at the image's optics. This measurement chose
``unblur.blind.deepblur.api.CUTOFF_RANGE``.

    python benchmarks/deepblur_cutoff.py test/set12 6 0.3,0.5,0.75,1.0,1.35,1.5,2.0      # tuning
    python benchmarks/deepblur_cutoff.py test/bsd68_gray 10 0.3,0.5,0.6,0.75,1.0,1.35,1.5,2.0  # report
"""
import sys, numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
from unblur.data import data_path
from unblur.io import read_image
from unblur.blind.deepblur.api import identify_psf
from unblur.blind.deepblur.psf_model import zernike_psf_model, DEEPBLUR_NOLL
folder, nimg = sys.argv[1], int(sys.argv[2])
files = sorted(f for f in Path(data_path(folder)).iterdir() if f.suffix == ".png")[:nimg]
rng = np.random.default_rng(0)
def snr(h, ref):
    h2 = h[::-1, ::-1]
    e = min(np.linalg.norm(h - ref), np.linalg.norm(h2 - ref))
    return 20 * np.log10(np.linalg.norm(ref) / e)
NA, WL = 1.2, 0.6
train = zernike_psf_model((NA, WL, 0.1), DEEPBLUR_NOLL, 31)
print("ratio cutoff  IN@image-optics  IN@train-optics  h0@image")
for r in [float(v) for v in sys.argv[3].split(",")]:
    m = zernike_psf_model((NA, WL, 0.1 * r), DEEPBLUR_NOLL, 31)
    a, b, c = [], [], []
    for f in files:
        im = np.asarray(read_image(f), np.float32)
        if im.ndim == 3: im = im.mean(-1)
        for d in range(2):
            i, j = rng.integers(0, im.shape[0] - 158), rng.integers(0, im.shape[1] - 158)
            x = torch.from_numpy(np.ascontiguousarray(im[i:i + 158, j:j + 158]))[None, None]
            g = torch.from_numpy(rng.uniform(-0.1, 0.1, (1, 8)).astype(np.float32))
            with torch.no_grad():
                h = m(g)
                y = m.operator(h, (128, 128), "valid").A(x)[0, 0].numpy()
            y = y + np.sqrt(np.clip(0.01 * y, 0, None) + 1e-4) * rng.standard_normal(y.shape).astype(np.float32)
            gam, _, _ = identify_psf(y)
            gt = torch.from_numpy(gam)[None]
            with torch.no_grad():
                hi = m(gt)[0, 0].numpy(); ht = train(gt)[0, 0].numpy(); h0 = m(torch.zeros(1, 8))[0, 0].numpy()
            ref = h[0, 0].numpy()
            a.append(snr(hi, ref)); b.append(snr(ht, ref)); c.append(snr(h0, ref))
    print(f"{r:5.2f} {0.2*r:6.3f}  {np.mean(a):8.2f}  {np.mean(b):8.2f}  {np.mean(c):8.2f}", flush=True)
