"""Compressed models run bit-exactly in the TFLite Micro interpreter (real runtime)."""

import numpy as np
import pytest
from micro_models import images, int8_bytes, sparse_cnn, sparse_mlp

from tfimp.export import Lut, compress_tflm, decompress_tflm, inspect, run_litert, run_micro
from tfimp.export import tflm_compression as tc


@pytest.fixture(scope="module")
def cnn():
    x = images()
    return int8_bytes(sparse_cnn(), x), x


@pytest.fixture(scope="module")
def clustered_cnn():
    x = images()
    return int8_bytes(sparse_cnn(levels=3), x), x


def _weights(data) -> dict:
    """Name -> option of the int8 kernels (conv, depthwise, two Dense)."""
    return {o.name: o for o in tc.tensor_options(data) if o.dtype == "int8" and not o.reason}


def _same_in_tflm(original, compressed, x):
    a, b = run_micro(original, x), run_micro(compressed, x)
    np.testing.assert_array_equal(a.outputs[0], b.outputs[0])
    return a, b


def test_pruning_is_bit_exact_per_channel_on_both_axes(cnn):
    data, x = cnn
    kernels = _weights(data)
    assert len(kernels) == 4  # conv (axis 0), depthwise (last axis), Dense x2 (axis 0)
    small = compress_tflm(data, {name: "pruning" for name in kernels})
    assert small.counts()["pruning"] == 4
    dense, packed = _same_in_tflm(data, small.data, x)
    assert packed.arena_bytes > dense.arena_bytes  # decoded weights live in the arena
    big = max(kernels.values(), key=lambda o: o.dense_bytes)
    row = next(t for t in small.tensors if t.name == big.name)
    assert row.stored_bytes == big.pruning_bytes < 0.5 * big.dense_bytes
    assert inspect(small.data).ops.count(tc.DECODE_OP) == 4


def test_lut_is_bit_exact_at_fixed_and_fitted_widths(clustered_cnn):
    data, x = clustered_cnn
    kernels = _weights(data)
    assert max(o.values_per_channel for o in kernels.values()) <= 7  # 3 levels x 2 signs + 0
    for spec in (Lut(3), Lut(7), "lut"):
        small = compress_tflm(data, {name: spec for name in kernels})
        assert {t.bits for t in small.tensors if t.encoding == "lut"} <= {3, 7}
        _same_in_tflm(data, small.data, x)


def test_pruning_and_lut_mix_in_one_model(clustered_cnn):
    data, x = clustered_cnn
    names = sorted(_weights(data))
    mixed = compress_tflm(data, {n: ("pruning" if k % 2 else Lut(3)) for k, n in
                                 enumerate(names)})
    assert mixed.counts() == {"none": 0, "pruning": 2, "lut": 2}
    _same_in_tflm(data, mixed.data, x)
    assert {t.name: t.encoding for t in tc.read_encodings(mixed.data)} == {
        t.name: t.encoding for t in mixed.tensors}
    info = inspect(mixed.data)
    assert {info.tensor(t.name).encoding for t in mixed.tensors} == {"tflm-pruning", "tflm-lut"}
    assert sum(t.encoding == "tflm-ancillary" for t in info.tensors) == 4


def test_per_tensor_dense_weights_and_biases(cnn):
    x = np.random.default_rng(2).random((16, 256)).astype("float32")
    model = sparse_mlp()
    data = int8_bytes(model, x, per_channel_dense=False)
    options = tc.tensor_options(data)
    biases = [o for o in options if o.dtype == "int32" and not o.reason]
    assert biases and all(o.values_per_channel >= 1 for o in biases)
    small = compress_tflm(data, {(o.subgraph, o.index): "pruning" for o in options
                                 if not o.reason})
    _same_in_tflm(data, small.data, x[:8])


def test_decompress_restores_the_model_for_litert(clustered_cnn):
    data, x = clustered_cnn
    small = compress_tflm(data, tc.plan(data, "auto"))
    back = decompress_tflm(small.data)
    assert tc.DECODE_OP not in inspect(back).ops
    np.testing.assert_array_equal(run_litert(back, x)[0], run_litert(data, x)[0])


