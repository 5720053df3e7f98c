"""The case registry: one frozen :class:`Case` record per Hessian case (ground floor).

A *case* names a layer of a model at random initialization and a loss; its Hessian has
``K`` diagonal blocks of size ``p x p`` (one per class or per hidden neuron). Every layer
of rmthess reads the facts of a case from here instead of taking the name apart, so a new
case (another initialisation, another model) is one entry of :data:`REGISTRY`.

======================  ========  =======  ======  ======  ===========  ============  ======
name                    model     layer    loss    K       p            zero F_off    rate
======================  ========  =======  ======  ======  ===========  ============  ======
``linear-mse``          linear    linear   mse     C       d            yes           --
``linear-ce``           linear    linear   ce      C       d            no            1/C
``hidden-mse``          hidden    hidden   mse     m       d            no            C^-1/2
``hidden-ce``           hidden    hidden   ce      m       d            no            C^-1/2
``output-mse``          hidden    output   mse     C       m            yes           --
``output-ce``           hidden    output   ce      C       m            no            1/C
======================  ========  =======  ======  ======  ===========  ============  ======

(``rate``: large-C decay of ``r(C) = sqrt(F_off / F_diag)``; docs/theory.md section 5.)
The hidden-* and output-* cases take any activation of :data:`rmthess.activations.ACTIVATIONS`
(ReLU is the paper's; :attr:`Case.activation_method` says how their limits are computed).

This module imports nothing heavy (no numpy, torch, numba): it is safe everywhere.

>>> from rmthess.cases import get_case
>>> c = get_case("hidden-ce")
>>> c.n_blocks(C=10, m=8), c.block_size(d=256, m=8), c.predicted_slope
(8, 256, -0.5)
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

__all__ = ["Case", "REGISTRY", "CASES", "case_for", "get_case", "cases_where"]


@dataclass(frozen=True)
class Case:
    """Facts of one Hessian case.

    Attributes
    ----------
    name : str
        Registry key, ``"<layer>-<loss>"``.
    model : str
        ``"linear"`` (``f = W x``, W: C x d) or ``"hidden"`` (``f = V relu(W x)``, W: m x d,
        V: C x m).
    layer : str
        Whose Hessian: ``"linear"`` (W of the linear model), ``"hidden"`` (W of the
        one-hidden-layer net) or ``"output"`` (V of the one-hidden-layer net).
    loss : str
        ``"mse"`` or ``"ce"`` (softmax cross-entropy).
    blocks_over : str
        What indexes the blocks: ``"C"`` (one block per class, a row of W or V) or ``"m"``
        (one block per hidden neuron, a row of W).
    block_dim : str
        Size of one block: ``"d"`` (the input dimension) or ``"m"`` (the hidden width).
        The Frobenius norms of d x d blocks carry a ``1/d``; those of m x m blocks do not.
    zero_off : bool
        The off-diagonal blocks vanish identically (exactly block diagonal).
    theory_method : str
        How :func:`rmthess.theory.frobenius_limits` computes the fixed-C limits by default:
        ``"closed-form"``, ``"quadrature"`` or ``"monte-carlo"``.
    mc_route : bool
        The fixed-C limits also have a Monte-Carlo route (``method="mc"`` of
        :func:`rmthess.theory.frobenius_limits`, with ``samples``, ``inner`` and ``seed``):
        the one-hidden-layer CE cases, whose limits are integrals over the output weights
        (the route of every init whose V entries are not normal).
    predicted_slope : float or None
        Large-C exponent of ``r(C)``; None where ``r = 0`` exactly.
    m_min : int
        Smallest hidden width at fixed C (0: the case has no hidden width).
    asymptotic_m_min : int
        Smallest hidden width for which the large-C constants are finite.
    title : str
        Human label (figures, tables).
    theorem : str
        Where the paper states the limit ("" for the exact block-diagonal cases).
    activation_method : str
        How the fixed-C limits are computed for a hidden activation other than ReLU
        (``activation=`` of :func:`rmthess.theory.frobenius_limits`, the block laws and
        :mod:`rmthess.simulate`; :data:`rmthess.activations.ACTIVATIONS`):
        ``"monte-carlo"`` (hidden-*, output-ce), ``"closed-form"`` (output-mse, from the
        Gaussian moments of ``phi``), ``""`` (the linear model has no activation).
    """

    name: str
    model: str
    layer: str
    loss: str
    blocks_over: str
    block_dim: str
    zero_off: bool
    theory_method: str
    predicted_slope: float | None
    m_min: int
    asymptotic_m_min: int
    title: str
    theorem: str = ""
    mc_route: bool = False
    activation_method: str = ""

    # ------------------------------------------------------------------ derived facts
    @property
    def has_activation(self) -> bool:
        """The model has a hidden activation ``phi`` (any of
        :data:`rmthess.activations.ACTIVATIONS`; ReLU is the paper's)."""
        return bool(self.activation_method)

    @property
    def needs_m(self) -> bool:
        """The case has a hidden width ``m`` (the one-hidden-layer net)."""
        return self.model == "hidden"

    @property
    def has_gmp_limit(self) -> bool:
        """The blocks are d x d and their spectra converge to a GMP law (not output-*)."""
        return self.block_dim == "d"

    @property
    def decays(self) -> bool:
        """``r(C)`` decays as a power of C (a slope can be fitted)."""
        return self.predicted_slope is not None

    @property
    def monte_carlo_theory(self) -> bool:
        """The fixed-C theory is by default a Monte-Carlo integral with a standard error."""
        return self.theory_method == "monte-carlo"

    @property
    def normalization(self) -> str:
        """How a block's squared Frobenius norm is normalized: ``"1/d"`` or ``"1"``."""
        return "1/d" if self.block_dim == "d" else "1"

    def n_blocks(self, C: int, m: int | None = None) -> int:
        """Number K of blocks per side: ``C`` or ``m``."""
        if self.blocks_over == "m":
            if m is None:
                raise ValueError(f"m (hidden width) is required for case {self.name!r}")
            return int(m)
        return int(C)

    def block_size(self, d: int, m: int | None = None) -> int:
        """Size p of one block: ``d`` or ``m``."""
        if self.block_dim == "m":
            if m is None:
                raise ValueError(f"m (hidden width) is required for case {self.name!r}")
            return int(m)
        return int(d)

    def check_m(self, m: int | float | None, *, asymptotic: bool = False) -> int | None:
        """Validate the hidden width for this case; return it as int (None for linear-*).

        linear-* take no ``m``: passing one is refused (a silently ignored argument hides
        a typo; a non-number is a ``TypeError`` first). hidden-* need ``m >= 2`` (at least
        one off-diagonal block), output-* need ``m >= 1``; with ``asymptotic=True`` the
        minimum is :attr:`asymptotic_m_min` (the large-C constants K1..K4 diverge below it).
        """
        from rmthess._checks import check_int  # lazily: _checks imports this module

        if not self.needs_m:
            if m is not None:
                if isinstance(m, bool) or not isinstance(m, numbers.Real):  # a type error first
                    check_int("m", m)
                raise ValueError(
                    f"m does not apply to case {self.name!r} (the linear model has no hidden "
                    f"layer); leave it out, got m={m!r}"
                )
            return None
        lo = self.asymptotic_m_min if asymptotic else self.m_min
        what = "the large-C constants of" if asymptotic else "case"
        if m is None:
            raise ValueError(
                f"m (hidden width) is required for {what} {self.name!r}: an integer >= {lo}"
            )
        m = check_int("m", m)  # TypeError / ValueError for a non-integer
        if m < lo:
            why = ""
            if asymptotic and lo > self.m_min:
                why = " (the large-C constants K1..K4 diverge for smaller m)"
            elif self.blocks_over == "m":
                why = " (the hidden layer has m blocks: m = 1 has no off-diagonal block)"
            raise ValueError(
                f"m must be an integer >= {lo} for {what} {self.name!r}{why}, got m={m}"
            )
        return m

    def check_activation(self, activation: object) -> str:
        """Validate a hidden activation for this case; return its name.

        A name of :data:`rmthess.activations.ACTIVATIONS` (or an ``Activation``) for the
        cases with a hidden layer; the linear model takes only the default ``"relu"`` (it
        has no activation: another value is refused rather than ignored).
        """
        from rmthess.activations import get_activation  # lazily: numpy

        name = get_activation(activation).name
        if not self.has_activation and name != "relu":
            raise ValueError(
                f"activation does not apply to case {self.name!r} (the linear model has no "
                f"hidden layer); leave it out, got activation={name!r}"
            )
        return name

    def to_dict(self) -> dict:
        """All fields and derived facts as a flat dict."""
        out = asdict(self)
        out.update(
            needs_m=self.needs_m,
            has_activation=self.has_activation,
            has_gmp_limit=self.has_gmp_limit,
            decays=self.decays,
            normalization=self.normalization,
        )
        return out


REGISTRY: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "linear-mse",
            model="linear",
            layer="linear",
            loss="mse",
            blocks_over="C",
            block_dim="d",
            zero_off=True,
            theory_method="closed-form",
            predicted_slope=None,
            m_min=0,
            asymptotic_m_min=0,
            title="linear, MSE",
        ),
        Case(
            "linear-ce",
            model="linear",
            layer="linear",
            loss="ce",
            blocks_over="C",
            block_dim="d",
            zero_off=False,
            theory_method="quadrature",
            predicted_slope=-1.0,
            m_min=0,
            asymptotic_m_min=0,
            title="linear, CE (Thm 1)",
            theorem="Theorem 1",
        ),
        Case(
            "hidden-mse",
            model="hidden",
            layer="hidden",
            loss="mse",
            blocks_over="m",
            block_dim="d",
            zero_off=False,
            theory_method="closed-form",
            predicted_slope=-0.5,
            m_min=2,
            asymptotic_m_min=2,
            title="hidden layer, MSE (Thm 2)",
            activation_method="monte-carlo",
            theorem="Theorem 2",
        ),
        Case(
            "hidden-ce",
            model="hidden",
            layer="hidden",
            loss="ce",
            blocks_over="m",
            block_dim="d",
            zero_off=False,
            theory_method="quadrature",
            predicted_slope=-0.5,
            m_min=2,
            asymptotic_m_min=3,
            title="hidden layer, CE (Thm 2)",
            activation_method="monte-carlo",
            theorem="Theorem 2",
            mc_route=True,
        ),
        Case(
            "output-mse",
            model="hidden",
            layer="output",
            loss="mse",
            blocks_over="C",
            block_dim="m",
            zero_off=True,
            theory_method="closed-form",
            predicted_slope=None,
            m_min=1,
            asymptotic_m_min=1,
            title="output layer, MSE",
            activation_method="closed-form",
        ),
        Case(
            "output-ce",
            model="hidden",
            layer="output",
            loss="ce",
            blocks_over="C",
            block_dim="m",
            zero_off=False,
            theory_method="quadrature",
            predicted_slope=-1.0,
            m_min=1,
            asymptotic_m_min=3,
            title="output layer, CE (Thm 2)",
            activation_method="monte-carlo",
            theorem="Theorem 2",
            mc_route=True,
        ),
    )
}
"""Every case, keyed by name (insertion order is the canonical display order)."""

