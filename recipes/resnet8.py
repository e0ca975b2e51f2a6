"""ResNet-8 on CIFAR-10: the MLPerf Tiny image-classification reference (quality target 85%).

MLPerf Tiny trains it with Adam at 1e-3, batch 32. IMP: the budgeted default
(`IMPConfig.budgeted`, measured on the digits and MNIST-1D) with twice the 30 epochs of one
dense training; not measured on CIFAR-10 here (it can't be downloaded).
Offline: generated data with CIFAR-10's shapes (accuracy is meaningless there).
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
        name="resnet8",
        description="ResNet-8 (MLPerf Tiny IC) on CIFAR-10, budgeted IMP, 60 epochs",
        model=ModelSpec("resnet8", kwargs={"filters": 16}),
        data=DataSpec("cifar10"),
        train=TrainSpec(optimizer="adam", lr=1e-3),
        imp=IMPConfig.budgeted(60, batch_size=32),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=100, micro=True),
        smoke={
            "model.kwargs.filters": 8,
            "imp.rewind": "init",
            "imp.rewind_at": None,
            "export.sparse": False,
        },
        options={
            "qat": {"imp.final_qat_epochs": 3},
            # --option channel: whole channels, 20% of each layer's remaining ones per round,
            # then removed for real (tfimp.shrink).
            "channel": {"imp.granularity": "channel", "imp.scope": "layer", "imp.rounds": 6,
                        "imp.rate": 0.2, "imp.ramp": 0.0, "imp.rewind": "epoch",
                        "imp.rewind_at": 1, "imp.total_epochs": None,
                        "imp.epochs_per_round": 30},
        },
    )
