"""LeNet-5 on MNIST: the convolutional IMP benchmark of Han et al. 2015 (12x compression).

Adam at 1e-3 (cosine), batch 60, and budgeted IMP (`IMPConfig.budgeted`: 80 epochs, rounds of
45% spread over half a round, LAMP ranking, ALLR retraining), the output layer pruned far
less. Seven rounds, not six: with six the run stops at 96.65% sparsity, short of the 97.44%
that gradual pruning keeps within half a point; with seven it keeps 97.94% within half a point
(docs/results.md, "IMP vs gradual pruning"). The channel option keeps the measured channel IMP
of before (20% of each layer's channels per round, 20 epochs a round).
Offline: digits resized to 28x28.
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
        description="LeNet-5 on MNIST (offline: digits 28x28), budgeted IMP, 80 epochs",
        model=ModelSpec("lenet5"),
        data=DataSpec("mnist", kwargs={"flatten": False}),
        train=TrainSpec(optimizer="adam", lr=1e-3, lr_schedule="cosine", lr_min_fraction=0.1),
        imp=IMPConfig.budgeted(80, rounds=7, batch_size=60, layer_rates={"classifier": 0.1}),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=200, micro=True),
        smoke={"imp.batch_size": 32},
        options={
            # --option qat: a quantization-aware finishing stage gives the int8 file.
            "qat": {"imp.final_qat_epochs": 5},
            # --option channel: whole channels, 20% of each layer's remaining ones per round
            # (74% gone after 6 rounds), then removed for real (tfimp.shrink).
            "channel": {"imp.granularity": "channel", "imp.scope": "layer",
                        "imp.layer_rates": {}, "imp.rounds": 6, "imp.rate": 0.2,
                        "imp.ramp": 0.0, "imp.rewind": "lr", "imp.total_epochs": None,
                        "imp.epochs_per_round": 20},
        },
    )
