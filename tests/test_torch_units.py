"""Units derived from the probe pass: real models, planted ground truth.

Hugging Face Llama (gated FFN), a hand-written MLP with functional
activations, wav2vec2 (conv channels on ``[B, C, T]``), LSTM/GRU outputs over
every timestep, and smooth activations (a SiLU unit at -40 is dead, a
healthy GELU/SiLU layer shows none). "Dead" is the classifier's default
view (``classify.revivable_units`` with tau 0).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tb_deadneurons.analysis import classify
from tb_deadneurons.format import codec, metadata
from tb_deadneurons.torch import DeadNeuronMonitor


def _dead(codes) -> list[int]:
    return classify.revivable_units(codes, with_gradients=False)


def _count(codes) -> float:
    decoded = codec.decode_snapshot(codes, metadata.snapshot_plugin_data())
    return float(decoded[metadata.COUNT][0])


def _monitor(model, tmp_path, x, **kwargs) -> DeadNeuronMonitor:
    return DeadNeuronMonitor(model, str(tmp_path), probe_data=x, **kwargs)


GATE_ZERO, UP_ZERO = [3, 10], [7, 20]


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def test_llama_gate_zero_and_up_zero_units_are_both_dead_and_nothing_else(tmp_path):
    model = _llama()
    mlp = model.model.layers[0].mlp
    with torch.no_grad():
        mlp.gate_proj.weight[GATE_ZERO] = 0.0  # silu(0) = 0: product 0
        mlp.up_proj.weight[UP_ZERO] = 0.0  # up half 0: product 0
    ids = torch.randint(0, 64, (4, 16))
    with _monitor(model, tmp_path, {"input_ids": ids}) as m:
        tags = [f"model.layers.{i}.mlp" for i in (0, 1)]
        assert list(m.watched) == tags  # the products; no attention, no logits
        assert all(
            m.watched[t] is model.model.layers[i].mlp.down_proj
            for i, t in enumerate(tags)
        )
        assert m.last_snapshot[tags[0]].shape[1] == 48
        assert _dead(m.last_snapshot[tags[0]]) == sorted(GATE_ZERO + UP_ZERO)
        assert _dead(m.last_snapshot[tags[1]]) == []
        assert _count(m.last_snapshot[tags[0]]) == pytest.approx(64, rel=0.1)


def test_llama_named_input_matches_the_default_product_series(tmp_path):
    model = _llama()
    ids = torch.randint(0, 64, (4, 16))
    name = "model.layers.0.mlp.down_proj:input"
    with _monitor(model, tmp_path, {"input_ids": ids}) as default:
        product = default.last_snapshot["model.layers.0.mlp"]
    with _monitor(model, tmp_path, {"input_ids": ids}, modules=[name]) as named:
        assert list(named.watched) == [name]
        assert (named.last_snapshot[name] == product).all()


class FunctionalMLP(nn.Module):
    """Activations called as functions in ``forward``, no activation module."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, 24), nn.Linear(24, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(
            F.gelu(self.fc2(F.dropout(F.relu(self.fc1(x)), 0.1, self.training)))
        )


def test_functional_relu_and_gelu_units_are_found_on_what_the_next_layer_reads(
    tmp_path,
):
    torch.manual_seed(0)
    model = FunctionalMLP()
    with torch.no_grad():
        model.fc1.bias[[2, 9]] = -1e4
        model.fc2.weight[5] = 0.0
        model.fc2.bias[5] = -40.0  # gelu(-40) = -0.0
    with _monitor(model, tmp_path, torch.randn(64, 10)) as m:
        assert list(m.watched) == ["fc2:input", "out:input"]
        assert _dead(m.last_snapshot["fc2:input"]) == [2, 9]
        assert _dead(m.last_snapshot["out:input"]) == [5]


class SquaredReLU(nn.Module):
    """Primer's (and modded-nanogpt's) MLP: ``relu(x) ** 2``, written three ways."""

    def __init__(self, square):
        super().__init__()
        self.square = square
        self.fc1 = nn.Linear(10, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(self.square(F.relu(self.fc1(x))))


@pytest.mark.parametrize(
    "square", [torch.square, lambda h: h**2, lambda h: h.pow(2)], ids=str
)
def test_a_squared_relu_is_watched_and_its_dead_units_found(tmp_path, square):
    torch.manual_seed(0)
    model = SquaredReLU(square)
    with torch.no_grad():
        model.fc1.bias[[4, 19]] = -1e4
    with _monitor(model, tmp_path, torch.randn(64, 10)) as m:
        assert list(m.watched) == ["fc2:input"]
        assert _dead(m.last_snapshot["fc2:input"]) == [4, 19]


def _smooth_mlp(act: nn.Module, dead: list[int], at: float = -40.0) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), act, nn.Linear(32, 3))
    with torch.no_grad():
        model[0].weight[dead] *= 0.05
        model[0].bias[dead] = at  # pre-activation about -40 on every sample
    return model


