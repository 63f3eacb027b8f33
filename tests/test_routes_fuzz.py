"""Hostile query strings never make a route answer 5xx."""

from __future__ import annotations

import random
import urllib.parse

import pytest
from werkzeug.test import Client

from tests.test_damage import write_damaged
from tests.test_plugin_routes import make_app, write_logs, write_more_logs
from tests.test_restarts import write_restarts

ROUTES = (
    "runs",
    "timeline",
    "unit",
    "loss",
    "scalar_tags",
    "index.js",
    "static/index.js",
)
KEYS = (
    "run",
    "tag",
    "unit",
    "tau",
    "definition",
    "constant_std",
    "experiment",
    "loss_tag",
)
VALUES = (
    "",
    "planted/train",
    "odd",
    "newer",
    "dense",
    "batch_loss",
    "tanh",
    "broken",
    "_revivals/dense",
    "0",
    "3",
    "15",
    "16",
    "-1",
    "+3",
    " 3",
    "3.0",
    "1e309",
    "-0",
    "nan",
    "inf",
    "-inf",
    "0x10",
    "1_000",
    "99999999999999999999999999999",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: str.isdigit() is True
    "\u00b2",  # SUPERSCRIPT TWO
    "dead",
    "dormant",
    "grad_dormant",
    "DEAD",
    "rerun",
    "resume",
    "flipped",
    "badlength",
    "grads",
    "naneps",
    "../",
    "../../etc/passwd",
    "..\\..\\",
    "\x00",
    "\u2603",
    "\U0001f480",
    "a" * 5000,
    "[]",
    "{}",
    "'\"<script>",
)
RAW = ("%", "%zz", "%ff%fe", "%ed%a0%80", "%00", "&&&", "==", ";", "%2e%2e%2f")


def _query(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 6)):
        key = rng.choice(KEYS + ("", "x", "\u2603"))
        if rng.random() < 0.15:
            parts.append(urllib.parse.quote(key) + "=" + rng.choice(RAW))
        else:
            value = rng.choice(VALUES)
            if rng.random() < 0.1:
                value = value * rng.randint(2, 50)
            parts.append(urllib.parse.urlencode({key: value}))
    return "&".join(parts)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("fuzz"))
    for write in (write_logs, write_more_logs, write_restarts, write_damaged):
        write(logdir)
    return Client(make_app(logdir))


def _mutated_valid(rng: random.Random) -> str:
    params = {"run": "planted/train", "tag": "dense", "unit": "3"}
    params[rng.choice(KEYS[:4])] = rng.choice(VALUES)
    return urllib.parse.urlencode(params)


@pytest.mark.parametrize("route", ROUTES)
def test_random_and_hostile_queries_never_give_5xx(client, route):
    rng = random.Random(route)
    statuses = set()
    for i in range(80):
        # a third of the queries: one parameter of a valid query mutated
        query = _mutated_valid(rng) if i % 3 == 0 else _query(rng)
        response = client.get(f"/data/plugin/deadneurons/{route}?{query}")
        assert response.status_code < 500, (route, query, response.get_data())
        statuses.add(response.status_code)
    if route in ("timeline", "unit", "loss"):
        assert {200, 400, 404} <= statuses  # the fuzz reaches every branch


@pytest.mark.parametrize("seed", range(3))
def test_random_static_paths_never_give_5xx_or_files_outside(client, seed):
    rng = random.Random(seed)
    pieces = ["..", ".", "", "%2e%2e", "%2f", "%5c", "index.js", "static", "%00", "a"]
    for _ in range(40):
        path = "/".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
        response = client.get("/data/plugin/deadneurons/static/" + path)
        assert response.status_code in (200, 404), (path, response.status_code)
        if response.status_code == 200:
            assert response.headers["Content-Type"].startswith("text/javascript")
