"""matplotlib figures as PNG."""

from __future__ import annotations

import io
from typing import Annotated

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
pytest.importorskip("PIL")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from mlzen import pipeline, step  # noqa: E402
from mlzen.integrations.matplotlib import IMAGE_FILE  # noqa: E402
from tests.unit.artifacts.helpers import roundtrip  # noqa: E402


def figure() -> Figure:
    fig = Figure(figsize=(3, 2), dpi=80)
    axes = fig.add_subplot()
    axes.plot([0, 1, 2], [2, 0, 1])
    axes.set_title("loss")
    return fig


def pixels(fig: Figure) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGBA"))


def test_figure_roundtrips_as_a_figure_showing_the_same_pixels(store) -> None:
    value = figure()
    saved, loaded = roundtrip(store, value)
    assert saved.materializer == "mlzen.integrations.matplotlib:FigureMaterializer"
    assert isinstance(loaded, Figure)
    assert loaded.dpi == pytest.approx(80)
    np.testing.assert_allclose(loaded.get_size_inches(), [3, 2])
    np.testing.assert_array_equal(pixels(loaded), pixels(value))


def test_metadata_records_size_and_dpi_and_the_file_is_a_png(store) -> None:
    saved, _ = roundtrip(store, figure())
    assert saved.metadata == {"size_inches": [3.0, 2.0], "dpi": 80.0, "pixels": [240, 160]}
    folder = store.local_path(saved.uri, saved.content_hash)
    with Image.open(folder / IMAGE_FILE) as image:
        assert image.format == "PNG"
        assert image.size == (240, 160)


def test_the_figure_png_is_its_visualization(store) -> None:
    from mlzen.artifacts.visualization import save_visualizations, visualization_path
    from mlzen.integrations.matplotlib import FigureMaterializer

    fig = figure()
    (stored,) = save_visualizations(store, fig, name="plot", materializer=FigureMaterializer)
    assert (stored.name, stored.kind) == ("figure", "png")
    path = visualization_path(store, stored.uri)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        assert image.size == (240, 160)
        assert np.array_equal(np.asarray(image.convert("RGBA")), pixels(fig))


@step
def plot() -> tuple[Annotated[Figure, "plot"], Annotated[Image.Image, "thumbnail"]]:
    return figure(), Image.new("RGB", (4, 3), (200, 10, 10))


@pipeline
def plotting():
    plot()


def test_figure_and_image_outputs_are_listed_with_their_visualizations() -> None:
    run = plotting()
    outputs = run.steps["plot"].outputs
    (shown_figure,) = outputs["plot"].visualizations
    (shown_image,) = outputs["thumbnail"].visualizations
    assert (shown_figure.name, shown_figure.kind) == ("figure", "png")
    assert (shown_image.name, shown_image.kind) == ("image", "png")
    with Image.open(shown_figure.path) as image:
        assert image.size == (240, 160)
    with Image.open(shown_image.path) as image:
        assert image.getpixel((0, 0)) == (200, 10, 10)