@pytest.mark.parametrize("act", [nn.SiLU(), nn.GELU(), nn.Tanh(), nn.Sigmoid()])
def test_a_healthy_smooth_layer_shows_no_dead_unit(tmp_path, act):
    with _monitor(_smooth_mlp(act, []), tmp_path, torch.randn(256, 8)) as m:
        assert _dead(m.last_snapshot["1"]) == []


def test_a_silu_unit_at_minus_40_is_dead_though_its_output_is_never_zero(tmp_path):
    model = _smooth_mlp(nn.SiLU(), [4, 19])
    x = torch.randn(256, 8)
    assert (model[1](model[0](x))[:, [4, 19]] != 0).all()  # |a| ~ 1e-16
    with _monitor(model, tmp_path, x) as m:
        assert _dead(m.last_snapshot["1"]) == [4, 19]


class Recurrent(nn.Module):
    def __init__(self, hidden=12):
        super().__init__()
        self.lstm = nn.LSTM(5, hidden, batch_first=True)
        self.gru = nn.GRU(hidden, 9, batch_first=True)
        self.head = nn.Linear(9, 3)

    def forward(self, x):
        return self.head(self.gru(self.lstm(x)[0])[0])


def test_a_saturated_lstm_unit_is_dead_over_every_timestep(tmp_path):
    torch.manual_seed(0)
    model, h, k = Recurrent(), 12, 6
    with torch.no_grad():
        for gate, bias in enumerate((50.0, -50.0, 50.0, 50.0)):  # i, f, g, o
            row = gate * h + k
            model.lstm.weight_ih_l0[row] = 0.0
            model.lstm.weight_hh_l0[row] = 0.0
            model.lstm.bias_ih_l0[row], model.lstm.bias_hh_l0[row] = bias, 0.0
    x = torch.randn(8, 20, 5)  # 8 sequences of 20 steps
    with _monitor(model, tmp_path, x) as m:
        assert list(m.watched) == ["lstm", "gru"]
        assert [m.last_snapshot[t].shape[1] for t in ("lstm", "gru")] == [12, 9]
        assert _dead(m.last_snapshot["lstm"]) == [k]  # h = tanh(1) always
        assert _dead(m.last_snapshot["gru"]) == []
        assert _count(m.last_snapshot["lstm"]) == pytest.approx(160, rel=0.1)


