import pandas  # noqa: F401  (an import the default image cannot satisfy, one module down)


def scale(values):
    return values * 2
