"""Channel dependency groups on hand-built graphs: every rule, and what must stay whole."""

import keras
import numpy as np
import pytest

from tfimp.structure.graph import trace

L = keras.layers


def residual():
    x = keras.Input((8, 8, 3))
    h = L.ReLU()(L.BatchNormalization(name="bn0")(L.Conv2D(4, 3, padding="same", name="stem")(x)))
    y = L.ReLU()(L.Conv2D(6, 3, padding="same", name="c1")(h))
    y = L.BatchNormalization(name="bn2")(L.Conv2D(4, 3, padding="same", name="c2")(y))
    h = L.GlobalAveragePooling2D()(L.Add()([h, y]))
    return keras.Model(x, L.Dense(3, name="head")(h))


def test_residual_add_ties_the_stem_and_the_block_output():
    graph = trace(residual())
    group = graph.group_of("stem")
    assert group is graph.group_of("c2")
    assert group.sources == ("stem", "c2")
    assert set(group.owners) == {"stem", "bn0", "c2", "bn2"}
    assert set(group.members) == {"stem", "bn0", "c1", "c2", "bn2", "head"}
    assert len(group.classes) == 4 and not group.fixed.any()
    np.testing.assert_array_equal(graph.entry("stem").out_classes, graph.entry("c2").out_classes)
    np.testing.assert_array_equal(graph.entry("head").in_classes, graph.entry("c2").out_classes)
    inner = graph.group_of("c1")
    assert inner.sources == ("c1",) and set(inner.members) == {"c1", "c2"}


def test_concatenate_offsets_the_channels_and_keeps_groups_apart():
    x = keras.Input((6, 6, 2))
    a = L.Conv2D(3, 1, name="a")(x)
    b = L.Conv2D(5, 1, name="b")(x)
    c = L.BatchNormalization(name="bnc")(L.Concatenate()([a, b]))
    model = keras.Model(x, L.Conv2D(2, 1, name="d")(c))
    graph = trace(model)
    ga, gb = graph.group_of("a"), graph.group_of("b")
    assert ga.index != gb.index and ga.sources == ("a",) and gb.sources == ("b",)
    both = np.concatenate([graph.entry("a").out_classes, graph.entry("b").out_classes])
    np.testing.assert_array_equal(graph.entry("d").in_classes, both)
    np.testing.assert_array_equal(graph.entry("bnc").out_classes, both)
    assert "bnc" in ga.owners and "bnc" in gb.owners and "d" in ga.members


def se_block():
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="c")(x)
    s = L.GlobalAveragePooling2D()(h)
    s = L.Dense(2, activation="relu", name="se_reduce")(s)
    s = L.Dense(8, activation="sigmoid", name="se_expand")(s)
    h = L.Multiply()([h, L.Reshape((1, 1, 8))(s)])
    h = L.Conv2D(4, 1, name="out_conv")(h)
    return keras.Model(x, L.Dense(2, name="head")(L.Flatten()(h)))


def test_squeeze_and_excitation_ties_the_gate_to_the_features():
    graph = trace(se_block())
    group = graph.group_of("c")
    assert group.sources == ("c", "se_expand")
    assert set(group.members) == {"c", "se_reduce", "se_expand", "out_conv"}
    squeeze = graph.group_of("se_reduce")
    assert squeeze.sources == ("se_reduce",) and set(squeeze.members) == {"se_reduce", "se_expand"}
    assert squeeze.prunable and group.prunable


