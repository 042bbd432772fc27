"""The HTML report rendered by headless Chromium (Debian `chromium`): the three plots are laid
out and painted (their colours are in the screenshot), the DOM has every bar and point, and the
file is self-contained (no script, no external resource)."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from lowbit.profiler import html as H

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM:
        msg = "chromium not found: apt-get install chromium (or run `make system-deps`)"
        if os.environ.get("LOWBIT_REQUIRE_ALL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return CHROMIUM


def _chromium(exe, tmp_path, *args):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _hex(c):
    return np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)])


def _count(img, colour, tol=12):
    return int((np.abs(img[..., :3].astype(int) - _hex(colour)) <= tol).all(axis=-1).sum())


def test_html_is_self_contained(synthetic_report):
    html = synthetic_report.to_html()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=""", html, re.I)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    for plot in ("plot-time", "plot-roofline", "plot-gap"):
        assert f'id="{plot}"' in html


def test_html_renders_in_chromium(chromium, synthetic_report, tmp_path):
    page = tmp_path / "report.html"
    synthetic_report.to_html(page)
    shot = tmp_path / "shot.png"
    r = _chromium(chromium, tmp_path, "--window-size=1200,1500", f"--screenshot={shot}", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, r.stderr[-3000:]
    assert "Uncaught" not in r.stderr and "CONSOLE" not in r.stderr, r.stderr[-3000:]

    from skimage.io import imread

    img = imread(str(shot))
    assert img.shape[0] >= 1400 and img.shape[1] >= 1100
    # Painted plots: time bars (one of them red: fc2's scalar fallback), roofline points, SNR bars.
    assert _count(img, H.C_TIME) > 2000, "time-per-op bars not painted"
    assert _count(img, H.C_WARN) > 1000, "slow-path bar not painted red"
    assert _count(img, H.C_POINT) > 30, "roofline points not painted"
    assert _count(img, H.C_GAP) > 2000, "numeric-gap bars not painted"

    dom = _chromium(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout
    assert dom.count('class="bar"') == 3 + 3      # 3 ops in the time plot + 3 layers with a gap
    assert dom.count('class="op"') == 3           # every op with arithmetic on the roofline
    assert 'id="roof"' in dom and "fc2: scalar fallback" in dom


def test_html_without_roofline_or_gap(device, tmp_path):
    """A profile of an unmeasured device still renders, saying what is missing."""
    from lowbit.profiler import build_report
    from profiler_helpers import make_events

    r = build_report([make_events()], [4_000_000], device=device, roofline={"source": "none"})
    html = r.to_html()
    assert "roofline unknown" in html and "no data for numeric gap" in html
    assert html.count('class="bar"') == 3
