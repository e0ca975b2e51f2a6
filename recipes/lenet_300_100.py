"""LeNet-300-100 on MNIST: the classic IMP benchmark (Han et al. 2015; Frankle & Carbin 2019).

Lottery-ticket settings: Adam at 1.2e-3, batch 60, global ranking, 20% of the remaining
weights per round with the output layer at half the rate, weights rewound to initialization.
Offline: scikit-learn's digits resized to 28x28, so the network keeps its 784-300-100-10 shape.
"""

from tfimp.recipe import DataSpec, ExportSpec, IMPSpec, ModelSpec, ProfileSpec, Recipe, TrainSpec


def recipe() -> Recipe:
    return Recipe(
        name="lenet_300_100",
        description="LeNet-300-100 on MNIST (offline: digits 28x28), lottery-ticket IMP",
        model=ModelSpec("lenet_300_100"),
        data=DataSpec("mnist", kwargs={"flatten": True}),
        train=TrainSpec(optimizer="adam", lr=1.2e-3, batch_size=60, epochs_per_round=20),
        imp=IMPSpec(rounds=14, rate=0.2, scope="global", rewind="init", budget=0.01,
                    layer_rates={"classifier": 0.1}),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=200, micro=True),
        smoke={"train.batch_size": 32},
    )
