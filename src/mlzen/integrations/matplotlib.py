"""matplotlib figures as PNG (``mlzen[images]``).

A PNG cannot become the original figure again, so loading gives a new ``Figure`` of the
same size and dpi that shows the saved pixels: it displays and saves as the original did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlzen.artifacts.materializer import Materializer
from mlzen.artifacts.visualization import Visualization

IMAGE_FILE = "figure.png"
# PNG's own resolution field counts whole pixels per metre, so 80 dpi reads back as
# 80.01; the exact dpi also goes into a text chunk under this key.
DPI_KEY = "mlzen:dpi"


class FigureMaterializer(Materializer):
    """matplotlib figures as ``figure.png``, rendered at the figure's own dpi."""

    handled_types = ("matplotlib.figure.Figure",)

    def save(self, value: Any, folder: Path) -> None:
        dpi = float(value.dpi)
        value.savefig(folder / IMAGE_FILE, format="png", dpi=dpi, metadata={DPI_KEY: repr(dpi)})

    def load(self, folder: Path, data_type: str) -> Any:
        import numpy as np
        from matplotlib.figure import Figure
        from PIL import Image

        with Image.open(folder / IMAGE_FILE) as image:
            exact = image.info.get(DPI_KEY)
            dpi = float(exact) if exact else round(image.info.get("dpi", (100.0,))[0], 1)
            pixels = np.asarray(image.convert("RGBA"))
        height, width = pixels.shape[:2]
        figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        figure.figimage(pixels, origin="upper", resize=False)
        return figure

    def save_visualizations(self, value: Any, folder: Path) -> list[Visualization]:
        """``figure``: the figure as PNG, as saved."""
        self.save(value, folder)
        return [Visualization("figure", "png", IMAGE_FILE)]

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        width, height = (float(size) for size in value.get_size_inches())
        dpi = float(value.dpi)
        return {
            "size_inches": [width, height],
            "dpi": dpi,
            "pixels": [round(width * dpi), round(height * dpi)],
        }
