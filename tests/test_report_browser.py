"""report.html in headless Chromium: it loads with no errors, shows the summary table and every image."""

import html
import json
import re
import shutil
import subprocess

import pytest
from test_compare import GOLD, A, B, align

from cotdistill.eval.compare import compare_systems
from cotdistill.eval.report import write_report
from cotdistill.records import Prediction

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

# Injected into a copy of the page (the report itself has no scripts): records every error event (resource
# errors included, in the capture phase) and console.error call, then, once loaded, what the page shows.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.src) || 'error')), true);
const origError = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); origError(...a); };
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const out = {errors: window.__errors, images: imgs.length,
               broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
               summaryRows: document.querySelectorAll('#summary tbody tr').length,
               external: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !u.startsWith('data:'))};
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def probe_page(page: str, probe_script: str, tmp_path) -> dict:
    """Load ``page`` (HTML text) with ``probe_script`` injected into its head in headless Chromium; the JSON
    the script leaves in ``<pre id="probe">``."""
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + probe_script, 1), encoding="utf-8")
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, f"the page did not finish loading: {dom.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package 'chromium')")
def test_report_html_in_chromium(tmp_path):
    systems = [
        align(GOLD, [Prediction(g.id, n, a, raw="") for g, a in zip(GOLD, ans, strict=True)], source=n)
        for n, ans in (("teacher", A), ("student", B))
    ]
    result = compare_systems("mner", GOLD, systems, ["LOC", "ORG", "PER"], resamples=100)
    files = write_report(result, tmp_path / "report", {"command": "cotdistill compare ..."})
    page = files["html"].read_text(encoding="utf-8")
    probe = probe_page(page, PROBE, tmp_path)
    profile = tmp_path / "profile"
    assert probe["errors"] == [] and probe["broken"] == [] and probe["external"] == []
    assert probe["images"] == 4 and probe["summaryRows"] == 2  # summary, per label, agreement, errors
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            files["html"].as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
