"""lth: lottery-ticket research.

Importing the package loads the data and model registries, so a spec's dataset and model names are checked
against them wherever a spec is validated (``lth.spec`` itself imports neither).
"""

from lth import data, models  # noqa: F401  (registers their name checks with lth.spec)