def test_auto_plan_takes_the_smaller_encoding_per_tensor(clustered_cnn):
    data, _ = clustered_cnn
    options = {(o.subgraph, o.index): o for o in tc.tensor_options(data)}
    for key, spec in tc.plan(data, "auto").items():
        o = options[key]
        chosen = "lut" if isinstance(spec, Lut) else "pruning"
        other = "pruning" if chosen == "lut" else "lut"
        assert o.stored_bytes(chosen) < o.dense_bytes
        assert o.stored_bytes(other) is None or o.stored_bytes(chosen) <= o.stored_bytes(other)


def test_tflm_refuses_stacked_decodes(cnn):
    """Why pruning and LUT never stack on one tensor: DECODE reads constants only."""
    from tfimp.export import tflite_edit as edit
    from tfimp.export import tflm_encoding as enc
    from tfimp.export.micro_run import MicroError

    data, x = cnn
    name = max(_weights(data).values(), key=lambda o: o.dense_bytes).name
    tree = edit.read(compress_tflm(data, {name: "pruning"}).data)
    sg = tree.subgraphs[0]
    k = next(i for i, op in enumerate(sg.operators) if edit.op_name(tree, op) == tc.DECODE_OP)
    decode = sg.operators[k]
    bitmap = edit.constant_array(tree, sg.tensors[decode.inputs[0]]).view(np.int8)
    outer = enc.encode_pruning(bitmap)  # the bitmap itself encoded, for a DECODE to decode
    sg.tensors += [tc._uint8_tensor(b"bitmap_enc", len(outer.data),
                                    tc._new_buffer(tree, outer.data)),
                   tc._uint8_tensor(b"bitmap_anc", len(outer.ancillary),
                                    tc._new_buffer(tree, outer.ancillary)),
                   tc._uint8_tensor(b"bitmap", bitmap.size, tc._empty_buffer(tree))]
    first = tree.subgraphs[0].operators[k].__class__()
    n = len(sg.tensors)
    first.opcodeIndex, first.inputs, first.outputs = decode.opcodeIndex, [n - 3, n - 2], [n - 1]
    decode.inputs = [n - 1, *decode.inputs[1:]]
    sg.operators.insert(k, first)
    with pytest.raises(MicroError, match="IsConstantTensor"):
        run_micro(edit.write(tree), x[:1])


def test_bad_requests_name_the_problem(cnn):
    data, _ = cnn
    kernel = max(_weights(data).values(), key=lambda o: o.dense_bytes)
    info = inspect(data)
    activation = next(t.name for t in info.tensors if not t.constant and t.index >= 0)
    with pytest.raises(ValueError, match="not a constant"):
        compress_tflm(data, {activation: "pruning"})
    with pytest.raises(ValueError, match="names no tensor"):
        compress_tflm(data, {"no/such/tensor": "pruning"})
    with pytest.raises(ValueError, match=r"`bits` must be an integer in 1\.\.7"):
        compress_tflm(data, {kernel.name: Lut(8)})
    with pytest.raises(ValueError, match=r"need \d-bit indices"):
        compress_tflm(data, {kernel.name: Lut(1)})
    with pytest.raises(ValueError, match="must be 'pruning', 'lut'"):
        compress_tflm(data, {kernel.name: "huffman"})
    shape_param = next(o for o in tc.tensor_options(data) if "not a bias" in o.reason)
    with pytest.raises(ValueError, match="shape parameters"):
        compress_tflm(data, {(shape_param.subgraph, shape_param.index): "pruning"})
    small = compress_tflm(data, {kernel.name: "pruning"}).data
    with pytest.raises(ValueError, match="compressed already"):
        compress_tflm(small, {kernel.name: "pruning"})
    with pytest.raises(ValueError, match="'TFL3'"):
        compress_tflm(b"not a model at all", {})


def test_every_buffer_starts_on_a_16_byte_boundary(clustered_cnn):
    from tfimp.export.inspect import schema

    data, _ = clustered_cnn
    small = compress_tflm(data, tc.plan(data, "auto")).data
    base = np.frombuffer(small, np.uint8)
    model = schema().Model.GetRootAs(small, 0)
    starts = [model.Buffers(i).DataAsNumpy().ctypes.data - base.ctypes.data
              for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert len(starts) > 4 and all(s % 16 == 0 for s in starts)
