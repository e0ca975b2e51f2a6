"""LeNet-300-100 on MNIST: the classic IMP benchmark (Han et al. 2015; Frankle & Carbin 2019).

Budgeted IMP: 80 epochs in all (twice a 40-epoch gradual pruning run), 20 dense, then 6 rounds
of 10 that each prune 45% of the remaining weights (the output layer far less), spread over
the first half of the round (cyclical pruning), ranked by LAMP scores and retrained with ALLR's
adaptive linear learning rate. Adam at 1.2e-3 (cosine over the dense round), batch 60. It beat
gradual pruning, fixed-step IMP and the other retraining schedules per epoch spent on the digits
and MNIST-1D (docs/results.md, "IMP vs gradual pruning"); the 340-epoch IMP of before reached
the same sparsity at no better accuracy.
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
        description="LeNet-300-100 on MNIST (offline: digits 28x28), budgeted IMP, 80 epochs",
        model=ModelSpec("lenet_300_100"),
        data=DataSpec("mnist", kwargs={"flatten": True}),
        train=TrainSpec(optimizer="adam", lr=1.2e-3, lr_schedule="cosine", lr_min_fraction=0.1),
        imp=IMPConfig.budgeted(80, batch_size=60, layer_rates={"classifier": 0.1}),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=200, micro=True),
        smoke={"imp.batch_size": 32},
        options={
            # --option qat: a quantization-aware finishing stage gives the int8 file.
            "qat": {"imp.final_qat_epochs": 5},
        },
    )
