import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnist_core.configs import MAX_WIDTH, ConfigError, RunConfig


@pytest.mark.parametrize("changes, parameter", [
    ({"l2": -0.1}, "l2"),
    ({"l2": math.nan}, "l2"),
    ({"l2": math.inf}, "l2"),
    ({"l2": "0.1"}, "l2"),
    ({"hidden": (0, 5)}, "hidden width"),
    ({"hidden": (2.5, 5)}, "hidden width"),
    ({"hidden": (MAX_WIDTH + 1,)}, "hidden width"),
    ({"hidden": ()}, "hidden"),
    ({"hidden": "25,15"}, "hidden"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1.5}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"seed": -1}, "seed"),
    ({"limit": 5}, "limit"),
    ({"model": "rnn"}, "model"),
    ({"precision": "float16"}, "precision"),
    ({"precision": "mixed_bfloat16"}, "precision"),  # the reference MLP keeps float32
])
def test_invalid_values_name_parameter_value_and_range(changes, parameter):
    with pytest.raises(ConfigError) as error:
        RunConfig(**changes)
    message = str(error.value)
    assert message.startswith(parameter)
    assert repr(next(iter(changes.values()))) in message or "got" in message


def test_key_is_stable_across_versions():
    # If this changes, every stored run (including cached_results/) is orphaned: bump it deliberately.
    assert RunConfig().key("0" * 64) == "8ae96591e8ede996dad7339a16e6104d1b7251b5cef367f06dcf9bea544ee501"


def test_key_depends_on_config_and_data():
    base = RunConfig()
    assert base.key("a") != base.key("b")
    assert base.key("a") != RunConfig(l2=0.01).key("a")
    assert RunConfig(l2=0).key("a") == RunConfig(l2=0.0).key("a")
    assert RunConfig(limit=60000).key("a") == base.key("a")


def test_cnn_ignores_mlp_fields():
    assert RunConfig.for_model("cnn").hidden == ()
    assert RunConfig.for_model("cnn").epochs == 10
    assert RunConfig.for_model("improved_cnn").batch_size == 128


@given(
    hidden=st.lists(st.integers(1, MAX_WIDTH), min_size=1, max_size=4),
    l2=st.floats(0, 100, allow_nan=False),
    epochs=st.integers(1, 500),
    seed=st.integers(0, 2**31 - 1),
    limit=st.none() | st.integers(10, 60000),
)
def test_round_trip_keeps_the_key(hidden, l2, epochs, seed, limit):
    config = RunConfig(hidden=tuple(hidden), l2=l2, epochs=epochs, seed=seed, limit=limit)
    again = RunConfig.from_dict(config.to_dict())
    assert again == config and again.key("f") == config.key("f")


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ConfigError, match="unknown"):
        RunConfig.from_dict({"model": "mlp", "dropout": 0.5})


def test_negative_zero_lambda_is_the_same_config_and_key():
    from mnist_core.catalog import lambda_configs

    assert RunConfig(l2=-0.0).key("f" * 64) == RunConfig(l2=0.0).key("f" * 64)
    assert str(RunConfig(l2=-0.0).to_dict()["l2"]) == "0.0"
    assert len(lambda_configs([0.0, -0.0, 0.001, 0.001])) == 2


def test_precision_is_ours_only_and_float32_keys_are_unchanged():
    assert {RunConfig.for_model(m).precision for m in ("mlp", "cnn", "improved_cnn")} == {"float32"}
    with pytest.raises(ConfigError, match="improved CNN only"):
        RunConfig.for_model("cnn", precision="mixed_bfloat16")
    # A float32 improved CNN keeps the key it had before precision existed (cached_results/).
    float32 = RunConfig.for_model("improved_cnn", precision="float32")
    assert float32.key("0" * 64) == "2e730a44785c9fce4a7cc04fc394500301324ae9171a2e8fc9d57f59156e7b3f"
    bf16 = RunConfig.for_model("improved_cnn", precision="mixed_bfloat16")
    assert bf16.key("0" * 64) != float32.key("0" * 64) and "bf16" in bf16.label
    assert RunConfig.from_dict(bf16.to_dict()) == bf16
    old = {k: v for k, v in float32.to_dict().items() if k != "precision"}  # a config.json from before
    assert RunConfig.from_dict(old) == float32
