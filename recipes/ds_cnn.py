"""DS-CNN on Speech Commands: the MLPerf Tiny keyword-spotting reference (quality target 90%).

49x10 MFCC input, 12 classes; MLPerf Tiny trains with Adam at 5e-4, batch 100. The real data
comes from a Speech Commands folder given with `data.kwargs.path=...`; offline: generated
MFCC-shaped data (accuracy is meaningless there).
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
        name="ds_cnn",
        description="DS-CNN (MLPerf Tiny KWS) on Speech Commands, 49x10 MFCC, 12 classes",
        model=ModelSpec("ds_cnn", kwargs={"filters": 64}),
        data=DataSpec("speech_commands"),
        train=TrainSpec(optimizer="adam", lr=5e-4),
        imp=IMPConfig.budgeted(24, batch_size=100),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=100, micro=True, board="cortex-m4-256k"),
        smoke={
            "model.kwargs.filters": 16,
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
                        "imp.epochs_per_round": 12},
        },
    )