def test_flatten_to_dense_repeats_each_channel_over_positions():
    x = keras.Input((4, 4, 1))
    h = L.Flatten()(L.Conv2D(3, 3, name="c")(x))
    graph = trace(keras.Model(x, L.Dense(2, name="fc")(L.Dense(5, name="hidden")(h))))
    out = graph.entry("c").out_classes
    np.testing.assert_array_equal(graph.entry("hidden").in_classes, np.tile(out, 4))
    assert set(graph.group_of("c").members) == {"c", "hidden"}


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_nested_models_are_traced_through(kind):
    if kind == "functional":
        i = keras.Input((6,))
        inner = keras.Model(i, L.Dense(8, name="inner_b")(L.Dense(8, name="inner_a")(i)),
                            name="inner")
    else:
        inner = keras.Sequential([keras.Input((6,)), L.Dense(8, name="inner_a"),
                                  L.Dense(8, name="inner_b")], name="inner")
    x = keras.Input((4,))
    out = L.Dense(2, name="head")(inner(L.Dense(6, name="pre")(x)))
    graph = trace(keras.Model(x, out))
    assert set(graph.group_of("pre").members) == {"pre", "inner_a"}
    assert set(graph.group_of("inner_a").members) == {"inner_a", "inner_b"}
    assert set(graph.group_of("inner_b").members) == {"inner_b", "head"}
    assert all(graph.groups[g].prunable for g in graph.entry("inner_b").groups(graph, "out"))


def test_shared_layer_ties_the_inputs_of_all_its_calls():
    x = keras.Input((4,))
    square = L.Dense(6, name="square")
    y = square(square(L.Dense(6, name="pre")(x)))
    graph = trace(keras.Model(x, L.Dense(2, name="head")(y)))
    group = graph.group_of("square")
    assert group is graph.group_of("pre") and set(group.sources) == {"pre", "square"}
    assert group.prunable


def test_shared_layer_fed_by_a_model_input_stays_whole():
    x = keras.Input((6,))
    square = L.Dense(6, name="square")
    graph = trace(keras.Model(x, L.Dense(2, name="head")(square(square(x)))))
    assert not graph.group_of("square").prunable


def test_depthwise_multiplier_repeats_channels():
    x = keras.Input((6, 6, 2))
    h = L.Conv2D(4, 1, name="c")(x)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(h)
    graph = trace(keras.Model(x, L.Conv2D(5, 1, name="pw")(h)))
    out = graph.entry("c").out_classes
    np.testing.assert_array_equal(graph.entry("pw").in_classes, np.repeat(out, 2))
    dw = {s.variable: s.classes for s in graph.entry("dw").slices}
    np.testing.assert_array_equal(dw["kernel"], out)
    np.testing.assert_array_equal(dw["bias"], np.repeat(out, 2))
    assert set(graph.group_of("c").owners) == {"c", "dw"}


def test_model_outputs_and_inputs_keep_every_channel():
    x = keras.Input((5,))
    h = L.Dense(8, name="h")(x)
    graph = trace(keras.Model(x, [L.Dense(3, name="o1")(h), h]))
    assert not graph.group_of("h").prunable
    assert not graph.group_of("o1").prunable
    assert "model output" in graph.reasons[int(graph.entry("h").out_classes[0])]
    assert graph.notes == []


def test_untracked_layers_keep_their_channels_and_say_so():
    x = keras.Input((5,))
    h = L.LayerNormalization(name="ln")(L.Dense(8, name="a")(x))
    h = L.Dense(4, activation="softmax", name="soft")(L.Dense(6, name="b")(h))
    graph = trace(keras.Model(x, L.Dense(2, name="head")(h)))
    assert not graph.group_of("a").prunable
    assert graph.group_of("b").prunable
    assert not graph.group_of("soft").prunable
    notes = " ".join(graph.notes)
    assert "LayerNormalization 'ln'" in notes and "['a']" in notes
    assert "'softmax' mixes channels" in notes and "['soft']" in notes


def test_grouped_convolution_is_not_tracked():
    x = keras.Input((6, 6, 4))
    h = L.Conv2D(4, 1, name="c")(x)
    h = L.Conv2D(4, 1, groups=2, name="grouped")(h)
    graph = trace(keras.Model(x, L.Conv2D(2, 1, name="o")(h)))
    assert not graph.group_of("c").prunable
    assert any("grouped" in n for n in graph.notes)


def test_subclassed_model_is_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    model = Net()
    model(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model"):
        trace(model)
