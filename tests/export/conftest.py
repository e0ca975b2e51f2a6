import numpy as np
import pytest


def block_sparse_mlp(block: int = 16, keep: float = 0.15, seed: int = 0, inputs: int = 64):
    """A 64-32-10 MLP whose kernels are zero except for blocks of `block` consecutive inputs."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((inputs,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10),
    ])
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w, b = layer.get_weights()
        kept = rng.random((-(-w.shape[0] // block), w.shape[1])) < keep
        kept[0, :] = True  # every output keeps at least one block
        w[~np.repeat(kept, block, axis=0)[: w.shape[0]]] = 0.0
        layer.set_weights([w, b + 0.1])
    return model


@pytest.fixture(scope="module")
def mlp16():
    return block_sparse_mlp(16)


@pytest.fixture(scope="module")
def data64():
    rng = np.random.default_rng(1)
    return rng.random((48, 64)).astype("float32"), rng.integers(0, 10, 48)


@pytest.fixture(scope="session")
def make_mlp():
    return block_sparse_mlp