def test_wav2vec2_conv_series_are_channels_and_planted_channels_found(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 24, 20),
        conv_stride=(5, 2, 2),
        conv_kernel=(10, 3, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    model = Wav2Vec2Model(config)
    convs = model.feature_extractor.conv_layers
    with torch.no_grad():
        convs[0].layer_norm.bias[[1, 11]] = -1e4  # GroupNorm's beta
        convs[1].conv.weight[[4]] = 0.0  # gelu(0) = 0
        convs[2].conv.weight[[0, 19]] = 0.0
    with _monitor(model, tmp_path, {"input_values": torch.randn(4, 1600)}) as m:
        widths = {t: c.shape[1] for t, c in m.last_snapshot.items()}
        conv = "feature_extractor.conv_layers.{}.activation"
        ffn = "encoder.layers.0.feed_forward.intermediate_act_fn"
        assert widths == {
            conv.format(0): 16,
            conv.format(1): 24,
            conv.format(2): 20,
            ffn: 37,
        }
        planted = {0: [1, 11], 1: [4], 2: [0, 19]}
        for i, channels in planted.items():
            assert _dead(m.last_snapshot[conv.format(i)]) == channels
        assert _dead(m.last_snapshot[ffn]) == []


class ChannelsAndTime(nn.Module):
    """``[B, C, T]`` read by a 1x1 conv along C and by nothing else."""

    def __init__(self):
        super().__init__()
        self.conv, self.mix = nn.Conv1d(3, 6, 1), nn.Conv1d(6, 2, 1)

    def forward(self, x):
        return self.mix(torch.relu(self.conv(x)))


def test_unit_axis_names_the_axis_of_a_series_and_bad_values_raise(tmp_path):
    model, x = ChannelsAndTime(), torch.randn(4, 3, 5)
    with _monitor(model, tmp_path, x) as m:
        assert m.last_snapshot["mix:input"].shape[1] == 6  # derived: channels
    with _monitor(model, tmp_path, x, unit_axis={"mix:input": 2}) as m:
        assert m.last_snapshot["mix:input"].shape[1] == 5  # as told: time
    for bad, message in [
        ({"nope": 1}, "unit_axis: 'nope' is not a watched series"),
        ({"mix:input": 0}, r"unit_axis\['mix:input'\] must be an axis"),
        ([1], "unit_axis must be a dict"),
    ]:
        with pytest.raises(ValueError, match=message):
            _monitor(model, tmp_path, x, unit_axis=bad)


def test_an_axis_the_probe_cannot_tell_warns_naming_series_and_candidates(tmp_path):
    model = nn.Sequential(nn.Conv1d(3, 6, 1), nn.ReLU(), nn.Conv1d(6, 2, 1))
    model.append(nn.Tanh())  # read by no weight layer: its axis is a guess
    x = torch.randn(4, 3, 5)
    with pytest.warns(UserWarning, match=r"'3' .*candidates \[1, 2\]"):
        m = _monitor(model, tmp_path, x, modules=["3"])
    assert m.last_snapshot["3"].shape[1] == 5
    m.close()


def test_llama_gated_units_revive_with_outputs_unchanged(tmp_path):
    from tb_deadneurons.torch.revive import revive_series

    model = _llama()
    mlp = model.model.layers[0].mlp
    ids = torch.randint(0, 64, (4, 16))
    opt = torch.optim.Adam(model.parameters())
    model(input_ids=ids).logits.sum().backward()
    opt.step()  # Adam state everywhere
    with torch.no_grad():
        mlp.gate_proj.weight[GATE_ZERO] = 0.0
        mlp.up_proj.weight[UP_ZERO] = 0.0
    tag = "model.layers.0.mlp"
    with _monitor(model, tmp_path, {"input_ids": ids}) as m:
        site = next(s for s in m._probe.layout if s.tag == tag)
        assert site.gated == (mlp.gate_proj, mlp.up_proj)
        dead = _dead(m.last_snapshot[tag])
        with torch.no_grad():
            before = model(input_ids=ids).logits
        assert revive_series(model, site, dead, opt) == sorted(GATE_ZERO + UP_ZERO)
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=ids).logits, before)
        assert (mlp.down_proj.weight[:, dead] == 0).all()
        assert (mlp.gate_proj.weight[dead] != 0).all()
        assert (mlp.up_proj.weight[dead] != 0).all()
        assert (opt.state[mlp.up_proj.weight]["exp_avg"][dead] == 0).all()
        m._snapshot(None)  # gate and up now nonzero: the units live again
        assert _dead(m.last_snapshot[tag]) == []


def test_monitor_revives_gated_units_and_refuses_functional_ones_saying_why(
    tmp_path,
):
    model = _llama()
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[UP_ZERO] = 0.0
    ids = torch.randint(0, 64, (4, 16))
    m = _monitor(model, tmp_path, {"input_ids": ids}, revive_every=1)
    m.step()
    assert m.revivals == [(1, "model.layers.0.mlp", UP_ZERO)]
    m.close()
    torch.manual_seed(0)
    functional = FunctionalMLP()
    with torch.no_grad():
        functional.fc1.bias[[2]] = -1e4
    m = _monitor(functional, tmp_path / "f", torch.randn(64, 10), revive_every=1)
    with pytest.warns(UserWarning, match=r"not reviving 'fc2:input'.*neither"):
        m.step()
    assert m.revivals == []
    m.close()


def test_an_in_place_activation_is_measured_after_it_ran(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 8), nn.Identity(), nn.ReLU(inplace=True), nn.Linear(8, 2)
    )
    with torch.no_grad():
        model[0].bias[[1, 5]] = -1e4  # timm's BatchNormAct2d: drop, then act
    with _monitor(model, tmp_path, torch.randn(32, 6)) as m:
        assert list(m.watched) == ["2"]
        assert _dead(m.last_snapshot["2"]) == [1, 5]


