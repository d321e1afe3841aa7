"""PyTorch modules and tensors, saved as safetensors (``mlzen[torch]``).

A ``torch.nn.Module`` is stored as its state dict plus what it takes to build the module
again (``module.json``): the class's import path and its constructor arguments. The
arguments are found, in this order, in

1. ``module.mlzen_init_args``, a dict of JSON values the module records itself
   (``self.mlzen_init_args = {"hidden": hidden}`` in ``__init__``);
2. the module's attributes named like the constructor's parameters
   (``nn.Linear(4, 2)`` keeps ``in_features`` and ``out_features``), parameters with a
   default being optional;
3. for ``nn.Sequential``, ``nn.ModuleList`` and ``nn.ModuleDict``, the same for each
   child, recursively.

When none of these works, the weights are still saved and the metadata says why the
module cannot be rebuilt; loading it then raises an error naming the fix.

The state dict goes into ``module.safetensors``; when safetensors cannot hold it (tied
weights sharing memory, extra state that is not a tensor) into ``state_dict.pt`` with
``torch.save``, read back with ``torch.load(weights_only=True)``, which runs no pickled
code. Weights are always loaded on the CPU, and a module in eval mode. A tensor goes
into ``tensor.safetensors``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from mlzen.artifacts.materializer import Materializer, type_path
from mlzen.comparison import ModelDiff, WeightDiff
from mlzen.errors import MaterializerError
from mlzen.explain import Change, _changes
from mlzen.importing import import_object

MODULE_FILE = "module.json"
SAFETENSORS_FILE = "module.safetensors"
TORCH_FILE = "state_dict.pt"
TENSOR_FILE = "tensor.safetensors"
TENSOR_KEY = "tensor"
INIT_ARGS_ATTRIBUTE = "mlzen_init_args"
_MAX_SHAPES = 256
# Containers are rebuilt from their children: Sequential and ModuleDict from a mapping of
# them, ModuleList from a list.
_CONTAINERS = {
    "torch.nn.modules.container:Sequential": "mapping",
    "torch.nn.modules.container:ModuleDict": "mapping",
    "torch.nn.modules.container:ModuleList": "list",
}


class TorchModuleMaterializer(Materializer):
    """``torch.nn.Module`` as ``module.json`` + ``module.safetensors`` (or ``state_dict.pt``)."""

    handled_types = ("torch.nn.modules.module.Module",)

    def save(self, value: Any, folder: Path) -> None:
        import torch

        spec = module_spec(value)
        spec["parameter_count"] = parameter_summary(value)["parameter_count"]
        state = value.state_dict()
        spec["format"] = "safetensors"
        try:
            from safetensors.torch import save_file

            save_file(
                {k: v.detach().cpu().contiguous() for k, v in state.items()},
                folder / SAFETENSORS_FILE,
            )
        except (ImportError, RuntimeError, ValueError, TypeError, AttributeError):
            # Shared storage (tied weights) or extra state that is not a tensor.
            (folder / SAFETENSORS_FILE).unlink(missing_ok=True)
            spec["format"] = "torch"
            torch.save(state, folder / TORCH_FILE)
        (folder / MODULE_FILE).write_text(json.dumps(spec, indent=1), encoding="utf-8")

    def load(self, folder: Path, data_type: str) -> Any:
        spec = json.loads((folder / MODULE_FILE).read_text(encoding="utf-8"))
        state = read_state_dict(folder)
        if "error" in spec:
            raise ModuleRebuildError(
                f"The {spec['class']} module cannot be rebuilt: {spec['error']} Its weights "
                f"are in {folder / _weights_file(spec)}: build the module yourself and call "
                "module.load_state_dict(mlzen.integrations.torch.read_state_dict(folder)). "
                f"To load it directly next time, set self.{INIT_ARGS_ATTRIBUTE} = {{...}} "
                "(its constructor's keyword arguments, JSON values) in its __init__."
            )
        module = build_module(spec)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise ModuleRebuildError(
                f"{spec['class']}(**{spec.get('init_args')}) was built, but its weights do "
                f"not fit the saved ones: {exc}. Set self.{INIT_ARGS_ATTRIBUTE} to the "
                "constructor's keyword arguments in __init__, so that it is built the same."
            ) from exc
        module.eval()
        return module

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        spec = module_spec(value)
        metadata: dict[str, Any] = {"class": type_path(type(value))}
        metadata.update(parameter_summary(value))
        metadata["rebuildable"] = "error" not in spec
        if "error" in spec:
            metadata["note"] = spec["error"]
        if "init_args" in spec:
            metadata["init_args"] = spec["init_args"]
        state = value.state_dict()
        metadata["state_dict"] = {
            key: list(tensor.shape)
            for key, tensor in list(state.items())[:_MAX_SHAPES]
            if hasattr(tensor, "shape")
        }
        if len(state) > _MAX_SHAPES:
            metadata["state_dict_entries"] = len(state)
        return metadata

    @classmethod
    def compare_saved(cls, old: Path, new: Path) -> ModelDiff:
        """Class, constructor arguments, parameter counts, state-dict shapes and weights,
        read from the files: the module's class need not be importable."""
        old_spec, new_spec = (json.loads((f / MODULE_FILE).read_text("utf-8")) for f in (old, new))
        diff = ModelDiff(
            framework="torch",
            class_old=old_spec["class"].replace(":", "."),
            class_new=new_spec["class"].replace(":", "."),
            hyperparameters=_changes(
                old_spec.get("init_args") or {}, new_spec.get("init_args") or {}
            ),
            parameter_count_old=old_spec.get("parameter_count"),
            parameter_count_new=new_spec.get("parameter_count"),
        )
        a, b = read_state_dict(old), read_state_dict(new)
        compared = 0
        for key in [*b, *(k for k in a if k not in b)]:
            shape_a = list(a[key].shape) if key in a and hasattr(a[key], "shape") else None
            shape_b = list(b[key].shape) if key in b and hasattr(b[key], "shape") else None
            if shape_a != shape_b:
                change = "added" if shape_a is None else "removed" if shape_b is None else "changed"
                diff.shape_changes.append(Change(key, change, shape_a, shape_b))
            elif shape_a is not None:
                compared += 1
                gap = _max_abs_diff(a[key], b[key])
                if gap is None or gap != 0:
                    diff.weights.append(WeightDiff(key, shape_a, gap))
        gaps = [w.max_abs_diff for w in diff.weights if w.max_abs_diff is not None]
        diff.max_abs_weight_diff = max(gaps) if gaps else (0.0 if compared else None)
        # Largest change first; tensors that cannot be compared numerically last.
        diff.weights.sort(key=lambda w: (w.max_abs_diff is None, -(w.max_abs_diff or 0.0)))
        return diff


