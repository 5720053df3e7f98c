"""Block weight laws (STUB: being written)."""


def block_weight_law(case, block, C, gamma=None, m=None, **kwargs):
    raise NotImplementedError


def limiting_density(case, block, x, C, gamma, m=None, **kwargs):
    raise NotImplementedError
