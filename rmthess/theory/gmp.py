"""GMP Stieltjes solver (STUB: being written)."""


def gmp_stieltjes(z, atoms, weights, gamma):
    raise NotImplementedError


def gmp_density(x, atoms, weights, gamma):
    raise NotImplementedError


def gmp_zero_mass(atoms, weights, gamma):
    raise NotImplementedError
