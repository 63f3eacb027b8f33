"""Plugin routes over real event files, served by TensorBoard's own WSGI app."""

from __future__ import annotations

import argparse
import base64
import os
import urllib.parse

import numpy as np
import pytest
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins import base_plugin
from tensorboard.util import tensor_util
from werkzeug.test import Client

from tb_deadneurons import summary
from tb_deadneurons.board import plugin, reader
from tb_deadneurons.format import metadata
from tb_deadneurons.format.proto import plugin_data_pb2
from tests.support import EventWriter, relu_batch

STEPS = list(range(0, 300, 10))
BORN_DEAD = [2, 7]
KILLED_AT = {11: 150, 13: 240}  # unit -> first step it is dead
REVIVED = 4  # dead at steps 50..100, alive again from 110


def _planted_dead(step: int) -> list[int]:
    dead = BORN_DEAD + [u for u, s in KILLED_AT.items() if step >= s]
    return dead + ([REVIVED] if 50 <= step <= 100 else [])


def _raw(
    tag: str, step: int, tensor: np.ndarray, content: bytes
) -> summary_pb2.Summary:
    meta = metadata.create_summary_metadata(None, None)
    meta.plugin_data.content = content
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=meta, tensor=tensor_util.make_tensor_proto(tensor))
    return s


def write_logs(logdir: str) -> None:
    rng = np.random.default_rng(7)
    with EventWriter(os.path.join(logdir, "planted", "train")) as w:
        for step in STEPS:
            w.snapshot("dense", step, relu_batch(rng, 128, 16, _planted_dead(step)))
            pre = rng.normal(0.0, 1.0, (128, 6)).astype(np.float32)
            pre[:, 1] += 40.0  # saturated: constant +1
            w.snapshot("tanh", step, np.tanh(pre), activation="tanh")
            w.scalar("batch_loss", step, 2.0 / (1 + step))
        w.add(110, summary.revivals_pb("dense", [REVIVAL_UNIT]))
    good = metadata.create_summary_metadata(None, None).plugin_data.content
    with EventWriter(os.path.join(logdir, "odd")) as w:
        for step in range(5):
            w.snapshot("dense", step, relu_batch(rng, 32, 8, [0]))
        w.snapshot("dense", 5, relu_batch(rng, 32, 9))  # unit count changed
        w.snapshot("dense", 6, np.zeros((0, 8), np.float32))  # empty batch
        w.add(7, _raw("dense", 7, np.zeros((7, 8), np.float32), good))  # dtype
        w.add(8, _raw("dense", 8, np.zeros((3, 8), np.uint8), good))  # rows
        no_data = relu_batch(rng, 32, 8, [0])
        no_data[:, 3] = np.nan  # unit 3 has no finite value at step 9
        w.snapshot("dense", 9, no_data)
        w.scalar("deadneurons/loss", 9, 0.5)
        w.scalar("epoch_loss", 0, 0.7)
    newer = plugin_data_pb2.DeadNeuronsPluginData()
    newer.ParseFromString(good)
    newer.version = metadata.PROTO_VERSION + 98
    with EventWriter(os.path.join(logdir, "newer")) as w:
        for step in range(3):
            codes = summary.snapshot_np(relu_batch(rng, 32, 4, [1]))
            w.add(step, _raw("dense", step, codes, newer.SerializeToString()))
        w.scalar("accuracy", 0, 0.5)
        w.add(3, _raw("broken", 3, codes, b"\xff\xff not a proto"))


REVIVAL_UNIT = REVIVED


def make_app(logdir: str, sampling_hints: dict | None = None):
    """TensorBoard's WSGI app with our plugin over ``logdir`` (Python loader)."""
    multiplexer = pem.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: plugin.DEFAULT_SAMPLES}
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    context = base_plugin.TBContext(
        data_provider=provider,
        logdir=logdir,
        multiplexer=multiplexer,
        sampling_hints=sampling_hints or {},
    )
    the_plugin = plugin.DeadNeuronsLoader().load(context)
    return application.TensorBoardWSGI([the_plugin], data_provider=provider)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("logs"))
    write_logs(logdir)
    return Client(make_app(logdir))


