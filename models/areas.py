"""The reference geography: the 144 postcode areas and the six municipalities.

Statistics Finland, Paavo — open data by postal code area, 2020 (CC BY 4.0); see
``models/data/README.md``. The data sits at the bottom layer so that every package
(the sinks, the API, the generator, the batch reference) reads the same table.

>>> len(reference_areas()), reference_areas()["33100"]["municipality"]
(144, '837')
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from importlib.abc import Traversable


def data_path(name: str) -> Traversable:
    """A file of ``models/data`` (package data, also inside an installed wheel)."""
    return resources.files("models").joinpath("data", name)


@lru_cache(maxsize=1)
def reference_areas() -> dict[str, dict[str, str]]:
    """postcode -> {"municipality": code, "name": ..., "name_sv": ...} of the 144 areas."""
    text = data_path("postcode-areas.csv").read_text("utf-8")
    return {
        row["postcode"]: {
            "municipality": row["municipality_code"],
            "name": row["name"],
            "name_sv": row["name_sv"],
        }
        for row in csv.DictReader(text.splitlines())
    }
