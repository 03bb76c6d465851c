"""The self-contained HTML bench report, loaded in a REAL headless Chromium.

Checks: no network references, no console errors, every image and plot decoded
(the page's own script counts img.naturalWidth > 0 into data attributes that
--dump-dom shows), the rating form produces its JSON, and a screenshot is a
real PNG. Skips only where Chromium is absent.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from skugen.bench import BenchReport
from skugen.bench.html import render_html, write_html

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p and Path(p).exists()), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]
need_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); "
                                                            "the HTML is still checked statically")


@pytest.fixture(scope="module")
def page(bench):
    run = bench  # the session's one bench run (conftest.py)
    out = run["dir"] / "report.html"
    write_html(run["report"], out)
    return {"run": run, "html": out, "text": out.read_text()}


def _chromium(args: list[str], tmp: Path, timeout: int = 90) -> subprocess.CompletedProcess:
    prof = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={prof}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _body_attrs(dom: str) -> dict:
    m = re.search(r"<body([^>]*)>", dom)
    assert m, dom[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', m.group(1)))


def _console_errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "Uncaught" in ln or ("CONSOLE" in ln and "ERROR" in ln)]

# ----------------------------------------------------------------------------- static


def test_page_is_self_contained(page):
    t = page["text"]
    # Nothing is fetched: no http(s) URLs in src/href, no external scripts or stylesheets.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", t)
    assert "<link" not in t and "@import" not in t
    assert "default-src 'none'" in t  # CSP: even a stray reference could not load
    n_png = t.count("data:image/png;base64,")
    assert n_png == t.count("<img")
    assert "Latency vs quality (Pareto)" in t and "Throughput vs batch" in t
    assert t.count("class='plot'") == 2  # both matplotlib plots embedded
    assert "Download ratings" in t and 'type="radio" class="rating"' in t
    assert "Not measured here" in t  # skipped cells are listed with their reason


def test_image_groups_and_ratings(page):
    rep = page["run"]["report"]
    t = page["text"]
    for bundle, s in rep.samples.items():
        assert f"{bundle} ({s['kind']})" in t
        for col in s["columns"]:
            assert col in t
    g = next(s for s in rep.samples.values() if s["kind"] == "generator")
    assert list(g["columns"])[0] == "teacher (torch fp32)"
    assert [c.split(" (")[0] for c in list(g["columns"])[1:]] == ["student fp32", "student int8"]
    # Five radio buttons per rated group.
    names = re.findall(r'class="rating" name="([^"]+)"', t)
    assert names and all(names.count(n) == 5 for n in set(names))


def test_report_from_json_renders_without_images(page, tmp_path):
    rep = BenchReport.load(page["run"]["json"])
    html = render_html(rep)
    assert "No images in this report" in html and "class='plot'" in html

# ----------------------------------------------------------------------------- real browser


_HARNESS = r"""
<script>
window.addEventListener('load', function(){
  setTimeout(function(){
    var r = document.querySelector('input.rating[value="4"]');
    var out = {};
    if (r) { r.checked = true; }
    out.ratings = window.skugenRatings();
    var clicked = null;
    HTMLAnchorElement.prototype.click = function(){ clicked = {href: this.href, download: this.download}; };
    window.skugenDownloadRatings();
    out.download = clicked;
    var pre = document.createElement('pre'); pre.id = 'harness'; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }, 0);
});
</script>
"""


@need_chromium
def test_renders_in_headless_chromium_with_all_images_decoded(page, tmp_path):
    test_page = tmp_path / "page.html"
    test_page.write_text(page["text"].replace("</body>", _HARNESS + "</body>"))
    r = _chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
                   test_page.as_uri()], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not _console_errors(r.stderr), _console_errors(r.stderr)
    attrs = _body_attrs(r.stdout)
    assert attrs.get("ready") == "1", attrs
    assert "js-errors" not in attrs, attrs
    n_img = page["text"].count("<img")
    assert n_img >= 2 + 1  # two plots + at least one image group
    assert int(attrs["images"]) == n_img and int(attrs["decoded"]) == n_img, attrs
    m = re.search(r'<pre id="harness">(.*?)</pre>', r.stdout, re.S)
    assert m, "rating harness did not run"
    got = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert got["ratings"]["kind"] == "skugen-ratings" and got["ratings"]["rated"] == 1
    assert [x["score"] for x in got["ratings"]["ratings"] if x["score"] is not None] == [4]
    assert got["download"]["href"].startswith("blob:") and got["download"]["download"] == "skugen-ratings.json"


@need_chromium
def test_console_error_detection_works(tmp_path):
    """Negative control: a page that throws is caught by the same checks."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>window.addEventListener('error', function(){"
                   "document.body.dataset.jsErrors='1';});</script><script>undefinedFunction();</script></body></html>")
    r = _chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom", bad.as_uri()],
                  tmp_path)
    assert _console_errors(r.stderr) or _body_attrs(r.stdout).get("js-errors") == "1"


@need_chromium
def test_screenshot_is_a_real_png(page, tmp_path):
    shot = tmp_path / "shot.png"
    r = _chromium(["--window-size=1280,2000", "--virtual-time-budget=10000", f"--screenshot={shot}",
                   page["html"].as_uri()], tmp_path)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        import numpy as np

        px = np.asarray(im.convert("L"), dtype=np.float64)
        assert px.max() - px.min() > 200 and px.std() > 10, "screenshot is blank"
        assert (px < 128).mean() > 0.01, "no text or images drawn"
    keep = page["run"]["dir"] / "screenshot.png"
    shutil.copyfile(shot, keep)  # for a human look (the path is in the test log with -rA)
    print(f"screenshot: {keep}")
