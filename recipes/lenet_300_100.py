"""LeNet-300-100 on MNIST: the classic IMP benchmark (Han et al. 2015; Frankle & Carbin 2019).

Adam at 1.2e-3 with cosine decay to 1.2e-4 over each round, batch 60, global ranking, 20% of
the remaining weights per round with the output layer at half the rate, and learning-rate
rewinding (Renda et al. 2020): each round keeps the trained weights and replays the schedule.
It is the strategy that went furthest within 0.5 points here (docs/results.md, "IMP quality":
95.5% sparse vs 89.2% for weight rewinding to initialization).
Offline: scikit-learn's digits resized to 28x28, so the network keeps its 784-300-100-10 shape.
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
        name="lenet_300_100",
        description="LeNet-300-100 on MNIST (offline: digits 28x28), IMP, learning-rate rewinding",
        model=ModelSpec("lenet_300_100"),
        data=DataSpec("mnist", kwargs={"flatten": True}),
        train=TrainSpec(optimizer="adam", lr=1.2e-3, lr_schedule="cosine", lr_min_fraction=0.1),
        imp=IMPConfig(
            batch_size=60,
            epochs_per_round=20,
            rounds=16,
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
        },
    )