class TorchTensorMaterializer(Materializer):
    """``torch.Tensor`` (and ``nn.Parameter``) as ``tensor.safetensors``, loaded on the CPU.

    Sparse and quantized tensors, which safetensors cannot hold, are declined.
    """

    handled_types = ("torch.Tensor",)

    @classmethod
    def accepts(cls, value: Any) -> bool:
        import torch

        return value.layout == torch.strided and not value.is_quantized

    def save(self, value: Any, folder: Path) -> None:
        from safetensors.torch import save_file

        info = {"requires_grad": json.dumps(bool(value.requires_grad))}
        save_file(
            {TENSOR_KEY: value.detach().cpu().contiguous()}, folder / TENSOR_FILE, metadata=info
        )

    def load(self, folder: Path, data_type: str) -> Any:
        import torch
        from safetensors import safe_open

        with safe_open(folder / TENSOR_FILE, framework="pt") as handle:
            tensor = handle.get_tensor(TENSOR_KEY)
            info = handle.metadata() or {}
        requires_grad = json.loads(info.get("requires_grad", "false"))
        if data_type == "torch.nn.parameter.Parameter":
            return torch.nn.Parameter(tensor, requires_grad=requires_grad)
        return tensor.requires_grad_(requires_grad) if tensor.is_floating_point() else tensor

    def extract_metadata(self, value: Any) -> dict[str, Any]:
        return {
            "shape": list(value.shape),
            "dtype": str(value.dtype).removeprefix("torch."),
            "device": str(value.device),
            "numel": int(value.numel()),
            "requires_grad": bool(value.requires_grad),
        }


class ModuleRebuildError(MaterializerError):
    """A saved module whose class cannot be constructed again; the message names the fix."""


