"""A 1-D CNN on MNIST-1D: a benchmark harder than the digits that still trains in seconds.

MNIST-1D (Greydanus & Kobak 2024) is generated offline by the `mnist1d` package
(`pip install 'tfimp[mnist1d]'`): its standard 4,000 / 1,000 split of 40-sample signals.
Adam at 1e-2 with cosine decay over each round, batch 64, 20 epochs per round: 97.2% dense
test accuracy over 3 seeds, about 13 s of training on 2 cores (30 epochs: 97.7%; Adam at 3e-3
or batch 100 lose 1-2 points; docs/results.md). Global ranking at 20% of the remaining weights
per round with learning-rate rewinding, as LeNet-5; 16 rounds leave 3.5% of the weights. The
first convolution (160 weights) stays dense: ranked with the rest it loses 89% of its weights by
83% sparsity and all of them at 96%, and the network with it (seed 0: 78.5% sparse within 1
point with it dense, 73.8% without). The classifier holds over half of the weights, so it is
pruned at the common rate.
"""

from tfimp.pipeline import (
    DataSpec,
    ExportSpec,
    IMPConfig,
    ModelSpec,
    ProfileSpec,
    Recipe,
    TrainSpec,
)


def recipe() -> Recipe:
    return Recipe(
        name="mnist1d_cnn",
        description="1-D CNN on MNIST-1D (generated offline), IMP with learning-rate rewinding",
        model=ModelSpec("mnist1d_cnn"),
        data=DataSpec("mnist1d"),
        train=TrainSpec(optimizer="adam", lr=1e-2, lr_schedule="cosine", lr_min_fraction=0.1),
        imp=IMPConfig(
            batch_size=64,
            epochs_per_round=20,
            rounds=16,
            rate=0.2,
            scope="global",
            exclude=("conv1",),
            rewind="lr",
            budget=0.01,
            stop_at_budget=False,
        ),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=200, micro=True),
        smoke={"imp.batch_size": 32},
        options={
            # --option qat: a quantization-aware finishing stage gives the int8 file.
            "qat": {"imp.final_qat_epochs": 5},
            # --option channel: whole channels, 20% of each layer's remaining ones per round,
            # then removed for real (tfimp.shrink).
            "channel": {"imp.granularity": "channel", "imp.scope": "layer", "imp.rounds": 6},
        },
    )