def get(client, route: str, status: int = 200):
    response = client.get("/data/plugin/deadneurons/" + route)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json() if status == 200 and route[:5] != "stati" else response


def test_runs_lists_each_layer_with_units_snapshots_and_dead_count_now(client):
    body = get(client, "runs")
    runs = {r["run"]: r for r in body["runs"]}
    assert list(runs) == sorted(runs)
    dense, tanh = runs["planted/train"]["layers"]
    assert dense["tag"] == "dense" and tanh["tag"] == "tanh"
    assert dense["units"] == 16 and dense["snapshots"] == len(STEPS)
    assert (dense["first_step"], dense["last_step"]) == (0, STEPS[-1])
    assert dense["dead_count_now"] == len(_planted_dead(STEPS[-1]))
    assert "dead_now" not in dense
    assert dense["dead_fraction_now"] == pytest.approx(4 / 16)
    assert tanh["dead_count_now"] == 1 and tanh["activation"] == "tanh"
    assert any("tag broken" in w for w in body["warnings"])
    assert len(body["warnings"]) == len(set(body["warnings"]))
    assert any("version 99" in w for w in body["warnings"])


def test_timeline_reports_exactly_the_planted_dead_units(client):
    body = get(client, "timeline?run=planted/train&tag=dense")
    assert body["steps"] == STEPS
    assert body["dead_now"] == sorted(_planted_dead(STEPS[-1]))
    assert body["dead_count"] == [len(_planted_dead(s)) for s in STEPS]
    assert body["thresholds"]["definition"] == "dead"
    assert body["thresholds"]["tau"] == 0.1


def test_timeline_dates_units_killed_part_way_at_their_kill_step(client):
    died_at = get(client, "timeline?run=planted/train&tag=dense")["died_at"]
    expected = [None] * 16
    for u in BORN_DEAD:
        expected[u] = 0
    for u, step in KILLED_AT.items():
        expected[u] = step
    assert died_at == expected


def test_timeline_marks_a_unit_that_came_back_as_revived(client):
    body = get(client, "timeline?run=planted/train&tag=dense")
    assert [u for u, r in enumerate(body["revived"]) if r] == [REVIVED]
    assert body["revivals"] == [{"step": 110, "units": [REVIVED]}]


def test_timeline_matrix_is_base64_unit_major_cells(client):
    body = get(client, "timeline?run=planted/train&tag=dense")
    m = body["matrix"]
    assert m["shape"] == [16, len(STEPS)] and m["order"] == "unit-major"
    cells = np.frombuffer(base64.b64decode(m["data"]), np.uint8).reshape(m["shape"])
    state = cells >> 6
    assert (state[2] == 2).all() and (cells[2] & 31 == 0).all()
    assert state[11].tolist() == [0 if s < 150 else 2 for s in STEPS]
    assert (state[0] == 0).all() and (cells[0] & 31 > 0).all()
    assert not (cells & 32).any()  # no gradient row: never grad-dormant
    assert "bit 5 grad-dormant" in m["cell"]


def test_saturated_tanh_unit_is_reported_dead(client):
    body = get(client, "timeline?run=planted/train&tag=tanh")
    assert body["dead_now"] == [1]
    assert body["died_at"][1] == 0


def test_tau_parameter_is_applied_and_echoed(client):
    loose = get(client, "timeline?run=planted/train&tag=dense&tau=5")
    zero = get(client, "timeline?run=planted/train&tag=dense&tau=0")
    assert loose["thresholds"]["tau"] == 5 and zero["thresholds"]["tau"] == 0
    assert loose["dormant_count"][-1] == 16
    assert zero["dormant_now"] == sorted(_planted_dead(STEPS[-1]))


