"""GMPLaw (STUB: being written)."""


class GMPLaw:
    def __init__(self, atoms, weights, gamma):
        raise NotImplementedError
