"""The wide-layer overview: cell matrices aggregated into display blocks."""

from __future__ import annotations

import base64
import json
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from werkzeug.test import Client

from tb_deadneurons import summary
from tb_deadneurons.analysis import classify, overview
from tb_deadneurons.board import reader, routes
from tb_deadneurons.format import codec, metadata
from tests.support import EventWriter, relu_batch
from tests.test_plugin_routes import make_app

ACTIVE, DORMANT, DEAD, NO_DATA = (
    classify.STATE_ACTIVE,
    classify.STATE_DORMANT,
    classify.STATE_DEAD,
    classify.STATE_NO_DATA,
)


LEVEL = classify.GRAD_DORMANT_BIT - 1


def cell(state: int, level: int = 0, grad_dormant: bool = False) -> int:
    assert 0 <= level <= classify.ACTIVITY_LEVELS
    flag = classify.GRAD_DORMANT_BIT if grad_dormant else 0
    return state << classify.STATE_SHIFT | flag | level


def active_matrix(units: int, steps: int, level: int = 20) -> np.ndarray:
    return np.full((units, steps), cell(ACTIVE, level), np.uint8)


def planted_layer_matrix(units: int, dead: list[int], snapshots: int = 4):
    """The real cell matrix of a ReLU layer whose ``dead`` units have a bias
    of -1e4, through the numpy twin, the codec and the classifier."""
    rng = np.random.default_rng(3)
    meta = metadata.snapshot_plugin_data()
    decoded = []
    for _ in range(snapshots):
        pre = rng.normal(0.5, 1.0, (64, units)).astype(np.float32)
        pre[:, dead] -= 1e4
        codes = summary.snapshot_np(np.maximum(pre, 0))
        decoded.append(codec.decode_snapshot(codes, meta))
    stats = {name: np.stack([d[name] for d in decoded]) for name in decoded[0]}
    return classify.classify(stats, np.arange(snapshots) * 10).matrix()


def test_row_with_any_dead_unit_shows_dead_with_how_many():
    dead = [17, 5003, 5004, 5010, 11007]
    matrix = planted_layer_matrix(11008, dead)
    view = overview.aggregate(matrix, rows=400)
    assert view.cells.shape == (400, 4)
    rows_of = np.searchsorted(view.row_bounds, dead, side="right") - 1
    shown_dead = (view.cells >> 6) == DEAD
    assert set(np.flatnonzero(shown_dead.any(axis=1))) == set(rows_of)
    expected = np.bincount(rows_of, minlength=400)[:, None]
    assert (view.dead == expected).all()


def test_rows_split_units_evenly_and_cover_each_once():
    view = overview.aggregate(active_matrix(11008, 3), rows=400)
    sizes = np.diff(view.row_bounds)
    assert view.row_bounds[0] == 0 and view.row_bounds[-1] == 11008
    assert sizes.min() >= 27 and sizes.max() - sizes.min() <= 1
    assert len(view.col_bounds) == 4  # steps kept at full resolution


def test_zoomed_range_no_wider_than_rows_is_full_resolution():
    matrix = planted_layer_matrix(11008, [5100, 5101, 9000])
    view = overview.aggregate(matrix, rows=512, unit_start=5000, unit_stop=5512)
    assert (view.cells == matrix[5000:5512]).all()
    assert (view.row_bounds == np.arange(5000, 5513)).all()
    assert np.flatnonzero((view.cells[:, -1] >> 6) == DEAD).tolist() == [100, 101]
    assert (view.dead == ((matrix[5000:5512] >> 6) == DEAD)).all()


def test_no_parameters_return_the_matrix_unchanged():
    matrix = planted_layer_matrix(300, [3])
    view = overview.aggregate(matrix)
    assert (view.cells == matrix).all()
    assert view.row_bounds.tolist() == list(range(301))


def test_a_death_at_one_step_survives_column_aggregation():
    matrix = active_matrix(8, 500)
    matrix[2, 377] = cell(DEAD)
    view = overview.aggregate(matrix, cols=50)
    assert view.cells.shape == (8, 50)
    assert np.argwhere(view.cells >> 6 == DEAD).tolist() == [[2, 37]]
    assert view.dead[2, 37] == 1 and view.dead.sum() == 1


def test_dead_count_is_the_most_dead_at_once_not_a_sum_over_steps():
    matrix = active_matrix(4, 2)
    matrix[0, 0] = matrix[1, 1] = cell(DEAD)  # one unit dead at each step
    matrix[2:, 1] = cell(DEAD)
    view = overview.aggregate(matrix, rows=2, cols=1)
    assert view.dead[:, 0].tolist() == [1, 2]


