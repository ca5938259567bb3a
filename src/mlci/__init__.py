"""mlci: the template's machinery (see the README)."""

import sys
import types


def _without_pandera_dask() -> None:
    """pandera imports dask.dataframe, when it is installed, the first time it builds a schema
    (to know Dask's types): about 3 s in every process here, every stage. The data contract is
    pandas-only, so pandera is told Dask is absent. Dask itself stays usable: the `dask` extra
    serves the search and batch scoring (mlci.cluster), never pandera."""
    if "pandera.typing.dask" not in sys.modules:
        stub = types.ModuleType("pandera.typing.dask")
        stub.DASK_INSTALLED = False  # type: ignore[attr-defined]
        sys.modules["pandera.typing.dask"] = stub


_without_pandera_dask()