def module_spec(module: Any) -> dict[str, Any]:
    """``{"class": "pkg.mod:Class", "init_args": {...}}`` to rebuild ``module``, or
    ``{"class": ..., "error": why}`` when its constructor arguments cannot be found."""
    kind = type(module)
    spec: dict[str, Any] = {"class": f"{kind.__module__}:{kind.__qualname__}"}
    if "<locals>" in kind.__qualname__:
        spec["error"] = (
            f"its class {kind.__qualname__} is defined inside a function, so no other "
            "process can import it. Define the class at module level."
        )
        return spec
    if spec["class"] in _CONTAINERS:
        children = [(name, module_spec(child)) for name, child in module.named_children()]
        broken = [f"child '{n}': {s['error']}" for n, s in children if "error" in s]
        if broken:
            spec["error"] = "; ".join(broken)
        else:
            spec["children"] = [[name, child] for name, child in children]
        return spec
    recorded = getattr(module, INIT_ARGS_ATTRIBUTE, None)
    if recorded is not None:
        if not isinstance(recorded, dict) or not _is_json(recorded):
            spec["error"] = (
                f"{INIT_ARGS_ATTRIBUTE} is {recorded!r:.80}, not a dict of JSON values. "
                "Record the constructor's keyword arguments as JSON values."
            )
        else:
            spec["init_args"] = recorded
        return spec
    try:
        parameters = list(inspect.signature(kind.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        parameters = []
    arguments: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        value = getattr(module, parameter.name, inspect.Parameter.empty)
        if value is not inspect.Parameter.empty and _is_json(value):
            arguments[parameter.name] = value
        elif parameter.default is inspect.Parameter.empty:
            spec["error"] = (
                f"its constructor argument '{parameter.name}' has no default and is not "
                "kept as a JSON attribute of the same name."
            )
            return spec
    spec["init_args"] = arguments
    return spec


def build_module(spec: dict[str, Any]) -> Any:
    """Construct the module described by :func:`module_spec` (weights not loaded)."""
    try:
        kind = import_object(spec["class"])
    except (ImportError, AttributeError) as exc:
        raise ModuleRebuildError(
            f"The module class {spec['class']} cannot be imported here ({exc}). Make the "
            "module that defines it importable (install the package, or put it on "
            "sys.path), or load the weights alone with read_state_dict(folder)."
        ) from exc
    if "children" in spec:
        from collections import OrderedDict

        children = [(name, build_module(child)) for name, child in spec["children"]]
        if _CONTAINERS.get(spec["class"]) == "list":
            return kind([child for _, child in children])
        return kind(OrderedDict(children))
    try:
        return kind(**spec.get("init_args", {}))
    except TypeError as exc:
        raise ModuleRebuildError(
            f"{spec['class']}(**{spec.get('init_args')}) failed: {exc}. Set "
            f"self.{INIT_ARGS_ATTRIBUTE} to the constructor's keyword arguments in __init__."
        ) from exc


def read_state_dict(folder: str | Path) -> dict[str, Any]:
    """The state dict saved in an artifact folder, whichever format it is in."""
    import torch

    folder = Path(folder)
    if (folder / SAFETENSORS_FILE).exists():
        from safetensors.torch import load_file

        return load_file(folder / SAFETENSORS_FILE)
    # weights_only: tensors and plain containers only, no pickled code is run.
    return torch.load(  # type: ignore[no-any-return]
        folder / TORCH_FILE, weights_only=True, map_location="cpu"
    )


def parameter_summary(module: Any) -> dict[str, Any]:
    """Parameter and buffer counts and the dtypes of a module's tensors."""
    parameters = list(module.parameters())
    buffers = list(module.buffers())
    return {
        "parameter_count": sum(p.numel() for p in parameters),
        "trainable_parameter_count": sum(p.numel() for p in parameters if p.requires_grad),
        "buffer_count": len(buffers),
        "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in parameters + buffers}),
    }


def _weights_file(spec: dict[str, Any]) -> str:
    return TORCH_FILE if spec.get("format") == "torch" else SAFETENSORS_FILE


def _max_abs_diff(a: Any, b: Any) -> float | None:
    import torch

    if not (torch.is_tensor(a) and torch.is_tensor(b)):
        return None
    if a.dtype.is_complex or b.dtype.is_complex or a.dtype == torch.bool:
        return 0.0 if torch.equal(a.cpu(), b.cpu()) else None
    x, y = a.detach().cpu().double(), b.detach().cpu().double()
    if x.numel() == 0:
        return 0.0
    return float((x - y).abs().max())


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True