def test_block_shows_dead_over_dormant_over_active_over_no_data():
    matrix = np.array(
        [  # one step per line, units across
            [cell(NO_DATA), cell(ACTIVE, 9), cell(ACTIVE, 12), cell(NO_DATA)],
            [cell(ACTIVE, 30), cell(NO_DATA), cell(DORMANT, 5), cell(DORMANT, 7)],
            [cell(ACTIVE, 25), cell(DORMANT, 4), cell(ACTIVE, 28), cell(DEAD)],
            [cell(ACTIVE, 25), cell(ACTIVE, 4), cell(ACTIVE, 31), cell(ACTIVE, 22)],
        ],
        np.uint8,
    ).T
    view = overview.aggregate(matrix, rows=1)
    assert (view.cells[0] >> 6).tolist() == [ACTIVE, DORMANT, DEAD, ACTIVE]
    # Among equal states the least active cell stands for the block.
    assert (view.cells[0] & LEVEL).tolist() == [9, 5, 0, 4]
    only_no_data = overview.aggregate(np.full((3, 1), cell(NO_DATA), np.uint8), rows=1)
    assert only_no_data.cells.tolist() == [[cell(NO_DATA)]]


def test_grad_dormant_flag_of_any_cell_marks_its_block():
    matrix = active_matrix(6, 4)
    matrix[4, 3] = cell(ACTIVE, 20, grad_dormant=True)
    view = overview.aggregate(matrix, rows=2, cols=2)
    flagged = (view.cells & classify.GRAD_DORMANT_BIT) > 0
    assert np.argwhere(flagged).tolist() == [[1, 1]]
    assert ((view.cells >> 6) == ACTIVE).all() and (view.cells & LEVEL == 20).all()


def test_layer_without_snapshots_gives_empty_columns():
    view = overview.aggregate(np.zeros((11008, 0), np.uint8), rows=400, cols=100)
    assert view.cells.shape == (400, 0) and view.dead.shape == (400, 0)
    assert overview.aggregate(np.zeros((0, 0), np.uint8)).cells.shape == (0, 0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"rows": 0}, "rows"),
        ({"rows": 2.5}, "rows"),
        ({"rows": True}, "rows"),
        ({"cols": -3}, "cols"),
        ({"unit_start": -1}, "unit_start"),
        ({"unit_start": "4"}, "unit_start"),
        ({"unit_stop": 0}, "unit_stop"),
        ({"unit_stop": 65}, "unit_stop"),
        ({"unit_start": 10, "unit_stop": 10}, "unit_start"),
        ({"unit_start": 64}, "unit_start"),
    ],
)
def test_bad_window_raises_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        overview.aggregate(active_matrix(64, 5), **kwargs)


# --- ./timeline with rows / cols / unit_start / unit_stop --------------------

WIDE_UNITS = 2048
WIDE_DEAD = [5, 6, 700, 1500, 1501, 1502, 2047]
WIDE_STEPS = 6


@pytest.fixture(scope="module")
def wide_client(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("wide"))
    rng = np.random.default_rng(11)
    with EventWriter(os.path.join(logdir, "wide")) as w:
        for step in range(WIDE_STEPS):
            pre = rng.normal(0.5, 1.0, (32, WIDE_UNITS)).astype(np.float32)
            pre[:, WIDE_DEAD] -= 1e4  # planted: these units never fire
            w.snapshot("ffn", step * 10, np.maximum(pre, 0))
    return Client(make_app(logdir))


def timeline(client, query: str = "", status: int = 200) -> dict:
    response = client.get(f"/data/plugin/deadneurons/timeline?run=wide&tag=ffn{query}")
    assert response.status_code == status, response.get_data(as_text=True)
    return json.loads(response.get_data())


def decode(matrix: dict) -> np.ndarray:
    cells = np.frombuffer(base64.b64decode(matrix["data"]), np.uint8)
    return cells.reshape(matrix["shape"])


def decode_dead(matrix: dict) -> np.ndarray:
    dead = matrix["dead"]
    dtype = np.dtype(dead["dtype"]).newbyteorder("<")
    return np.frombuffer(base64.b64decode(dead["data"]), dtype).reshape(matrix["shape"])