def test_a_silu_layer_mostly_dead_at_minus_40_shows_every_dead_unit(tmp_path):
    dead = list(range(24))  # 24 of 32: the median unit is a dead one
    model = _smooth_mlp(nn.SiLU(), dead)
    with _monitor(model, tmp_path, torch.randn(256, 8)) as m:
        assert _dead(m.last_snapshot["1"]) == dead


def _hf(family: str):
    import transformers as hf

    small = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    t5 = dict(vocab_size=64, d_model=32, d_ff=48, num_layers=1, num_heads=2, d_kv=8)
    return {
        "bert": lambda: hf.BertModel(
            hf.BertConfig(
                vocab_size=64,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=48,
            )
        ),
        "t5": lambda: hf.T5ForConditionalGeneration(hf.T5Config(**t5)),
        "mistral": lambda: hf.MistralForCausalLM(hf.MistralConfig(**small)),
        "qwen2": lambda: hf.Qwen2ForCausalLM(hf.Qwen2Config(**small)),
        "gemma": lambda: hf.GemmaForCausalLM(hf.GemmaConfig(**small, head_dim=8)),
    }[family]()


@pytest.mark.parametrize(
    "family, tags",
    [
        ("bert", ["encoder.layer.0.intermediate.intermediate_act_fn"]),
        (
            "t5",
            [
                "encoder.block.0.layer.1.DenseReluDense.act",
                "decoder.block.0.layer.2.DenseReluDense.act",
            ],
        ),
        ("mistral", ["model.layers.0.mlp"]),
        ("qwen2", ["model.layers.0.mlp"]),
        ("gemma", ["model.layers.0.mlp"]),  # gelu-tanh gate
    ],
)
def test_hf_ffn_units_of_each_family_by_default(tmp_path, family, tags):
    torch.manual_seed(0)
    ids = torch.randint(0, 64, (2, 8))
    x = {"input_ids": ids}
    if family == "t5":
        x["decoder_input_ids"] = ids
    with _monitor(_hf(family), tmp_path, x) as m:  # no pooler tanh, no logits
        assert {t: c.shape[1] for t, c in m.last_snapshot.items()} == {
            t: 48 for t in tags
        }


def _qwen2_moe(experts_implementation: str):
    import transformers as hf

    torch.manual_seed(0)
    config = hf.Qwen2MoeConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        moe_intermediate_size=24,
        shared_expert_intermediate_size=40,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=64,
    )
    config._experts_implementation = experts_implementation
    return hf.Qwen2MoeForCausalLM(config)


@pytest.mark.parametrize(
    "implementation, read_by",
    [
        ("eager", ""),
        ("batched_mm", ", read by bmm"),
        ("grouped_mm", ", read by _grouped_mm"),
    ],
)
def test_routed_experts_are_reported_unwatched_and_the_shared_expert_watched(
    tmp_path, implementation, read_by
):
    # A routed expert's rows mix experts (grouped, batched) or are made and
    # read inside the experts' forward (eager): no series may claim them.
    model = _qwen2_moe(implementation)
    assert model.config._experts_implementation == implementation
    x = torch.randint(0, 64, (4, 16))
    with pytest.warns(UserWarning, match="units not watched") as caught:
        m = _monitor(model, tmp_path, x)
    m.close()
    assert list(m.watched) == ["model.layers.0.mlp.shared_expert"]
    message = str([w.message for w in caught if "not watched" in str(w.message)][0])
    count = 4 if implementation == "eager" else 1  # eager: a call per expert hit
    assert f"model.layers.0.mlp.experts (silu x{count}{read_by})" in message


class FunctionalExpert(nn.Module):
    """``F.linear(relu(...), w2)`` inside one forward: no hook sees the units."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(16, 8) * 0.3)
        self.w2 = nn.Parameter(torch.randn(4, 16) * 0.3)

    def forward(self, x):
        return F.linear(F.relu(F.linear(x, self.w1)), self.w2)


def test_units_no_hook_sees_raise_naming_where_they_are(tmp_path):
    with pytest.raises(ValueError, match=r"not watchable: \['<model> \(relu x1\)'\]"):
        _monitor(FunctionalExpert(), tmp_path, torch.randn(32, 8))
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), FunctionalExpert())
    with pytest.warns(UserWarning, match=r"\['2 \(relu x1\)'\]"):
        m = _monitor(model, tmp_path, torch.randn(32, 8))
    m.close()
    assert list(m.watched) == ["1"]
