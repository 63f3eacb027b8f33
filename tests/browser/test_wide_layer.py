"""A layer wider than the heat map: aggregated rows, zoom, paged dead-unit table.

Real ``tensorboard`` and Debian's Chromium on a planted 4,096-unit layer
(units 100..699 and 3000 get a bias of -1e4: never active).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_dashboard
from tests.support import EventWriter, tensorboard_server

UNITS = 4096
STEPS = list(range(0, 200, 20))
DEAD = [*range(100, 700), 3000]
ROWS = 512  # static/zoom.js MAX_ROWS
ALL_UNITS = f"units 0–{UNITS - 1} of {UNITS} · one row per ~8 units"


@pytest.fixture(scope="module")
def wide_url(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("wide"))
    rng = np.random.default_rng(5)
    with EventWriter(os.path.join(logdir, "wide")) as w:
        for step in STEPS:
            pre = rng.normal(0.5, 1.0, (16, UNITS)).astype(np.float32)
            pre[:, DEAD] -= 1e4
            w.snapshot("ffn", step, np.maximum(pre, 0))
    with tensorboard_server(logdir) as base:
        yield base


def _row_y(box, row):
    """A page y inside heat-map row ``row`` (1 CSS px per row). Chromium
    truncates a mouse position to whole pixels, so with the canvas at a
    fractional y the row's middle can land on the row above."""
    return math.ceil(box["y"] + row * box["height"] / ROWS)


def test_wide_layer_rows_zoom_and_table_pages(page, wide_url):
    frame, _ = open_dashboard(page, wide_url)
    view = frame.locator("[data-testid=layer-view][data-tag=ffn]")
    bar = view.locator("[data-testid=zoom-bar]")
    expect(bar).to_contain_text(ALL_UNITS)
    canvas = view.locator("[data-testid=heatmap]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box["height"] == pytest.approx(ROWS, abs=1)  # one CSS pixel per row
    tooltip = frame.locator("[data-testid=tooltip]")
    row_of_3000 = 3000 * ROWS // UNITS  # rows hold 8 units each here
    y = _row_y(box, row_of_3000)
    page.mouse.move(box["x"] + box["width"] - 2, y)
    expect(tooltip).to_contain_text("units 3000–3007 · step 180")
    expect(tooltip).to_contain_text("1 of 8 units dead")

    page.mouse.click(box["x"] + box["width"] - 2, y)
    expect(bar).to_contain_text("units 2748–3259 of 4096 · one row per unit")
    box = canvas.bounding_box()
    y = _row_y(box, 3000 - 2748)
    page.mouse.move(box["x"] + box["width"] - 2, y)
    expect(tooltip).to_contain_text("unit 3000 · step 180")
    expect(tooltip).to_contain_text("state: dead")
    page.mouse.move(box["x"] + box["width"] - 2, _row_y(box, 3001 - 2748))
    expect(tooltip).to_contain_text("unit 3001 · step 180")
    expect(tooltip).to_contain_text("state: active")

    table = view.locator("[data-testid=dead-table]")
    pager = view.locator("[data-testid=table-page]")
    expect(pager).to_contain_text(f"rows 1–400 of {len(DEAD)}")
    assert table.locator("tbody tr").count() == 400
    view.locator("[data-testid=page-next]").click()
    expect(pager).to_contain_text(f"rows 401–{len(DEAD)} of {len(DEAD)}")
    expect(table.locator("tr[data-unit='3000']")).to_have_count(1)
    expect(view.locator("[data-testid=page-next]")).to_be_disabled()

    view.locator("[data-testid=zoom-out]").click()
    expect(bar).to_contain_text(ALL_UNITS)
