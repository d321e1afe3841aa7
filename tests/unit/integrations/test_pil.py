"""PIL images as PNG."""

from __future__ import annotations

import pytest

Image = pytest.importorskip("PIL.Image")

from mlzen.integrations.pil import IMAGE_FILE, PILImageMaterializer  # noqa: E402
from tests.unit.artifacts.helpers import roundtrip  # noqa: E402


def gradient(mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", (7, 5))
    image.putdata([(x * 30, y * 50, (x + y) * 10) for y in range(5) for x in range(7)])
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "1", "P"])
def test_image_roundtrips_through_png(store, mode: str) -> None:
    value = gradient(mode)
    saved, loaded = roundtrip(store, value)
    assert saved.materializer == "mlzen.integrations.pil:PILImageMaterializer"
    assert saved.metadata == {"width": 7, "height": 5, "size": [7, 5], "mode": mode}
    assert loaded.mode == mode
    assert loaded.size == value.size
    assert loaded.tobytes() == value.tobytes()
    folder = store.local_path(saved.uri, saved.content_hash)
    with Image.open(folder / IMAGE_FILE) as on_disk:
        assert on_disk.format == "PNG"


def test_opened_png_file_roundtrips(store, tmp_path) -> None:
    gradient().save(tmp_path / "in.png")
    with Image.open(tmp_path / "in.png") as opened:
        saved, loaded = roundtrip(store, opened)
        assert saved.data_type == "PIL.PngImagePlugin.PngImageFile"
        assert loaded.tobytes() == opened.tobytes()


def test_modes_png_cannot_hold_are_declined() -> None:
    assert not PILImageMaterializer.accepts(gradient("CMYK"))
    assert PILImageMaterializer.accepts(gradient("RGB"))


def test_the_image_is_its_own_visualization(store) -> None:
    from mlzen.artifacts.visualization import save_visualizations, visualization_path

    value = gradient("RGBA")
    (stored,) = save_visualizations(store, value, name="img", materializer=PILImageMaterializer)
    assert (stored.name, stored.kind) == ("image", "png")
    path = visualization_path(store, stored.uri)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as shown:
        assert shown.tobytes() == value.tobytes()