def test_unit_route_gives_one_units_statistics_over_time(client):
    body = get(client, "unit?run=planted/train&tag=dense&unit=11")
    assert body["steps"] == STEPS and body["died_at"] == 150
    assert body["dead"] == [s >= 150 for s in STEPS]
    af = body["stats"]["active_fraction"]
    assert all(a > 0 for a, s in zip(af, STEPS, strict=True) if s < 150)
    assert all(a == 0 for a, s in zip(af, STEPS, strict=True) if s >= 150)
    assert set(body["stats"]) >= {"mean_abs", "std", "count", "nonfinite"}


def test_loss_route_finds_keras_batch_loss(client):
    body = get(client, "loss?run=planted/train")
    assert body["tag"] == "batch_loss" and body["step_unit"] == "batch"
    assert body["steps"] == STEPS
    assert body["values"][0] == pytest.approx(2.0)


def test_loss_route_prefers_our_callbacks_loss(client):
    body = get(client, "loss?run=odd")
    assert body["tag"] == "deadneurons/loss" and body["source"] == "deadneurons"
    assert body["steps"] == [9] and body["values"] == [0.5]


def test_run_without_loss_answers_empty_with_a_message(client):
    body = get(client, "loss?run=newer")
    assert body["tag"] is None and body["steps"] == [] and body["message"]


def test_odd_snapshots_are_skipped_with_warnings_naming_the_step(client):
    body = get(client, "timeline?run=odd&tag=dense")
    assert body["steps"] == [0, 1, 2, 3, 4, 9]
    warnings = "\n".join(body["warnings"])
    for step in (5, 6, 7, 8):
        assert f"run odd, tag dense, step {step}:" in warnings
    assert "9 units, expected 8" in warnings
    assert body["dead_now"] == [0]


def test_unit_without_data_is_a_no_data_cell(client):
    body = get(client, "timeline?run=odd&tag=dense")
    cells = np.frombuffer(base64.b64decode(body["matrix"]["data"]), np.uint8)
    cells = cells.reshape(body["matrix"]["shape"])
    assert cells[3, -1] >> 6 == 3 and (cells[3, :-1] >> 6 == 0).all()
    assert 3 not in body["dead_now"] and body["dormant_score_now"][3] is None


def test_newer_metadata_version_is_read_with_a_warning(client):
    body = get(client, "timeline?run=newer&tag=dense")
    assert body["steps"] == [0, 1, 2] and body["dead_now"] == [1]
    assert any("newer" in w and "run newer, tag dense" in w for w in body["warnings"])


@pytest.mark.parametrize(
    "route",
    [
        "timeline?run=nope&tag=dense",
        "timeline?run=planted/train&tag=nope",
        "timeline?run=newer&tag=broken",
        "unit?run=planted/train&tag=dense&unit=16",
        "loss?run=nope",
    ],
)
def test_unknown_run_tag_or_unit_is_404(client, route):
    get(client, route, 404)


@pytest.mark.parametrize(
    "route",
    [
        "timeline?run=planted/train",
        "timeline?tag=dense",
        "timeline?run=planted/train&tag=dense&tau=-1",
        "timeline?run=planted/train&tag=dense&tau=abc",
        "timeline?run=planted/train&tag=dense&definition=zombie",
        "unit?run=planted/train&tag=dense&unit=-1",
        "unit?run=planted/train&tag=dense",
        "unit?run=planted/train&tag=dense&unit=%D9%A3",  # an Arabic-Indic 3
        "timeline?run=planted/train&tag=dense&definition=grad_dormant",  # no row
        "loss",
    ],
)
def test_missing_or_malformed_parameter_is_400(client, route):
    get(client, route, 400)


def test_index_js_and_static_files_are_served_as_javascript(client):
    response = client.get("/data/plugin/deadneurons/index.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    with open(os.path.join(plugin.STATIC_DIR, "index.js"), "rb") as f:
        assert response.get_data() == f.read()
    assert client.get("/data/plugin/deadneurons/static/index.js").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "static/../plugin.py",
        "static/%2e%2e/plugin.py",
        "static/..%2fplugin.py",
        "static/..%5cplugin.py",
        "static//etc/passwd",
        "static/%2fetc%2fpasswd",
        "static/",
        "static/nope.js",
    ],
)
def test_static_route_refuses_paths_outside_static(client, path):
    response = client.get("/data/plugin/deadneurons/" + path)
    assert response.status_code == 404
    assert b"import" not in response.get_data()


