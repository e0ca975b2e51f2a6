"""ResNet-8 on CIFAR-10: the MLPerf Tiny image-classification reference (quality target 85%).

MLPerf Tiny trains it with Adam at 1e-3, batch 32. IMP: global ranking, 20% per round,
rewinding to epoch 1 (Frankle et al. 2020: deeper networks need late rewinding).
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
        description="ResNet-8 (MLPerf Tiny IC) on CIFAR-10, IMP with rewinding to epoch 1",
        model=ModelSpec("resnet8", kwargs={"filters": 16}),
        data=DataSpec("cifar10"),
        train=TrainSpec(optimizer="adam", lr=1e-3),
        imp=IMPConfig(
            batch_size=32,
            epochs_per_round=30,
            rounds=8,
            rate=0.2,
            scope="global",
            rewind="epoch",
            rewind_at=1,
            budget=0.01,
            stop_at_budget=False,
        ),
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
            "channel": {"imp.granularity": "channel", "imp.scope": "layer", "imp.rounds": 6},
        },
    )
