import dataclasses

import pytest

from tfimp.export import quantization as q


@pytest.mark.parametrize("name", ["float32", "dynamic", "float16", "int8", "int16x8"])
def test_get_by_name_round_trips_through_config(name):
    config = q.get(name)
    assert config.name == name
    assert q.get(config.get_config()) == config
    assert type(config).from_config(config.get_config()) == config


def test_none_is_float32_and_configs_pass_through():
    assert q.get(None) == q.Float32()
    custom = q.Int8(integer_io=True)
    assert q.get(custom) is custom
    assert q.Quantization.from_config(custom.get_config()) == custom
    assert custom.get_config() == {"name": "int8", "integer_io": True, "per_channel_dense": True}


def test_only_calibrated_modes_need_representative_data():
    needs = {name for name, cls in q.QUANTIZATIONS.items() if cls.needs_representative_data}
    assert needs == {"int8", "int16x8"}


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"quantization='int4'.*|.*'dynamic'.*'float16'"):
        q.get("int4")
    with pytest.raises(ValueError, match="config"):
        q.Quantization.from_config({"name": "int4"})
    with pytest.raises(ValueError, match="config"):
        q.Int8.from_config({"name": "float16"})


def test_int8_validates_integer_io():
    with pytest.raises(ValueError, match="integer_io=1"):
        q.Int8(integer_io=1)
    with pytest.raises(ValueError, match="per_channel_dense='no'"):
        q.Int8(per_channel_dense="no")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.Int8().integer_io = True