def test_fix_flags_raises_our_sample_default_but_a_user_value_wins():
    flags = argparse.Namespace(samples_per_plugin={})
    plugin.DeadNeuronsLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"deadneurons": plugin.DEFAULT_SAMPLES}
    flags = argparse.Namespace(samples_per_plugin={"deadneurons": 7})
    plugin.DeadNeuronsLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"deadneurons": 7}


def test_sampling_hint_limits_the_snapshots_read(tmp_path):
    write_logs(str(tmp_path))
    client = Client(make_app(str(tmp_path), {"deadneurons": 5}))
    steps = get(client, "timeline?run=planted/train&tag=dense")["steps"]
    assert len(steps) == 5 and steps[-1] == STEPS[-1]


def test_tensorboard_enables_the_plugin_only_where_snapshots_exist(client, tmp_path):
    # is_active() is False by design: activation comes from list_plugins.
    listing = client.get("/data/plugins_listing").get_json()
    assert listing["deadneurons"]["enabled"] is True
    assert listing["deadneurons"]["tab_name"] == "Dead Neurons"
    assert listing["deadneurons"]["loading_mechanism"]["module_path"].endswith(
        "/index.js"
    )
    empty = Client(make_app(str(tmp_path))).get("/data/plugins_listing").get_json()
    assert empty["deadneurons"]["enabled"] is False


def test_constant_std_parameter_is_applied_and_echoed(client):
    default = get(client, "timeline?run=planted/train&tag=tanh")
    loose = get(client, "timeline?run=planted/train&tag=tanh&constant_std=100")
    assert default["dead_now"] == [1] and loose["thresholds"]["constant_std"] == 100
    assert loose["dead_now"] == list(range(6))  # every std <= 100 x median
    unit = get(client, "unit?run=planted/train&tag=tanh&unit=0&constant_std=100")
    assert all(unit["dead"])


GRAD_ZERO = [2, 5]  # active units whose gradient is exactly 0
LONG_TAG = "\x1b[31mred\nforged row " + "t" * 1500
LONG_RUN = "/".join(["r" * 200] * 6)  # 1,205 characters, 200 per directory


def write_more_logs(logdir: str) -> None:
    """Runs for epsilon, NaN epsilon, many bad snapshots, long names, gradients."""
    rng = np.random.default_rng(9)
    with EventWriter(os.path.join(logdir, "eps")) as w:
        for step in range(3):
            w.snapshot("dense", step, relu_batch(rng, 32, 4), epsilon=0.05)
    nan_eps = metadata.create_summary_metadata(None, None).plugin_data.content
    meta = plugin_data_pb2.DeadNeuronsPluginData.FromString(nan_eps)
    meta.epsilon = float("nan")
    with EventWriter(os.path.join(logdir, "naneps")) as w:
        for step in range(3):
            codes = summary.snapshot_np(relu_batch(rng, 32, 4, [1]))
            w.add(step, _raw("dense", step, codes, meta.SerializeToString()))
    with EventWriter(os.path.join(logdir, "manybad")) as w:
        w.snapshot("dense", 0, relu_batch(rng, 32, 4))
        for step in range(1, 31):
            w.snapshot("dense", step, relu_batch(rng, 32, 5))  # 5 units, not 4
    with EventWriter(os.path.join(logdir, LONG_RUN)) as w:
        w.snapshot(LONG_TAG, 0, relu_batch(rng, 32, 4, [0]))
    with EventWriter(os.path.join(logdir, "grads")) as w:
        for step in range(4):
            data = relu_batch(rng, 64, 8)
            grads = rng.normal(0, 1e-2, (64, 8)).astype(np.float32)
            grads[:, GRAD_ZERO] = 0.0
            w.snapshot("dense", step, data, gradients=grads)


@pytest.fixture(scope="module")
def more(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("more"))
    write_more_logs(logdir)
    return Client(make_app(logdir))


