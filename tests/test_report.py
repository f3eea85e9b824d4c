"""The HTML report: self-contained (no external URL), tables, per-image details, embedded images; a headless-Chromium screenshot."""

import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs, self.urls, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "data", "poster", "action") and v:
                self.urls.append(v)
            if tag == "img" and k == "src":
                self.srcs.append(v)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import imageio.v3 as iio
    from scipy import ndimage

    from unblur.bench import load_suite, run_suite
    tmp = tmp_path_factory.mktemp("report")
    d = tmp / "images"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        a = ndimage.gaussian_filter(rng.random((48, 48)), 1.5)
        iio.imwrite(d / f"im{i}.png", (255 * (a - a.min()) / (a.max() - a.min())).astype(np.uint8))
    s = load_suite("smoke", overrides=['metrics.names=["psnr", "ssim", "psnr_shift", "error_ratio", "time", "memory"]',
                                       "dataset.crop=0"])
    res = run_suite(s, tmp / "out", data=d, command="unblur bench smoke --data images")
    return res["report"]


def test_report_is_self_contained_with_tables_and_images(report):
    page = Page()
    html = report.read_text()
    page.feed(html)
    assert page.tags.count("table") >= 2 and "details" in page.tags  # summary + per-image table
    assert len(page.srcs) >= 3 and all(s.startswith("data:image/png;base64,") for s in page.srcs)  # plot + 2 panels
    assert not [u for u in page.urls if not u.startswith("data:")]
    assert "http://" not in html and "https://" not in html and "<script" not in html and "<link" not in html
    text = " ".join(page.text)
    for word in ("Wiener", "RL 30", "RL-TV 30", "PSNR (dB)", "error ratio", "unblur bench smoke --data images", "cores"):
        assert word in text, word


def _chromium():
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (apt-get install chromium-headless-shell)")
def test_report_screenshot_in_headless_chromium(report, tmp_path):
    import imageio.v3 as iio
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600",
           f"--screenshot={shot}", report.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), r.stderr[-2000:]
    img = iio.imread(shot).astype(np.float32)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    gray = img[..., :3].mean(-1)
    assert gray.std() > 10  # not blank: text, tables and images drawn
    assert (gray < 100).mean() > 0.01  # dark pixels: text and image content
