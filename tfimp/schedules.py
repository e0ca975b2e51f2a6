"""`tfimp.schedules` is `tfimp.sparsity.schedules`: the pruning schedules."""

import sys

from tfimp.sparsity import schedules as _module

sys.modules[__name__] = _module
