"""PIL (Pillow) images as PNG (``mlzen[images]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlzen.artifacts.materializer import Materializer
from mlzen.artifacts.visualization import Visualization

IMAGE_FILE = "image.png"
# The modes PNG stores without converting the pixels.
PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})


class PILImageMaterializer(Materializer):
    """PIL images as ``image.png``; modes PNG cannot hold (CMYK, F, ...) are declined."""

    handled_types = ("PIL.Image.Image",)

    @classmethod
    def accepts(cls, value: Any) -> bool:
        return value.mode in PNG_MODES

    def save(self, value: Any, folder: Path) -> None:
        value.save(folder / IMAGE_FILE, format="PNG")

    def load(self, folder: Path, data_type: str) -> Any:
        from PIL import Image

        with Image.open(folder / IMAGE_FILE) as image:
            # A copy is an in-memory Image holding no open file.
            return image.copy()

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        width, height = value.size
        return {"width": width, "height": height, "size": [width, height], "mode": value.mode}

    def save_visualizations(self, value: Any, folder: Path) -> list[Visualization]:
        """``image``: the image itself, as PNG."""
        value.save(folder / IMAGE_FILE, format="PNG")
        return [Visualization("image", "png", IMAGE_FILE)]
