"""`tfimp.wrappers`: the pruning wrapper and the table of prunable weights (see
`tfimp.sparsity.wrapper` and `tfimp.sparsity.registry`)."""

from tfimp.sparsity.registry import *  # noqa: F403
from tfimp.sparsity.registry import __all__ as _registry_all
from tfimp.sparsity.wrapper import *  # noqa: F403
from tfimp.sparsity.wrapper import __all__ as _wrapper_all

__all__ = [*_registry_all, *_wrapper_all]
