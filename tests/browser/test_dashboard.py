"""The dashboard in a real Chromium against a real ``tensorboard`` process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import FRAME, open_dashboard
from tests.browser.planted import (
    DEAD_FROM_START,
    GRAD_STARVED,
    KILLED_AT,
    REVIVAL_STEP,
    REVIVED_UNITS,
    STEPS,
    UNITS_A,
    XSS_RUN,
)
from tests.support import EventWriter, relu_batch, tensorboard_server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEAD_RGB = (235, 28, 52)
# Counts the heat map's pixels of one exact colour (the dead cells' red).
_COUNT_RGB = """(c, rgb) => {
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let hit = 0, blank = 0, other = 0;
  const colours = new Set();
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] === 0) blank++;
    else if (d[i] === rgb[0] && d[i + 1] === rgb[1] && d[i + 2] === rgb[2]) hit++;
    else { other++; colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
  }
  return {dead: hit, blank, other, colours: colours.size};
}"""


def layer_view(frame, run, tag):
    return frame.locator(
        f'[data-testid=layer-view][data-run="{run}"][data-tag="{tag}"]'
    )


def table_rows(view):
    rows = view.locator("[data-testid=dead-table] tbody tr")
    return [[c.strip() for c in r.locator("td").all_inner_texts()] for r in rows.all()]


def test_layer_list_and_dead_table_match_planted_dead_units(page, tb_url, planted):
    frame, _ = open_dashboard(page, tb_url)
    items = frame.locator("[data-testid=layer-item]")
    expect(items.first).to_have_attribute("data-tag", "dense_a")
    expect(items.first.locator("[data-testid=layer-counts]")).to_contain_text(
        f"7 / {UNITS_A} dead"
    )
    healthy = frame.locator('[data-testid=layer-item][data-tag="dense_b"]')
    expect(healthy.locator("[data-testid=layer-counts]")).to_contain_text("0 / 16 dead")

    view = layer_view(frame, "planted", "dense_a")
    expect(view.locator(".table-caption")).to_have_text(
        f"7 of {UNITS_A} units dead at the last snapshot"
    )
    rows = table_rows(view)
    got = {int(r[0]): int(r[1]) for r in rows}
    expected = {u: STEPS[0] for u in DEAD_FROM_START} | KILLED_AT
    assert got == expected
    assert all(r[2] == "no" for r in rows)


def test_heatmap_is_drawn_with_dead_cells_in_their_share(page, tb_url):
    frame, f = open_dashboard(page, tb_url)
    canvas = layer_view(frame, "planted", "dense_a").locator("[data-testid=heatmap]")
    expect(canvas).to_be_visible()
    counts = canvas.evaluate(_COUNT_RGB, list(DEAD_RGB))
    total = counts["dead"] + counts["blank"] + counts["other"]
    assert counts["blank"] == 0
    assert counts["colours"] > 5, "active cells should be shaded by active share"
    # 4 units dead at all 40 snapshots + units dead from steps 100, 200, 300.
    dead_cells = len(DEAD_FROM_START) * len(STEPS) + sum(
        sum(1 for s in STEPS if s >= k) for k in KILLED_AT.values()
    )
    # A dashed outline of a selected unit could cover a row; none is selected.
    assert counts["dead"] / total == pytest.approx(
        dead_cells / (UNITS_A * len(STEPS)), abs=0.01
    )


def test_hovering_heatmap_shows_unit_and_step_and_click_shows_curve(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    view = layer_view(frame, "planted", "dense_a")
    canvas = view.locator("[data-testid=heatmap]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # Rows are ordered by died-at step: the top row is unit 3 (dead from step 0).
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + 2)
    tooltip = frame.locator("[data-testid=tooltip]")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text(f"unit 3 · step {STEPS[-1]}")
    expect(tooltip).to_contain_text("state: dead")
    expect(tooltip).to_contain_text("mean |a| 0")  # statistics from ./unit

    # Unit 5 died at step 100: the 5th row from the top.
    row_h = box["height"] / UNITS_A
    page.mouse.move(box["x"] + 2, box["y"] + row_h * 4.5)
    expect(tooltip).to_contain_text(f"unit 5 · step {STEPS[0]}")
    expect(tooltip).to_contain_text("state: active")
    page.mouse.click(box["x"] + 2, box["y"] + row_h * 4.5)
    chart = view.locator("[data-testid=unit-chart]")
    expect(chart).to_have_attribute("data-unit", "5")
    expect(chart).to_contain_text("died at 100")
    paths = chart.locator("svg.spark path")
    assert paths.count() >= 4
    assert all(
        len(d or "") > 20
        for d in paths.evaluate_all("ps => ps.map(p => p.getAttribute('d'))")
    )


def test_changing_tau_changes_the_dormant_counts(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    view = layer_view(frame, "planted", "dense_a")
    caption = view.locator(".table-caption")
    expect(caption).to_contain_text("7 of 32 units dead")
    frame.locator("[data-testid=definition]").select_option("dormant")
    frame.locator("[data-testid=tau]").select_option("0.025")
    expect(caption).to_have_text(
        "7 of 32 units dormant (τ = 0.025) at the last snapshot"
    )
    counts = frame.locator(
        '[data-testid=layer-item][data-tag="dense_a"] [data-testid=layer-counts]'
    )
    expect(counts).to_contain_text("7 dormant")
    frame.locator("[data-testid=tau]").select_option("0.1")
    # The two quiet units (ReDo score ~0.035) are dormant at tau 0.1.
    expect(caption).to_have_text("9 of 32 units dormant (τ = 0.1) at the last snapshot")
    expect(counts).to_contain_text("9 dormant")
    readout = frame.locator('[data-testid=readout-layer][data-tag="dense_a"]')
    expect(readout).to_contain_text("9 dormant")
    units = {int(r[0]) for r in table_rows(view)}
    assert units == set(DEAD_FROM_START) | set(KILLED_AT) | {1, 2}
    frame.locator("[data-testid=tau]").select_option("custom")
    custom = frame.locator("[data-testid=tau-custom]")
    custom.fill("0")
    custom.press("Enter")
    expect(caption).to_have_text("7 of 32 units dormant (τ = 0) at the last snapshot")


def test_run_named_like_html_is_shown_as_text_without_dialog(page, tb_url):
    frame, f = open_dashboard(page, tb_url)
    run_item = frame.locator(
        f'[data-testid=runs] .run-item[data-run="{XSS_RUN}/"]'
    ).or_(frame.locator("[data-testid=runs] .run-item").filter(has_text="<img"))
    expect(run_item.first).to_contain_text(XSS_RUN)
    panel = frame.locator("[data-testid=run-panel] .run-title").filter(has_text="<img")
    expect(panel).to_have_text(XSS_RUN)
    assert f.locator("img").count() == 0
    page.wait_for_timeout(500)
    assert not page.problems.dialogs


def test_run_without_loss_says_so_and_still_shows_deaths(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    panel = frame.locator("[data-testid=run-panel]").filter(
        has=frame.locator(".run-title", has_text="<img")
    )
    expect(panel.locator("[data-testid=loss-note]")).to_contain_text("No loss logged")
    expect(panel.locator("[data-testid=readout-layer]")).to_contain_text("1 dead")
    planted_panel = frame.locator('[data-testid=run-panel][data-run="planted"]')
    expect(planted_panel.locator("[data-testid=readout-loss]")).to_contain_text("loss")
    expect(planted_panel.locator("path.loss-line")).to_have_count(1)


def test_revivals_are_marked_on_timeline_and_heatmap(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    panel = frame.locator('[data-testid=run-panel][data-run="planted"]')
    marker = panel.locator(f'svg g.revival[data-step="{REVIVAL_STEP}"]')
    expect(marker).to_have_count(1)
    expect(marker.locator("title")).to_have_text(
        f"step {REVIVAL_STEP}: {len(REVIVED_UNITS)} units of dense_b re-initialised"
    )
    expect(
        layer_view(frame, "planted", "dense_b").locator(".revival-mark")
    ).to_have_count(1)
    expect(
        layer_view(frame, "planted", "dense_a").locator(".revival-mark")
    ).to_have_count(0)


def test_heatmap_redraws_on_resize_and_after_tab_switch(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    canvas = layer_view(frame, "planted", "dense_a").locator("[data-testid=heatmap]")
    expect(canvas).to_be_visible()

    def width_becomes(predicate, what):
        deadline = time.monotonic() + 15
        while not predicate(canvas.evaluate("c => c.width")):
            assert time.monotonic() < deadline, f"heat map never redrew {what}"
            page.wait_for_timeout(100)

    wide = canvas.evaluate("c => c.width")
    page.set_viewport_size({"width": 1200, "height": 900})
    width_becomes(lambda w: w != wide, "after a resize")
    # Resized while another tab hides the iframe: redrawn when shown again.
    page.goto(page.url.replace("#deadneurons", "#scalars"))
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(page.url.replace("#scalars", "#deadneurons"))
    expect(canvas).to_be_visible()
    width_becomes(lambda w: w == wide, "when its tab came back")


@pytest.fixture(scope="module")
def live_logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("live")
    return str(logdir)


def test_dashboard_works_under_path_prefix_and_shows_new_snapshots(page, live_logdir):
    import numpy as np

    rng = np.random.default_rng(1)
    run_dir = os.path.join(live_logdir, "growing")
    with EventWriter(run_dir) as w:
        for step in range(0, 100, 10):
            w.snapshot(
                "dense", step, relu_batch(rng, 64, 12, dead=[4]), activation="relu"
            )
    with tensorboard_server(live_logdir, "--path_prefix=/tb") as base:
        assert base.endswith("/tb")
        frame, _ = open_dashboard(page, base)
        view = layer_view(frame, "growing", "dense")
        expect(view.locator(".layer-head")).to_contain_text("10 snapshots")
        # No layer logged gradients: "gradient-negligible" is not offered.
        definition = frame.locator("[data-testid=definition]")
        expect(definition.locator("option")).to_have_count(2)
        expect(view.locator("[data-testid=heatmap]")).to_be_visible()
        view.locator("[data-testid=heatmap]").click(position={"x": 3, "y": 3})
        expect(view.locator("[data-testid=unit-chart]")).to_be_visible()
        page.mouse.wheel(0, 200)
        with EventWriter(run_dir) as w:
            for step in range(100, 200, 10):
                w.snapshot(
                    "dense",
                    step,
                    relu_batch(rng, 64, 12, dead=[4, 9]),
                    activation="relu",
                )
        deadline = time.monotonic() + 30
        while "20 snapshots" not in view.locator(".layer-head").inner_text():
            assert time.monotonic() < deadline, "new snapshots never appeared"
            frame.locator("[data-testid=refresh]").click()
            page.wait_for_timeout(1000)
        expect(view.locator(".table-caption")).to_contain_text("2 of 12 units dead")
        # The selection (run, layer, picked unit) survived the update.
        expect(view.locator("[data-testid=unit-chart]")).to_be_visible()
        expect(
            frame.locator('[data-testid=layer-item][data-tag="dense"] input')
        ).to_be_checked()
        page.goto("about:blank")


def test_screenshot_of_demo_logs_shows_dying_run_worse_than_healthy(
    page, tmp_path_factory
):
    logdir = str(tmp_path_factory.mktemp("demo"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tb_deadneurons.cli",
            "demo",
            "--logdir",
            logdir,
            "--no-serve",
            "--epochs",
            "6",
        ],
        check=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        timeout=240,
    )
    with tensorboard_server(logdir) as base:
        frame, _ = open_dashboard(page, base)
        for run in ("dying/train", "healthy/train"):
            expect(
                layer_view(frame, run, "hidden1").locator("[data-testid=heatmap]")
            ).to_be_visible()

        def dead(run):
            item = frame.locator(
                f'[data-testid=layer-item][data-run="{run}"][data-tag="hidden1"]'
            )
            return int(item.get_attribute("data-dead"))

        assert dead("dying/train") > 2 * dead("healthy/train")

        def red_share(run):
            canvas = layer_view(frame, run, "hidden1").locator("[data-testid=heatmap]")
            c = canvas.evaluate(_COUNT_RGB, list(DEAD_RGB))
            return c["dead"] / (c["dead"] + c["other"] + c["blank"])

        # What was drawn, not only what was listed: the dying run's heat map
        # holds more dead cells than the healthy one's.
        assert red_share("dying/train") > max(2 * red_share("healthy/train"), 0.01)
        page.wait_for_timeout(500)
        os.makedirs(os.path.join(REPO, "artifacts"), exist_ok=True)
        page.screenshot(path=os.path.join(REPO, "artifacts", "dashboard.png"))
        # The README's copy is tracked: rewritten only when asked, never
        # created by a test run.
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            page.screenshot(path=os.path.join(REPO, "docs", "screenshot.png"))
        page.goto("about:blank")  # no poll may reach the server once it is gone


def test_empty_logdir_shows_snippet_then_runs_once_logged(page, tmp_path_factory):
    import numpy as np

    logdir = str(tmp_path_factory.mktemp("empty"))
    with tensorboard_server(logdir) as base:
        page.goto(base + "/#deadneurons")
        frame = page.frame_locator(FRAME)
        empty = frame.locator("[data-testid=empty]")
        expect(empty).to_contain_text(
            'cb = tb_deadneurons.DeadNeuronCallback("logs", probe_data=x_val[:256])'
        )
        expect(empty).to_contain_text("model.fit(..., callbacks=[cb])")
        rng = np.random.default_rng(2)
        with EventWriter(os.path.join(logdir, "late")) as w:
            for step in range(0, 50, 10):
                w.snapshot("dense", step, relu_batch(rng, 32, 6, dead=[1]))
        deadline = time.monotonic() + 30
        panel = frame.locator('[data-testid=run-panel][data-run="late"]')
        while not panel.count():
            assert time.monotonic() < deadline, "the logged run never appeared"
            frame.locator("[data-testid=refresh]").click()
            page.wait_for_timeout(1000)
        expect(
            layer_view(frame, "late", "dense").locator(".table-caption")
        ).to_contain_text("1 of 6 units dead")
        expect(empty).to_have_count(0)

    # The server is gone: the failed request is named, the drawn data stays usable.
    page.problems.allow("ERR_CONNECTION_REFUSED")
    frame.locator("[data-testid=refresh]").click()
    error = frame.locator(".banner [data-testid=error]")
    expect(error).to_contain_text("Request ./runs failed")
    expect(error).to_contain_text("network error")
    canvas = layer_view(frame, "late", "dense").locator("[data-testid=heatmap]")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    expect(frame.locator("[data-testid=tooltip]")).to_contain_text("unit 1 · step 0")


def test_dead_units_export_as_csv_and_json(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    view = layer_view(frame, "planted", "dense_a")
    expect(view.locator(".table-caption")).to_contain_text("7 of 32")
    with page.expect_download() as dl:
        view.locator("[data-testid=export-csv]").click()
    assert dl.value.suggested_filename == "deadneurons-planted-dense_a.csv"
    lines = open(dl.value.path(), encoding="utf-8").read().splitlines()
    assert lines[0] == (
        "run,tag,unit,died_at,revived,dormant_score_now,grad_dormant_now,definition,tau"
    )
    expected = {u: STEPS[0] for u in DEAD_FROM_START} | KILLED_AT
    got = {int(f[2]): int(f[3]) for f in (line.split(",") for line in lines[1:])}
    assert got == expected
    with page.expect_download() as dl:
        view.locator("[data-testid=export-json]").click()
    body = json.loads(open(dl.value.path(), encoding="utf-8").read())
    assert body["run"] == "planted" and body["thresholds"]["definition"] == "dead"
    assert {r["unit"]: r["died_at"] for r in body["dead_units"]} == expected
    # dense_a logs no gradients: the column is null, not "no".
    assert all(r["grad_dormant_now"] is None for r in body["dead_units"])


def test_layer_filter_and_index_order(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    frame.locator("[data-testid=layer-filter]").fill("dense_b")
    items = frame.locator("[data-testid=layer-item]")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-tag", "dense_b")
    frame.locator("[data-testid=layer-filter]").fill("")
    expect(items).to_have_count(3)

    frame.locator("[data-testid=order]").select_option("index")
    canvas = layer_view(frame, "planted", "dense_a").locator("[data-testid=heatmap]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    expect(frame.locator("[data-testid=tooltip]")).to_contain_text("unit 0 · step 0")


def test_gradient_negligible_units_are_offered_drawn_listed_and_exported(page, tb_url):
    # dense_a and the other run's layer have no gradient row: ./timeline
    # answers 400 for them under this definition.
    page.problems.allow("status of 400")
    frame, _ = open_dashboard(page, tb_url)
    view_b = layer_view(frame, "planted", "dense_b")
    expect(view_b.locator("[data-testid=heatmap]")).to_be_visible()
    expect(view_b.locator(".heatmap-legend")).to_contain_text("gradient-negligible")
    expect(
        layer_view(frame, "planted", "dense_a").locator(".heatmap-legend")
    ).not_to_contain_text("gradient-negligible")
    frame.locator("[data-testid=definition]").select_option("grad_dormant")
    expect(view_b.locator(".table-caption")).to_have_text(
        f"{len(GRAD_STARVED)} of 16 units gradient-negligible (τ = 0.1)"
        " at the last snapshot"
    )
    rows = table_rows(view_b)
    assert {int(r[0]) for r in rows} == set(GRAD_STARVED)
    assert all(r[4] == "yes" for r in rows)
    expect(
        layer_view(frame, "planted", "dense_a").locator("[data-testid=no-gradients]")
    ).to_contain_text("grad_mean_abs")

    # Rows by died-at step: the starved units (from the first step) on top.
    canvas = view_b.locator("[data-testid=heatmap]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + 2)
    tooltip = frame.locator("[data-testid=tooltip]")
    expect(tooltip).to_contain_text(f"unit {GRAD_STARVED[0]} · step {STEPS[-1]}")
    expect(tooltip).to_contain_text("state: active")
    expect(tooltip).to_contain_text("gradient-negligible")
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2)
    expect(tooltip).not_to_contain_text("gradient-negligible")

    with page.expect_download() as dl:
        view_b.locator("[data-testid=export-csv]").click()
    lines = open(dl.value.path(), encoding="utf-8").read().splitlines()
    header = lines[0].split(",")
    assert header[-3:] == ["grad_dormant_now", "definition", "tau"]
    got = {
        int(f[2]): f[header.index("grad_dormant_now")]
        for f in map(lambda line: line.split(","), lines[1:])
    }
    assert got == {u: "true" for u in GRAD_STARVED}


def test_mean_abs_toggle_draws_each_layers_mean_activation(page, tb_url):
    frame, _ = open_dashboard(page, tb_url)
    panel = frame.locator('[data-testid=run-panel][data-run="planted"]')
    lines = panel.locator("path.mean-abs-line")
    expect(panel.locator("path.dead-line")).to_have_count(2)
    expect(lines).to_have_count(0)
    frame.locator("[data-testid=show-mean-abs]").check()
    expect(lines).to_have_count(2)
    d = panel.locator('path.mean-abs-line[data-tag="dense_a"]').get_attribute("d")
    ys = [float(p.split(",")[1]) for p in re.findall(r"[ML]([\d.]+,[\d.]+)", d)]
    assert len(ys) == len(STEPS)
    # dense_a loses units at steps 100, 200 and 300: its mean |a| falls, so
    # the line ends lower (larger y) than it starts.
    assert ys[-1] > ys[0]
    readout = frame.locator('[data-testid=readout-layer][data-tag="dense_a"]')
    expect(readout).to_contain_text("mean |a|")
    frame.locator("[data-testid=show-mean-abs]").uncheck()
    expect(lines).to_have_count(0)
