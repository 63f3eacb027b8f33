"""Dashboard rendering times in headless Chromium (a script, not a test).

1. Heat map: from a parsed ./timeline response in hand to the canvas drawn
   (base64 decode, row order, ImageData fill, scaled blit), timed in the page
   with performance.now() for 4,096 units x 500 snapshots; target <= 150 ms.
   Side by side, the same cells drawn with one fillRect per cell, the
   approach the ImageData path replaces.
2. Timeline: request + draw time of the demo's largest layer in the real
   dashboard inside a real ``tensorboard`` (the page's own performance
   measure "deadneurons timeline <run>/<tag>", from fetch start to drawn).

Usage: python benchmarks/render.py [--logdir DIR]  (DIR: demo logs; trained
with ``tb_deadneurons.demo.train`` into a temporary folder when omitted).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
from playwright.sync_api import sync_playwright

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.support import tensorboard_server  # noqa: E402

STATIC = os.path.join(REPO, "static")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
FRAME = 'iframe[src*="plugin_entry.html?name=deadneurons"]'
UNITS, STEPS = 4096, 500

PAGE = """<!doctype html><meta charset="utf-8"><body style="margin:0">
<div id="host" style="width:1000px"></div>
<script type="module">
import { HeatMap, PALETTE } from "./static/heatmap.js";
import { decodeMatrix } from "./static/matrix.js";
const timeline = await (await fetch("./timeline.json")).json();
const host = document.getElementById("host");
const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
window.drawImageData = async (order) => {
  host.replaceChildren();
  const t0 = performance.now();
  const hm = new HeatMap({ onHover() {}, onPick() {} });
  host.append(hm.root);
  const matrix = decodeMatrix(timeline);
  const t1 = performance.now();
  hm.setData(timeline, matrix, order);
  const t2 = performance.now();
  hm.draw(1000);
  hm.canvas.getContext("2d").getImageData(0, 0, 1, 1);  // flush the canvas
  const t3 = performance.now();
  await frame();
  const t4 = performance.now();
  return { decode: t1 - t0, paint: t2 - t1, blit: t3 - t2, drawn: t3 - t0,
           next_frame: t4 - t0 };
};
window.drawFillRect = async () => {
  host.replaceChildren();
  const t0 = performance.now();
  const { units, steps, bytes } = decodeMatrix(timeline);
  const canvas = document.createElement("canvas");
  canvas.width = 1000;
  canvas.height = units;
  host.append(canvas);
  const ctx = canvas.getContext("2d");
  const w = 1000 / steps;
  for (let u = 0; u < units; u++) {
    for (let t = 0; t < steps; t++) {
      const c = PALETTE[bytes[u * steps + t]];
      ctx.fillStyle = `rgb(${c & 255},${(c >> 8) & 255},${(c >> 16) & 255})`;
      ctx.fillRect(t * w, u, w, 1);
    }
  }
  ctx.getImageData(0, 0, 1, 1);
  return { drawn: performance.now() - t0 };
};
window.ready = true;
</script>"""


def synthetic_timeline(units: int, steps: int) -> dict:
    """A ./timeline body: a third of the units die at random snapshots."""
    rng = np.random.default_rng(0)
    share = rng.integers(1, 64, size=(units, steps), dtype=np.uint8)
    died = np.where(rng.random(units) < 0.33, rng.integers(0, steps, units), steps)
    dead = np.arange(steps)[None, :] >= died[:, None]
    cells = np.where(dead, np.uint8(2 << 6), share).astype(np.uint8)
    step_values = list(range(0, steps * 50, 50))
    return {
        "run": "bench",
        "tag": "dense",
        "units": units,
        "steps": step_values,
        "died_at": [step_values[d] if d < steps else None for d in died.tolist()],
        "matrix": {
            "encoding": "base64",
            "shape": [units, steps],
            "order": "unit-major",
            "data": base64.b64encode(cells.tobytes()).decode("ascii"),
        },
    }


@functools.cache
def _quiet_handler(directory: str):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *args):
            pass

    return Handler


def bench_heatmap(browser, repeats: int = 9) -> None:
    with tempfile.TemporaryDirectory() as root:
        shutil.copytree(STATIC, os.path.join(root, "static"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write(PAGE)
        with open(os.path.join(root, "timeline.json"), "w") as f:
            json.dump(synthetic_timeline(UNITS, STEPS), f)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _quiet_handler(root))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
            page.wait_for_function("window.ready === true", timeout=60000)
            page.evaluate("drawImageData('died')")  # warm-up (JIT, caches)
            runs = {
                order: [
                    page.evaluate(f"drawImageData('{order}')") for _ in range(repeats)
                ]
                for order in ("died", "index")
            }
            naive = page.evaluate("drawFillRect()")["drawn"]
            page.close()
        finally:
            server.shutdown()
    print(
        f"Heat map, {UNITS} units x {STEPS} snapshots ({UNITS * STEPS:,} cells), "
        f"canvas 1000 px wide, median of {repeats}:"
    )
    for order, samples in runs.items():
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        worst = max(s["drawn"] for s in samples)
        print(
            f"  rows by {order:5s}: data in hand -> drawn {med['drawn']:6.1f} ms "
            f"(decode {med['decode']:.1f}, order+ImageData {med['paint']:.1f}, "
            f"scale+outline {med['blit']:.1f}; worst {worst:.1f}); "
            f"to next frame {med['next_frame']:.1f} ms  [target <= 150 ms]"
        )
    med = statistics.median(s["drawn"] for s in runs["died"])
    print(
        f"  one fillRect per cell, same cells: {naive:.0f} ms "
        f"-> ImageData path is {naive / med:.0f}x faster"
    )


def bench_timeline(browser, logdir: str, repeats: int = 5) -> None:
    with tensorboard_server(logdir) as base:
        runs = json.load(urllib.request.urlopen(base + "/data/plugin/deadneurons/runs"))
        run, layer = max(
            ((r["run"], lay) for r in runs["runs"] for lay in r["layers"]),
            key=lambda p: p[1]["units"] * p[1]["snapshots"],
        )
        tag = layer["tag"]
        query = urllib.parse.urlencode({"run": run, "tag": tag, "tau": 0.1})
        server_ms = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            body = urllib.request.urlopen(
                f"{base}/data/plugin/deadneurons/timeline?{query}"
            ).read()
            server_ms.append((time.perf_counter() - t0) * 1000)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(base + "/#deadneurons")
        frame = page.frame_locator(FRAME)
        frame.locator("[data-testid=layer-item]").first.wait_for(timeout=60000)
        # Keep only the largest layer of one run selected.
        for item in frame.locator("[data-testid=layer-item]").all():
            box = item.locator("input")
            want = (
                item.get_attribute("data-run") == run
                and item.get_attribute("data-tag") == tag
            )
            if box.is_checked() != want:
                box.click()
        for other in frame.locator("[data-testid=runs] .run-item").all():
            if (
                other.get_attribute("data-run") != run
                and other.locator("input").is_checked()
            ):
                other.locator("input").click()
        f = page.locator(FRAME).element_handle().content_frame()
        name = f"deadneurons timeline {run}/{tag}"
        samples = []
        taus = ["0.025", "0.1"]
        for i in range(repeats):
            f.evaluate("performance.clearMeasures()")
            frame.locator("[data-testid=tau]").select_option(taus[i % 2])
            f.wait_for_function(
                "n => performance.getEntriesByName(n).length > 0",
                arg=name,
                timeout=30000,
            )
            samples.append(
                f.evaluate("n => performance.getEntriesByName(n)[0].duration", name)
            )
        page.close()
    print(
        f"Timeline, demo's largest layer {run}/{tag} ({layer['units']} units x "
        f"{layer['snapshots']} snapshots, {len(body):,} bytes of JSON), "
        f"median of {repeats}:"
    )
    print(
        f"  request + draw in the dashboard: {statistics.median(samples):.1f} ms "
        f"(min {min(samples):.1f}, max {max(samples):.1f})"
    )
    print(
        "  the request alone (urllib, same server): "
        f"{statistics.median(server_ms):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--logdir", help="demo logs (trained into a temp dir if omitted)"
    )
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        print(f"Chromium {browser.version}, headless, --disable-gpu")
        bench_heatmap(browser)
        if args.logdir:
            bench_timeline(browser, args.logdir)
        else:
            from tb_deadneurons import demo

            with tempfile.TemporaryDirectory() as logdir:
                demo.train(logdir)
                bench_timeline(browser, logdir)
        browser.close()


if __name__ == "__main__":
    main()
