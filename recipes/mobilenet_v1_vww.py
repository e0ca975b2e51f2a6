"""MobileNetV1 (alpha 0.25, 96x96) on Visual Wake Words: the MLPerf Tiny VWW reference
(quality target 80%).

The network starts with explicit 1-pixel padding and a 3x3 stride-2 convolution on 3 channels
and ends in a spatial mean, so that XNNPACK's sparse inference can apply to the float model.
Pointwise (1x1) convolutions hold most weights; IMP ranks globally. Offline: generated
96x96x3 images, two classes (accuracy is meaningless there).
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
        name="mobilenet_v1_vww",
        description="MobileNetV1 0.25 at 96x96 (MLPerf Tiny VWW), XNNPACK-sparse friendly",
        model=ModelSpec("mobilenet_v1", kwargs={"alpha": 0.25, "input_shape": (96, 96, 3)}),
        data=DataSpec("vww", kwargs={"size": 96}),
        train=TrainSpec(optimizer="adam", lr=1e-3),
        imp=IMPConfig.budgeted(20, batch_size=32),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=100, micro=True, board="cortex-m4-256k"),
        smoke={
            "data.name": "cifar10",
            "data.kwargs": {},
            "model.kwargs.input_shape": (32, 32, 3),
            "imp.rewind": "init",
            "imp.rewind_at": None,
            "export.sparse": False,
        },
        options={
            "qat": {"imp.final_qat_epochs": 2},
            # --option channel: whole channels, 25% of each layer's remaining ones per round,
            # then removed for real (tfimp.shrink).
            "channel": {"imp.granularity": "channel", "imp.scope": "layer", "imp.rounds": 6,
                        "imp.rate": 0.2, "imp.ramp": 0.0, "imp.rewind": "epoch",
                        "imp.rewind_at": 1, "imp.total_epochs": None,
                        "imp.epochs_per_round": 10},
        },
    )
