"""A small Transformer text classifier on IMDB: shows that attention layers prune too.

Token + position embeddings, one self-attention block (MultiHeadAttention), feed-forward, mean
pooling; the sizes of the Keras "Text classification with Transformer" example. Offline:
generated token sequences (accuracy is meaningless there).
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
        name="transformer_text",
        description="Transformer classifier (Embedding + MultiHeadAttention) on IMDB",
        model=ModelSpec(
            "transformer_classifier",
            kwargs={
                "vocab_size": 20000,
                "seq_len": 200,
                "embed_dim": 32,
                "num_heads": 2,
                "ff_dim": 32,
            },
        ),
        data=DataSpec("imdb", kwargs={"vocab_size": 20000, "seq_len": 200}),
        train=TrainSpec(optimizer="adam", lr=1e-3),
        imp=IMPConfig.budgeted(14, batch_size=32),
        export=ExportSpec(float32=True, int8=True, sparse="auto"),
        profile=ProfileSpec(threads=(1, 2), runs=100, micro=True),
        smoke={
            "model.kwargs.vocab_size": 500,
            "model.kwargs.seq_len": 32,
            "data.kwargs.vocab_size": 500,
            "data.kwargs.seq_len": 32,
        },
    )