CASES: tuple[str, ...] = tuple(REGISTRY)
"""The case names, in display order."""


def get_case(case: object) -> Case:
    """Return the :class:`Case` named ``case`` (a :class:`Case` is returned as is).

    Raises ``ValueError`` naming the allowed cases for an unknown name and ``TypeError``
    for a non-string.
    """
    if isinstance(case, Case):
        return case
    if not isinstance(case, str):
        raise TypeError(f"case must be a string, one of {', '.join(CASES)}; got {case!r}")
    try:
        return REGISTRY[case]
    except KeyError:
        raise ValueError(f"unknown case {case!r}; allowed: {', '.join(CASES)}") from None


def cases_where(**facts: object) -> tuple[str, ...]:
    """Names of the cases whose attributes (or derived properties) equal ``facts``.

    >>> cases_where(decays=True)
    ('linear-ce', 'hidden-mse', 'hidden-ce', 'output-ce')
    """
    return tuple(
        name for name, c in REGISTRY.items() if all(getattr(c, k) == v for k, v in facts.items())
    )


def case_for(layer: str, loss: str) -> Case:
    """The case of a layer (``"linear"``, ``"hidden"``, ``"output"``) and a loss.

    >>> case_for("output", "ce").name
    'output-ce'
    """
    found = [c for c in REGISTRY.values() if c.layer == layer and c.loss == loss]
    if not found:
        layers = sorted({c.layer for c in REGISTRY.values()})
        losses = sorted({c.loss for c in REGISTRY.values()})
        raise ValueError(
            f"no case for layer {layer!r} and loss {loss!r}; layers: {', '.join(layers)}; "
            f"losses: {', '.join(losses)}"
        )
    return found[0]
