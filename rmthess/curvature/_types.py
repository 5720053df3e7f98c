"""Type aliases of the public signatures of rmthess.curvature and rmthess.landscape.

Only for annotations: the modules that use them import them under ``TYPE_CHECKING`` (and
have ``from __future__ import annotations``), so nothing here runs when rmthess is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.sparse import sparray, spmatrix
from scipy.sparse.linalg import LinearOperator
from torch import nn
from torch.utils.data import Dataset as TorchDataset

from rmthess.data import Dataset

# an array of inputs or targets: numpy-like or a torch tensor
Array: TypeAlias = ArrayLike | torch.Tensor
# ``(X, y)``, an rmthess Dataset, a torch Dataset of ``(x_i, y_i)`` samples, or an iterable
# of ``(X, y)`` batches (a DataLoader): what rmthess.data.as_xy and check_problem accept
Batch: TypeAlias = tuple[Array, Array]
Data: TypeAlias = Batch | Dataset | TorchDataset | Iterable[Batch]
# a torch loss module, or "ce" / "mse"
Loss: TypeAlias = nn.Module | str
# a symmetric operator: LinearOperator (a CurvatureOperator), dense array, tensor, sparse
Operator: TypeAlias = LinearOperator | np.ndarray | torch.Tensor | spmatrix | sparray
# "layers", "params", "output-rows", "hidden-rows" or ``{name: spec}``
Blocks: TypeAlias = str | Mapping[str, object]
# one width or a sequence of widths
Widths: TypeAlias = int | Sequence[int]
