"""`tfimp.callbacks` is `tfimp.sparsity.callbacks`: the Keras callbacks that drive masks."""

import sys

from tfimp.sparsity import callbacks as _module

sys.modules[__name__] = _module