def test_thresholds_echo_the_series_own_epsilon(more):
    eps = pytest.approx(0.05)  # stored as float32
    assert get(more, "timeline?run=eps&tag=dense")["thresholds"]["epsilon"] == eps
    assert get(more, "unit?run=eps&tag=dense&unit=0")["thresholds"]["epsilon"] == eps


def test_non_finite_logged_epsilon_is_served_as_null(more):
    body = get(more, "timeline?run=naneps&tag=dense")
    assert body["thresholds"]["epsilon"] is None and body["dead_now"] == [1]
    assert get(more, "unit?run=naneps&tag=dense&unit=1")["dead"] == [True] * 3


def test_warnings_of_a_series_are_capped_with_a_count(more):
    warnings = get(more, "timeline?run=manybad&tag=dense")["warnings"]
    assert len(warnings) == reader.MAX_WARNINGS + 1
    assert warnings[-1] == "run manybad, tag dense: 10 more warnings"


def test_run_and_tag_of_any_length_work_in_every_route(more):
    runs = get(more, "runs")["runs"]
    entry = next(r for r in runs if r["run"] == LONG_RUN)
    assert entry["layers"][0]["tag"] == LONG_TAG
    query = urllib.parse.urlencode({"run": LONG_RUN, "tag": LONG_TAG})
    assert get(more, "timeline?" + query)["dead_now"] == [0]
    assert get(more, "unit?unit=0&" + query)["dead"] == [True]
    loss = get(more, "loss?" + urllib.parse.urlencode({"run": LONG_RUN}))
    assert loss["tag"] is None


def test_gradient_starved_units_are_grad_dormant_not_dead(more):
    body = get(more, "timeline?run=grads&tag=dense")
    assert body["grad_dormant_now"] == GRAD_ZERO and body["dead_now"] == []
    assert body["grad_dormant_count"] == [len(GRAD_ZERO)] * 4
    cells = np.frombuffer(base64.b64decode(body["matrix"]["data"]), np.uint8)
    flagged = (cells.reshape(body["matrix"]["shape"]) & 32).any(axis=1)
    assert np.flatnonzero(flagged).tolist() == GRAD_ZERO
    unit = get(more, "unit?run=grads&tag=dense&unit=2&definition=grad_dormant")
    assert unit["grad_dormant"] == [True] * 4 and unit["died_at"] == 0
    plain = get(more, "timeline?run=eps&tag=dense")
    assert plain["grad_dormant_count"] is None and plain["grad_dormant_now"] is None


def test_layer_mean_abs_is_the_mean_of_the_units_mean_abs(more):
    body = get(more, "timeline?run=grads&tag=dense")
    for step in range(4):
        unit_means = [
            get(more, f"unit?run=grads&tag=dense&unit={u}")["stats"]["mean_abs"][step]
            for u in range(8)
        ]
        assert body["mean_abs"][step] == pytest.approx(np.mean(unit_means), rel=1e-3)


def test_runs_cache_sees_a_new_snapshot_at_the_same_wall_time(tmp_path):
    rng = np.random.default_rng(1)
    run_dir = str(tmp_path / "live")
    with EventWriter(run_dir) as w:
        w.add(0, summary.activations_pb("dense", relu_batch(rng, 8, 4)), 1000.0)
    multiplexer = pem.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: plugin.DEFAULT_SAMPLES}
    )
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    context = base_plugin.TBContext(data_provider=provider, logdir=str(tmp_path))
    app = application.TensorBoardWSGI(
        [plugin.DeadNeuronsLoader().load(context)], data_provider=provider
    )
    client = Client(app)
    assert get(client, "runs")["runs"][0]["layers"][0]["snapshots"] == 1
    with EventWriter(run_dir) as w:  # same wall time: only the step tells
        w.add(5, summary.activations_pb("dense", relu_batch(rng, 8, 4, [3])), 1000.0)
    multiplexer.Reload()
    layer = get(client, "runs")["runs"][0]["layers"][0]
    assert layer["snapshots"] == 2 and layer["dead_count_now"] == 1
