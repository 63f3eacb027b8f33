"""Issue 19 (compare view, honest axes, selection, words, input, layout) and
issue 17 item 5 (CSV exports, long names) in a real Chromium against a real
``tensorboard`` process."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_dashboard
from tests.browser.sweep import (
    DEAD_AGAIN,
    HOSTILE_RUNS,
    HOSTILE_TAG,
    LONG_NAME_LENGTH,
    LONG_STEPS,
    REVIVED_AT,
    REVIVED_UNIT,
    SATURATED,
    SWEEP,
    UNITS,
    sweep_run,
    write_hostile,
    write_lengths,
    write_sweep,
)
from tests.browser.test_dashboard import layer_view
from tests.support import tensorboard_server

# TensorBoard 2.21's default run palette, in its order (its webapp's settings).
TB_PALETTE = [
    "#425066",
    "#12b5cb",
    "#e52592",
    "#f9ab00",
    "#9334e6",
    "#7cb342",
    "#e8710a",
]


@pytest.fixture(scope="module")
def sweep_url(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("sweep"))
    write_sweep(logdir)
    with tensorboard_server(logdir) as base:
        yield base


@pytest.fixture(scope="module")
def lengths_url(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("lengths"))
    write_lengths(logdir)
    with tensorboard_server(logdir) as base:
        yield base


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _hover_step(page, svg, step, x0, x1, left=48, right=58):
    box = svg.bounding_box()
    x = box["x"] + left + (box["width"] - left - right) * (step - x0) / (x1 - x0)
    page.mouse.move(x, box["y"] + box["height"] / 2)


def test_compare_chart_draws_one_line_per_run_in_tensorboards_colours(page, sweep_url):
    frame, _ = open_dashboard(page, sweep_url)
    view = frame.locator("[data-testid=compare-view]")
    expect(view).to_be_visible()
    expect(view.locator("[data-testid=compare-tag]")).to_have_value("dense")
    lines = view.locator("path.compare-line")
    expect(lines).to_have_count(3)
    with urllib.request.urlopen(sweep_url + "/data/runs") as r:
        tb_runs = json.load(r)
    for lr in SWEEP:
        run = sweep_run(lr)
        line = view.locator(f'path.compare-line[data-run="{run}"]')
        want = TB_PALETTE[tb_runs.index(run) % len(TB_PALETTE)]
        assert line.get_attribute("stroke") == want
        # The loss, smoothed as the Scalars dashboard draws it, in the same colour.
        loss = view.locator(f'path.compare-loss[data-run="{run}"]')
        assert loss.get_attribute("stroke") == want
    svg = view.locator("[data-testid=compare-chart]")
    readout = view.locator("[data-testid=compare-readout]")
    for step in (50, 100, 150):
        _hover_step(page, svg, step, 0, 200)
        for lr, dead in SWEEP.items():
            n = sum(1 for s in dead.values() if step >= s)
            item = readout.locator(f'[data-run="{sweep_run(lr)}"]')
            expect(item).to_contain_text(f"({n} / {UNITS}) @{step}")


def test_runs_table_sorts_by_dead_share_and_shows_hparams(page, sweep_url):
    frame, _ = open_dashboard(page, sweep_url)
    table = frame.locator("[data-testid=runs-table]")
    expect(table.locator("tbody tr")).to_have_count(3)
    worst_first = [sweep_run(lr) for lr in sorted(SWEEP, key=lambda x: -len(SWEEP[x]))]

    def order():
        return table.locator("tbody tr").evaluate_all(
            "rs => rs.map(r => r.dataset.run)"
        )

    assert order() == worst_first
    table.locator('th button[data-column="layer:dense"]').click()
    expect(table.locator("tbody tr").first).to_have_attribute(
        "data-run", worst_first[-1]
    )
    assert order() == worst_first[::-1]
    table.locator('th button[data-column="hp:learning_rate"]').click()
    # The table redraws after the click: wait for it before reading the order
    # (read at once, CI once saw the previous sort's rows).
    by_lr = [sweep_run(lr) for lr in sorted(SWEEP, reverse=True)]
    assert by_lr[0] != worst_first[-1]  # else the wait below proves nothing
    expect(table.locator("tbody tr").first).to_have_attribute("data-run", by_lr[0])
    assert order() == by_lr
    row = table.locator(f'tbody tr[data-run="{sweep_run(0.1)}"]')
    expect(row).to_contain_text("0.1")
    expect(row).to_contain_text("60%")  # 12 of 20 dead now
    expect(row).to_contain_text("died 0–100 (median 50)")


def _step_ticks(panel):
    ticks = panel.locator("svg[data-testid=timeline] text.step-tick")
    return ticks.evaluate_all("ts => ts.map(t => t.textContent.trim())")


def test_each_card_has_its_own_integer_step_axis_and_the_toggle_shares_it(
    page, lengths_url
):
    frame, _ = open_dashboard(page, lengths_url)
    short = frame.locator('[data-testid=run-panel][data-run="short"]')
    long = frame.locator('[data-testid=run-panel][data-run="long"]')
    expect(short.locator("path.dead-line")).to_have_count(1)
    expect(long.locator("path.dead-line")).to_have_count(2)
    assert _step_ticks(short) == ["0", "1"]
    ticks = [int(t) for t in _step_ticks(long)]
    assert ticks[0] == 0 and ticks[-1] == LONG_STEPS[-1]
    frame.locator("[data-testid=shared-steps]").check()
    expect(short.locator("text.step-tick").last).to_have_text(str(LONG_STEPS[-1]))
    assert all(re.fullmatch(r"\d+", t) for t in _step_ticks(short))
    # The choice is in the URL hash.
    assert "shared=1" in frame.locator("body").evaluate("() => location.hash")


def test_cards_share_one_share_axis(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)

    def top_label(run):
        panel = frame.locator(f'[data-testid=run-panel][data-run="{run}"]')
        expect(panel.locator("path.dead-line").first).to_be_attached()
        ticks = panel.locator("svg[data-testid=timeline] text.tick")
        texts = ticks.evaluate_all("ts => ts.map(t => t.textContent)")
        return [t for t in texts if t.endswith("%")][-1]

    # "short" has no dead unit, "long" 20%: both cards end at the same share.
    assert top_label("short") == top_label("long")


def test_axis_title_clears_the_top_tick_and_hover_keeps_the_chart_still(
    page, lengths_url
):
    frame, _ = open_dashboard(page, lengths_url)
    panel = frame.locator('[data-testid=run-panel][data-run="long"]')
    svg = panel.locator("svg[data-testid=timeline]")
    expect(panel.locator("path.dead-line")).to_have_count(2)
    boxes = svg.evaluate(
        """s => [...s.querySelectorAll('text')].map(t => {
          const b = t.getBBox();
          return [t.getAttribute('class'), b.x, b.y, b.width, b.height];
        })"""
    )
    titles = [b for b in boxes if b[0] == "axis-label"]
    ticks = [b for b in boxes if b[0] == "tick"]

    def overlap(a, b):
        return (
            a[1] < b[1] + b[3]
            and b[1] < a[1] + a[3]
            and a[2] < b[2] + b[4]
            and b[2] < a[2] + a[4]
        )

    assert not [(a, b) for a in titles for b in ticks if overlap(a, b)]
    before = svg.bounding_box()
    for x in (0.1, 0.5, 0.9):
        page.mouse.move(before["x"] + before["width"] * x, before["y"] + 100)
        page.wait_for_timeout(100)
        assert svg.bounding_box()["y"] == before["y"]
    page.mouse.move(0, 0)
    assert svg.bounding_box()["y"] == before["y"]


def test_mean_abs_gets_its_own_band_below_the_shares(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    panel = frame.locator('[data-testid=run-panel][data-run="long"]')
    frame.locator("[data-testid=show-mean-abs]").check()
    band = panel.locator("rect.mean-abs-band")
    expect(band).to_have_count(1)
    top = float(band.get_attribute("y"))
    for d in panel.locator("path.mean-abs-line").evaluate_all(
        "ps => ps.map(p => p.getAttribute('d'))"
    ):
        ys = [float(p.split(",")[1]) for p in re.findall(r"[ML]([\d.]+,[\d.]+)", d)]
        assert min(ys) >= top
    dead_ys = re.findall(
        r"[ML][\d.]+,([\d.]+)", panel.locator("path.dead-line").first.get_attribute("d")
    )
    assert max(float(y) for y in dead_ys) < top


def test_heat_map_labels_steps_along_its_columns(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    view = layer_view(frame, "long", "dense")
    labels = view.locator("[data-testid=step-label]")
    expect(labels.first).to_have_text("0")
    expect(labels.last).to_have_text(str(LONG_STEPS[-1]))
    assert labels.count() >= 4
    steps = [int(t) for t in labels.all_inner_texts()]
    assert steps == sorted(steps) and set(steps) <= set(LONG_STEPS)


def test_sparklines_show_their_range_and_the_hovered_value(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    view = layer_view(frame, "long", "dense")
    view.locator("[data-testid=dead-table] tbody tr").first.click()
    chart = view.locator("[data-testid=unit-chart]")
    expect(chart).to_be_visible()
    ranges = chart.locator("[data-testid=spark-range]")
    assert ranges.count() >= 4
    value = chart.locator("[data-testid=spark-value]").first
    expect(value).to_contain_text(f"@{LONG_STEPS[-1]} (last)")
    spark = chart.locator("svg.spark").first
    box = spark.bounding_box()
    page.mouse.move(box["x"] + 4, box["y"] + box["height"] / 2)
    expect(value).to_have_text(re.compile(r"@0$"))


def test_revived_unit_that_died_again_says_both_steps(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    view = layer_view(frame, "long", "dense")
    row = view.locator(f'[data-testid=dead-table] tbody tr[data-unit="{REVIVED_UNIT}"]')
    expect(row).to_contain_text(
        f"revived at {REVIVED_AT}, dead again since {DEAD_AGAIN}"
    )


def test_tooltip_names_the_rule_and_shows_one_active_share(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    frame.locator(
        '[data-testid=layer-item][data-run="long"][data-tag="tanh"] input'
    ).check()
    view = layer_view(frame, "long", "tanh")
    frame.locator("[data-testid=order]").select_option("index")
    canvas = view.locator("[data-testid=heatmap]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    row_h = box["height"] / 6
    tooltip = frame.locator("[data-testid=tooltip]")
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + row_h * (SATURATED + 0.5))
    expect(tooltip).to_contain_text("state: dead (constant output")
    expect(tooltip).to_contain_text("mean |a|")  # ./unit answered
    assert tooltip.inner_text().count("active share") == 1
    expect(tooltip).not_to_contain_text("active share ≈")
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + row_h * 3.5)
    expect(tooltip).to_contain_text("state: dead (never active)")
    label = frame.locator("[data-testid=definition] option[value=dead]")
    expect(label).to_have_text("dead: never active or constant output")


def test_dead_units_count_as_dormant_at_tau_zero(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    frame.locator(
        '[data-testid=layer-item][data-run="long"][data-tag="tanh"] input'
    ).check()
    view = layer_view(frame, "long", "tanh")
    frame.locator("[data-testid=tau]").select_option("0")
    meta = view.locator(".layer-head")
    expect(meta).to_contain_text("(τ = 0)")
    text = meta.inner_text()
    dead, dormant = map(int, re.search(r"(\d+) dead, (\d+) dormant", text).groups())
    assert dead == 2 and dormant >= dead


def test_legend_swatches_show_the_colours_drawn(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    legend = layer_view(frame, "long", "dense").locator(".heatmap-legend")
    dormant = legend.locator(".key", has_text="dormant").locator("i")
    image = dormant.evaluate("i => getComputedStyle(i).backgroundImage")
    # The dormant ramp's two ends (heatmap.js DORMANT_RAMP): brown to amber.
    assert "rgb(92, 58, 10)" in image and "rgb(255, 184, 28)" in image


def test_tau_outside_zero_to_one_is_refused_next_to_the_box(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    frame.locator("[data-testid=tau]").select_option("custom")
    box = frame.locator("[data-testid=tau-custom]")
    error = frame.locator("[data-testid=tau-error]")
    shown = frame.locator("[data-testid=tau-shown]")
    expect(shown).to_have_text("showing τ = 0.1")
    for bad in ("-1", "5", "abc"):
        box.fill(bad)
        box.press("Enter")
        expect(error).to_be_visible()
        expect(error).to_contain_text("τ must be a number from 0 to 1")
        expect(shown).to_have_text("showing τ = 0.1")
    box.fill("0.05")
    box.press("Enter")
    expect(error).to_be_hidden()
    expect(shown).to_have_text("showing τ = 0.05")
    expect(layer_view(frame, "long", "dense").locator(".layer-head")).to_contain_text(
        "(τ = 0.05)"
    )


def test_layer_filter_is_a_regex_that_filters_the_main_view(page, lengths_url):
    frame, _ = open_dashboard(page, lengths_url)
    frame.locator(
        '[data-testid=layer-item][data-run="long"][data-tag="tanh"] input'
    ).check()
    expect(layer_view(frame, "long", "tanh")).to_have_count(1)
    frame.locator("[data-testid=layer-filter]").fill("^den.e$")
    expect(layer_view(frame, "long", "tanh")).to_have_count(0)
    expect(layer_view(frame, "long", "dense")).to_have_count(1)
    expect(frame.locator('[data-testid=layer-item][data-tag="tanh"]')).to_have_count(0)


def test_controls_stay_in_view_and_the_selection_survives_a_reload(page, lengths_url):
    frame, f = open_dashboard(page, lengths_url)
    frame.locator(
        '[data-testid=layer-item][data-run="long"][data-tag="tanh"] input'
    ).check()
    expect(layer_view(frame, "long", "tanh")).to_have_count(1)
    f.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(300)
    assert f.evaluate("() => window.scrollY") > 200
    tau = frame.locator("[data-testid=tau]")
    top = tau.evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < f.evaluate("() => window.innerHeight")
    hash_ = f.evaluate("() => location.hash")
    assert "tanh" in hash_
    f.evaluate("() => location.reload()")
    frame.locator("[data-testid=run-panel]").first.wait_for()
    expect(layer_view(frame, "long", "tanh")).to_have_count(1)


def test_the_runs_with_most_dead_units_are_shown_first(page, tmp_path_factory):
    import os

    import numpy as np

    from tests.support import EventWriter, relu_batch

    logdir = str(tmp_path_factory.mktemp("five"))
    rng = np.random.default_rng(9)
    for i, name in enumerate(["a", "b", "c", "d", "e"]):
        with EventWriter(os.path.join(logdir, name)) as w:
            for step in (0, 10):
                w.snapshot("dense", step, relu_batch(rng, 32, 10, dead=list(range(i))))
    with tensorboard_server(logdir) as base:
        frame, _ = open_dashboard(page, base)
        panels = frame.locator("[data-testid=run-panel]")
        expect(panels).to_have_count(4)
        runs = panels.evaluate_all("ps => ps.map(p => p.dataset.run)")
        assert runs == ["e", "d", "c", "b"]
        page.goto("about:blank")  # no poll may reach the server once it is gone


def test_csv_export_of_hostile_names_holds_no_formula_and_long_names_are_cut(
    page, tmp_path_factory
):
    logdir = str(tmp_path_factory.mktemp("hostile"))
    long_name = write_hostile(logdir)
    with tensorboard_server(logdir) as base:
        frame, _ = open_dashboard(page, base)
        for run in HOSTILE_RUNS:
            item = frame.locator("[data-testid=runs] .run-item").filter(has_text=run)
            box = item.first.locator("input")
            if not box.is_checked():
                box.check()
            quoted = run.replace("\\", "\\\\").replace('"', '\\"')
            view = layer_view(frame, quoted, HOSTILE_TAG)
            expect(view.locator(".table-caption")).to_contain_text("1 of 4")
            with page.expect_download() as dl:
                view.locator("[data-testid=export-csv]").click()
            text = open(dl.value.path(), encoding="utf-8").read()
            cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
            assert cells and not [
                c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
            ], cells
            assert f"'{run}" in cells and f"'{HOSTILE_TAG}" in cells
        entry = frame.locator(f'[data-testid=runs] .run-item[title="{long_name}"]')
        expect(entry).to_have_count(1)
        assert len(entry.get_attribute("title")) == LONG_NAME_LENGTH
        assert entry.bounding_box()["height"] < 40
        page.goto("about:blank")


def test_loss_picker_names_the_default_and_sends_the_chosen_tag(page, sweep_url):
    # ./scalar_tags and loss_tag are loops20's (issue 20); without that
    # branch ./scalar_tags is 404 and the picker offers the default only.
    page.problems.allow("status of 404")
    frame, f = open_dashboard(page, sweep_url)
    picker = frame.locator("[data-testid=loss-tag]")
    expect(picker.locator("option").first).to_have_text("default (batch_loss)")
    picker.focus()
    with page.expect_request(re.compile(r"/loss\?.*loss_tag=batch_loss")) as req:
        f.evaluate(
            """() => { location.hash = location.hash.replace(/&?loss=[^&]*/, "")
                 + "&loss=batch_loss"; location.reload(); }"""
        )
    assert "run=" in req.value.url
    frame.locator("[data-testid=run-panel]").first.wait_for()
    expect(picker).to_have_value("batch_loss")
