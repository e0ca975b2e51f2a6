"""ResNet-20 on CIFAR-10: open_lth's reference network for IMP with rewinding.

open_lth (cifar_resnet_20): SGD with momentum 0.9 at 0.1, weight decay 1e-4, batch 128,
20% of the remaining weights per round, global ranking, rewinding to an early epoch; here the
budgeted default (`IMPConfig.budgeted`) with twice the 60 epochs of one dense training, not
measured on CIFAR-10 (it can't be downloaded).
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
        name="resnet20",
        description="ResNet-20 (open_lth) on CIFAR-10, budgeted IMP, 120 epochs",
        model=ModelSpec("resnet20", kwargs={"width": 16}),
        data=DataSpec("cifar10"),
        train=TrainSpec(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4),
        imp=IMPConfig.budgeted(120, batch_size=128),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=100, micro=True),
        smoke={
            "model.kwargs.width": 8,
            "imp.batch_size": 32,
            "train.lr": 0.01,
            "imp.rewind": "init",
            "imp.rewind_at": None,
            "export.sparse": False,
        },
    )
