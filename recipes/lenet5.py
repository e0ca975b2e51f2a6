"""LeNet-5 on MNIST: the convolutional IMP benchmark of Han et al. 2015 (12x compression).

Adam at 1e-3, batch 60, global ranking at 20% of the remaining weights per round (the output
layer at half the rate), weights rewound to initialization. Offline: digits resized to 28x28.
"""

from tfimp.recipe import DataSpec, ExportSpec, IMPSpec, ModelSpec, ProfileSpec, Recipe, TrainSpec


def recipe() -> Recipe:
    return Recipe(
        name="lenet5",
        description="LeNet-5 on MNIST (offline: digits 28x28), global IMP with rewinding",
        model=ModelSpec("lenet5"),
        data=DataSpec("mnist", kwargs={"flatten": False}),
        train=TrainSpec(optimizer="adam", lr=1e-3, batch_size=60, epochs_per_round=20),
        imp=IMPSpec(rounds=12, rate=0.2, scope="global", rewind="init", budget=0.01,
                    layer_rates={"classifier": 0.1}),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=200, micro=True),
        smoke={"train.batch_size": 32},
    )
