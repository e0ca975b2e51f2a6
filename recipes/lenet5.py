"""LeNet-5 on MNIST: the convolutional IMP benchmark of Han et al. 2015 (12x compression).

Adam at 1e-3 with cosine decay over each round, batch 60, global ranking at 20% of the
remaining weights per round (the output layer at half the rate), learning-rate rewinding (the
strategy that went furthest on LeNet-300-100, docs/results.md). Offline: digits resized to
28x28.
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
        name="lenet5",
        description="LeNet-5 on MNIST (offline: digits 28x28), IMP with learning-rate rewinding",
        model=ModelSpec("lenet5"),
        data=DataSpec("mnist", kwargs={"flatten": False}),
        train=TrainSpec(optimizer="adam", lr=1e-3, lr_schedule="cosine", lr_min_fraction=0.1),
        imp=IMPConfig(
            batch_size=60,
            epochs_per_round=20,
            rounds=12,
            rate=0.2,
            scope="global",
            rewind="lr",
            budget=0.01,
            layer_rates={"classifier": 0.1},
            stop_at_budget=False,
        ),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=200, micro=True),
        smoke={"imp.batch_size": 32},
        options={
            # --option qat: a quantization-aware finishing stage gives the int8 file.
            "qat": {"imp.final_qat_epochs": 5},
            # --option channel: whole channels, 20% of each layer's remaining ones per round
            # (74% gone after 6 rounds), then removed for real (tfimp.shrink).
            "channel": {"imp.granularity": "channel", "imp.scope": "layer",
                        "imp.layer_rates": {}, "imp.rounds": 6},
        },
    )
