"""The report page in a real browser: headless Chromium (Debian's ``chromium`` +
``chromium-driver``) through Selenium, the page served from localhost.

Checks: no console errors, every figure rendered (plotly SVG/canvas with non-zero size,
images decoded), the 3D helix turns when dragged (its camera eye changes), and a
screenshot is written (to ``$POSLENS_SCREENSHOT_DIR`` if set, else the test's tmp dir).

Skips only when Chromium or its driver is not installed (``apt-get install chromium
chromium-driver``; ``.ci/run`` does that).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless Chromium not installed (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A report of a synthetic checkpoint with a planted helix in W_pos, using the real stages."""
    import math

    import torch

    from poslens.report import build_report, default_stages
    from poslens.testing import random_state_dict, small_config, write_checkpoint

    root = tmp_path_factory.mktemp("browser")
    cfg = small_config(n_layers=2, d_model=32, n_heads=4, n_ctx=64, d_vocab=300)
    sd = random_state_dict(cfg, seed=3)
    t = torch.arange(cfg.n_ctx, dtype=torch.float32)
    helix = torch.zeros(cfg.n_ctx, cfg.d_model)
    helix[:, 0], helix[:, 1], helix[:, 2] = torch.cos(2 * math.pi * t / 32), torch.sin(2 * math.pi * t / 32), t / cfg.n_ctx
    sd["wpe.weight"] = helix + 0.01 * sd["wpe.weight"]
    ckpt = write_checkpoint(root / "model", cfg, sd)
    stages = default_stages()
    if not any(s.name == "helix" for s in stages):
        from test_report import fake_stages  # the helix analysis has not landed: use the planted 3D fake

        stages = fake_stages()[:1]
    out, _ = build_report([str(ckpt)], root / "report", stages=stages, size="quick", progress=False)
    return out


@pytest.fixture(scope="module")
def server(page):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(page.parent))

    class Quiet(handler.func):
        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(page.parent)))
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{page.name}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[test]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--enable-unsafe-swiftshader", "--window-size=1280,2000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(300)  # a busy 2-core CI machine renders 30+ figures slowly
    yield driver
    driver.quit()


FIGURE_STATE = """
return Array.from(document.querySelectorAll('.plotly-graph-div')).map(function (gd) {
  var r = gd.getBoundingClientRect();
  var svgs = gd.querySelectorAll('svg.main-svg');
  var canvas = Array.from(gd.querySelectorAll('canvas')).filter(function (c) { return c.width > 0 && c.height > 0; });
  var marks = gd.querySelectorAll('.scatterlayer .trace, .barlayer .trace, .heatmaplayer image, path.point, .surface, .contour');
  var is3d = !!(gd._fullLayout && gd._fullLayout.scene);
  return {id: gd.id, w: r.width, h: r.height, svgs: svgs.length, canvases: canvas.length,
          marks: marks.length, traces: (gd.data || []).length, is3d: is3d,
          rendered: !!gd._fullLayout && (svgs.length > 0 || canvas.length > 0)};
});
"""


def _wait(driver, js, timeout=180):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: d.execute_script(js))


def test_page_renders_every_figure_without_console_errors(browser, server, page):
    browser.get(server)
    _wait(browser, "return document.readyState === 'complete'")
    n_plotly = page.read_text().count("Plotly.newPlot")
    assert n_plotly >= 1, "the page has no interactive figure"
    _wait(browser, f"return document.querySelectorAll('.plotly-graph-div .main-svg').length >= {n_plotly}")
    figs = browser.execute_script(FIGURE_STATE)
    assert len(figs) == n_plotly
    for f in figs:
        assert f["rendered"] and f["w"] > 100 and f["h"] > 100 and f["traces"] > 0, f
        if f["is3d"]:
            assert f["canvases"] >= 1, f  # WebGL scene drawn
    imgs = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
    for alt, complete, w, h in imgs:
        assert complete and w > 0 and h > 0, alt
    logs = browser.get_log("browser")
    errors = [l for l in logs if l["level"] == "SEVERE"]
    assert not errors, errors
    shots = Path(os.environ.get("POSLENS_SCREENSHOT_DIR") or page.parent)
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report-screenshot.png"
    browser.set_window_size(1280, 2000)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_helix_turns_when_dragged(browser, server):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(server)
    _wait(browser, "return document.querySelectorAll('.plotly-graph-div .main-svg').length > 0")
    gid = _wait(browser, """
      var g = Array.from(document.querySelectorAll('.plotly-graph-div')).find(
          function (gd) { return gd._fullLayout && gd._fullLayout.scene && gd.querySelector('canvas'); });
      return g ? g.id : null;""")
    eye_js = f"var s = document.getElementById('{gid}')._fullLayout.scene; return JSON.stringify(s._scene.getCamera().eye);"
    before = browser.execute_script(eye_js)
    el = browser.find_element("id", gid)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    ActionChains(browser).move_to_element(el).click_and_hold().move_by_offset(120, 40).move_by_offset(60, 20) \
        .release().perform()
    after = _wait(browser, eye_js.replace("return ", "var e = ") + f" return e !== {before!r} ? e : null;", timeout=10)
    assert after != before
