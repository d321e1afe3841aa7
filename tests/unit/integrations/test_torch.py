"""PyTorch modules and tensors as safetensors, and comparing two saved modules."""

from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
from torch import nn  # noqa: E402

from mlzen.artifacts.materializer import materializer_for  # noqa: E402
from mlzen.errors import MaterializerError  # noqa: E402
from mlzen.integrations.torch import (  # noqa: E402
    MODULE_FILE,
    SAFETENSORS_FILE,
    TENSOR_FILE,
    TORCH_FILE,
    TorchModuleMaterializer,
    TorchTensorMaterializer,
    read_state_dict,
)
from tests.unit.artifacts.helpers import roundtrip  # noqa: E402


class Net(nn.Module):
    """Keeps its constructor arguments as attributes: rebuilt from them."""

    def __init__(self, inputs: int, hidden: int = 4) -> None:
        super().__init__()
        self.inputs = inputs
        self.hidden = hidden
        self.fc = nn.Linear(inputs, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.register_buffer("scale", torch.arange(hidden, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(x)) * self.scale


class Recorded(nn.Module):
    """Records its constructor arguments itself."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.mlzen_init_args = {"sizes": sizes}
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))


class Opaque(nn.Module):
    """Its constructor argument is neither kept nor defaulted: it cannot be rebuilt."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, 1)


class Tied(nn.Module):
    """Two names for one weight: safetensors refuses shared memory."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 3, bias=False)
        self.decoder = nn.Linear(3, 3, bias=False)
        self.decoder.weight = self.encoder.weight


def trained(module: nn.Module) -> nn.Module:
    """Change the weights and buffers away from their initial values."""
    torch.manual_seed(7)
    with torch.no_grad():
        for tensor in module.parameters():
            tensor.add_(torch.randn_like(tensor))
    if any(isinstance(m, nn.BatchNorm1d) for m in module.modules()):
        module.train()
        module(torch.randn(8, module.inputs))
    return module


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    left, right = a.state_dict(), b.state_dict()
    assert list(left) == list(right) or sorted(left) == sorted(right)
    for key in left:
        assert left[key].dtype == right[key].dtype, key
        assert torch.equal(left[key], right[key]), key


def test_module_with_buffers_roundtrips_through_safetensors(store) -> None:
    model = trained(Net(3, hidden=5))
    saved, loaded = roundtrip(store, model)
    assert saved.materializer == "mlzen.integrations.torch:TorchModuleMaterializer"
    assert type(loaded) is Net
    assert (loaded.inputs, loaded.hidden) == (3, 5)
    assert_same_state(model, loaded)
    assert int(loaded.norm.num_batches_tracked) == 1
    assert not loaded.training
    folder = store.local_path(saved.uri, saved.content_hash)
    assert sorted(p.name for p in folder.iterdir()) == [MODULE_FILE, SAFETENSORS_FILE]
    spec = json.loads((folder / MODULE_FILE).read_text())
    assert spec["init_args"] == {"inputs": 3, "hidden": 5}
    metadata = saved.metadata
    assert metadata["class"] == f"{Net.__module__}.Net"
    assert metadata["parameter_count"] == 3 * 5 + 5 + 5 + 5
    assert metadata["buffer_count"] == 4  # scale, running mean/var, num_batches_tracked
    assert metadata["dtypes"] == ["float32", "float64", "int64"]
    assert metadata["state_dict"]["fc.weight"] == [5, 3]
    assert metadata["rebuildable"] is True


def test_builtin_modules_and_sequential_are_rebuilt(store) -> None:
    model = trained(nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1)))
    saved, loaded = roundtrip(store, model)
    assert isinstance(loaded, nn.Sequential)
    assert loaded[0].bias is None
    assert_same_state(model, loaded)
    assert torch.equal(loaded(torch.ones(1, 2)), model.eval()(torch.ones(1, 2)))


def test_module_lists_and_dicts_are_rebuilt(store) -> None:
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Tanh()])
    heads = nn.ModuleDict({"score": nn.Linear(2, 1), "norm": nn.LayerNorm(2)})
    for model in (layers, heads):
        _, loaded = roundtrip(store, model)
        assert type(loaded) is type(model)
        assert_same_state(model, loaded)


class Misleading(nn.Module):
    """Keeps an attribute named like its argument that means something else."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.fc = nn.Linear(width, 1)
        self.width = 99


def test_weights_that_do_not_fit_the_rebuilt_module_fail_clearly(store) -> None:
    with pytest.raises(MaterializerError, match="weights do not fit the saved ones"):
        roundtrip(store, Misleading(3))


def test_recorded_init_args_rebuild_the_module(store) -> None:
    model = Recorded([2, 4, 1])
    saved, loaded = roundtrip(store, model)
    assert saved.metadata["init_args"] == {"sizes": [2, 4, 1]}
    assert_same_state(model, loaded)


def test_shared_weights_fall_back_to_torch_save(store) -> None:
    model = trained(Tied())
    saved, loaded = roundtrip(store, model)
    folder = store.local_path(saved.uri, saved.content_hash)
    assert (folder / TORCH_FILE).exists() and not (folder / SAFETENSORS_FILE).exists()
    assert json.loads((folder / MODULE_FILE).read_text())["format"] == "torch"
    assert_same_state(model, loaded)


def test_module_that_cannot_be_rebuilt_saves_weights_and_fails_clearly_on_load(store) -> None:
    model = Opaque(6)
    saved = store_only(store, model)
    assert saved.metadata["rebuildable"] is False
    assert "'width' has no default" in saved.metadata["note"]
    with pytest.raises(MaterializerError) as caught:
        roundtrip(store, model)
    message = str(caught.value)
    assert "Opaque module cannot be rebuilt" in message
    assert "mlzen_init_args" in message and "read_state_dict" in message
    folder = store.local_path(saved.uri, saved.content_hash)
    assert torch.equal(read_state_dict(folder)["fc.weight"], model.fc.weight.detach())


def test_class_defined_in_a_function_cannot_be_rebuilt(store) -> None:
    class Local(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(1, 1)

    saved = store_only(store, Local())
    assert saved.metadata["rebuildable"] is False
    assert "defined inside a function" in saved.metadata["note"]


def store_only(store, value):
    from mlzen.artifacts.materializer import save_artifact

    return save_artifact(store, value, name="value")


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.float64,
        torch.int64,
        torch.int8,
        torch.uint8,
        torch.bool,
    ],
)
def test_tensor_roundtrips_through_safetensors(store, dtype) -> None:
    value = (torch.arange(-6, 6).reshape(3, 4) % 5).to(dtype)
    saved, loaded = roundtrip(store, value)
    assert saved.materializer == "mlzen.integrations.torch:TorchTensorMaterializer"
    assert loaded.dtype == dtype
    assert torch.equal(loaded, value)
    assert saved.metadata["shape"] == [3, 4]
    assert saved.metadata["dtype"] == str(dtype).removeprefix("torch.")
    folder = store.local_path(saved.uri, saved.content_hash)
    assert [p.name for p in folder.iterdir()] == [TENSOR_FILE]


def test_non_contiguous_tensor_and_parameter_roundtrip(store) -> None:
    value = torch.arange(12.0).reshape(3, 4).t()
    assert not value.is_contiguous()
    _, loaded = roundtrip(store, value)
    assert torch.equal(loaded, value)
    parameter = nn.Parameter(torch.ones(2))
    saved, loaded = roundtrip(store, parameter)
    assert isinstance(loaded, nn.Parameter) and loaded.requires_grad
    assert saved.metadata["requires_grad"] is True


def test_sparse_tensors_are_declined() -> None:
    sparse = torch.eye(3).to_sparse()
    assert not TorchTensorMaterializer.accepts(sparse)
    assert materializer_for(torch.eye(3)) is TorchTensorMaterializer
    assert materializer_for(Net(2)) is TorchModuleMaterializer


def test_compare_saved_modules(store) -> None:
    old = Net(3, hidden=4)
    new = copy.deepcopy(old)
    with torch.no_grad():
        new.fc.bias.add_(0.5)
    wider = Net(3, hidden=6)
    folders = {}
    for name, model in {"old": old, "new": new, "wider": wider}.items():
        saved = store_only(store, model)
        folders[name] = store.local_path(saved.uri, saved.content_hash)

    same_shape = TorchModuleMaterializer.compare_saved(folders["old"], folders["new"])
    assert same_shape.framework == "torch"
    assert same_shape.hyperparameters == []
    assert same_shape.shape_changes == []
    assert [w.name for w in same_shape.weights] == ["fc.bias"]
    assert same_shape.max_abs_weight_diff == pytest.approx(0.5)

    reshaped = TorchModuleMaterializer.compare_saved(folders["old"], folders["wider"])
    assert [(c.name, c.old, c.new) for c in reshaped.hyperparameters] == [("hidden", 4, 6)]
    assert (reshaped.parameter_count_old, reshaped.parameter_count_new) == (24, 36)
    changes = {c.name: (c.change, c.old, c.new) for c in reshaped.shape_changes}
    assert changes["fc.weight"] == ("changed", [4, 3], [6, 3])
    assert "norm.num_batches_tracked" not in changes
