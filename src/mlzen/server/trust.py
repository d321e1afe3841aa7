"""Which stored values the server may load.

A client with the editor role records artifact versions, each naming the materializer
that reads it back; some materializers (cloudpickle, joblib, ``torch.load``) run code
from the stored bytes when they load. The server loads a value (for a preview or a run
comparison) only when its materializer reads a pure data format, whatever the bytes
hold, so that a crafted artifact cannot run code on the server. Everything else is
still described (type, size, hash, metadata, visualizations) and downloadable.
"""

from __future__ import annotations

DATA_ONLY_MATERIALIZERS = frozenset(
    {
        "mlzen.artifacts.builtin:JSONMaterializer",
        "mlzen.artifacts.builtin:BytesMaterializer",
        "mlzen.artifacts.builtin:NumpyMaterializer",  # np.load(allow_pickle=False)
        "mlzen.artifacts.builtin:PandasMaterializer",  # Parquet
        "mlzen.artifacts.builtin:ArrowMaterializer",
        "mlzen.integrations.polars:PolarsMaterializer",
        "mlzen.integrations.pil:PILImageMaterializer",
    }
)


def loadable(materializer: str) -> bool:
    """Whether the server may load a value saved by ``materializer``."""
    return materializer in DATA_ONLY_MATERIALIZERS


def refusal(name: str, version: int, materializer: str) -> str:
    return (
        f"{name}:{version} was saved by {materializer}, whose format can run code when it "
        "is loaded, so the server does not load it. Download its files, or load it in "
        "your own session with Client().get_artifact_version(...).load()."
    )