def test_timeline_rows_show_every_planted_dead_unit_with_how_many(wide_client):
    full = timeline(wide_client)
    body = timeline(wide_client, "&rows=100")
    matrix = body["matrix"]
    assert matrix["shape"] == [100, WIDE_STEPS]
    bounds = np.asarray(matrix["unit_bounds"])
    assert bounds[0] == 0 and bounds[-1] == WIDE_UNITS and len(bounds) == 101
    rows = np.searchsorted(bounds, WIDE_DEAD, side="right") - 1
    dead_rows = np.flatnonzero(((decode(matrix) >> 6) == DEAD).any(axis=1))
    assert dead_rows.tolist() == sorted(set(rows.tolist()))
    counts = decode_dead(matrix)
    assert (counts == np.bincount(rows, minlength=100)[:, None]).all()
    # The per-unit answers stay whole; only the matrix is aggregated.
    assert body["dead_now"] == full["dead_now"] == WIDE_DEAD
    assert len(body["died_at"]) == WIDE_UNITS
    assert len(matrix["data"]) * 20 < len(full["matrix"]["data"])


def test_timeline_zoom_is_full_resolution_for_the_unit_range(wide_client):
    full = decode(timeline(wide_client)["matrix"])
    matrix = timeline(wide_client, "&unit_start=1400&unit_stop=1600&rows=512")["matrix"]
    assert matrix["shape"] == [200, WIDE_STEPS]
    assert matrix["unit_bounds"] == list(range(1400, 1601))
    assert matrix["dead"] is None  # one unit per row: the cell says it
    assert (decode(matrix) == full[1400:1600]).all()
    assert np.flatnonzero((decode(matrix)[:, -1] >> 6) == DEAD).tolist() == [
        100,
        101,
        102,
    ]


def test_timeline_cols_keep_a_dead_unit_visible(wide_client):
    matrix = timeline(wide_client, "&rows=8&cols=2")["matrix"]
    assert matrix["shape"] == [8, 2] and matrix["step_bounds"] == [0, 3, 6]
    assert (decode_dead(matrix)[[0, 2, 5, 7]] > 0).all()


@pytest.mark.parametrize(
    "query, name",
    [
        ("&rows=0", "rows"),
        ("&rows=ten", "rows"),
        ("&cols=-1", "cols"),
        ("&rows=\u0663", "rows"),  # a digit, but not ASCII
        ("&unit_start=2048", "unit_start"),
        ("&unit_start=9&unit_stop=9", "unit_start"),
        ("&unit_stop=2049", "unit_stop"),
        ("&unit_stop=" + "9" * 30, "unit_stop"),  # beyond int64
    ],
)
def test_timeline_bad_view_is_a_400_naming_the_parameter(wide_client, query, name):
    response = wide_client.get(
        f"/data/plugin/deadneurons/timeline?run=wide&tag=ffn{query}"
    )
    assert response.status_code == 400
    assert name in response.get_data(as_text=True)


# --- the timeline cache: another view of a classified layer only aggregates --


def test_timeline_cache_keeps_the_most_recently_used_layers():
    cache = routes.TimelineCache(size=2)
    computed = []

    def value(name):
        def compute():
            computed.append(name)
            return name

        return compute

    for name in ["a", "b", "a", "c", "a", "b"]:
        assert cache.get(name, value(name)) == name
    assert computed == ["a", "b", "c", "b"]  # c pushed out b, the least recent


def test_cached_timeline_follows_new_snapshots_and_thresholds(tmp_path):
    rng = np.random.default_rng(2)
    run_dir = os.path.join(tmp_path, "grow")
    multiplexer = pem.EventMultiplexer(tensor_size_guidance={"deadneurons": 100})
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    rd = reader.Reader(provider, "", downsample=100)
    cache = routes.TimelineCache()
    query = routes.Query()

    def timeline(q=query, view=None):
        multiplexer.AddRunsFromDirectory(str(tmp_path))
        multiplexer.Reload()
        return routes.timeline_impl(rd, "grow", "ffn", q, 100, view, cache)

    with EventWriter(run_dir) as w:
        for step in range(3):
            w.snapshot("ffn", step, relu_batch(rng, 16, 64, [1]))
    assert timeline()["steps"] == [0, 1, 2]
    zoom = timeline(view=overview.View(unit_start=0, unit_stop=8))
    assert zoom["matrix"]["shape"] == [8, 3] and zoom["dead_now"] == [1]
    with EventWriter(run_dir) as w:  # a second event file: training went on
        w.snapshot("ffn", 3, relu_batch(rng, 16, 64, [1, 2]))
    assert timeline()["steps"] == [0, 1, 2, 3]
    assert timeline()["dead_now"] == [1, 2]
    dormant = timeline(routes.Query(tau=10.0))["dormant_now"]
    assert len(dormant) == 64 != len(timeline()["dormant_now"])
