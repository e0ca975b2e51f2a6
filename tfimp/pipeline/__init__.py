"""Recipes and the runner: the recipe schema and its `key=value` overrides, `tfimp run` (IMP,
export, verification, profiling) and its report folder.

    from tfimp.pipeline import DataSpec, ModelSpec, Recipe, TrainSpec
    from tfimp import IMPConfig
"""

from tfimp.lottery.config import IMPConfig
from tfimp.pipeline.recipe import (
    DataSpec,
    ExportSpec,
    ModelSpec,
    ProfileSpec,
    Recipe,
    TrainSpec,
    available,
    load_recipe,
)

__all__ = ["DataSpec", "ExportSpec", "IMPConfig", "ModelSpec", "ProfileSpec", "Recipe",
           "TrainSpec", "available", "load_recipe"]
