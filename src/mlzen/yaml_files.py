"""Reading YAML with bounds: every YAML file mlzen reads goes through :func:`read_yaml`.

PyYAML's ``safe_load`` builds no objects from tags, but it still follows aliases: a few
hundred bytes of nested anchors (``b: [*a, *a, ...]``) stand for billions of values,
which are harmless as a shared graph and exhaust memory as soon as anything walks them
(JSON, hashing, a store). Deep nesting overflows the composer's recursion. The loader
here refuses, with a :class:`~mlzen.errors.ConfigError` naming the file and line:

- a file larger than :data:`MAX_BYTES`, before reading it;
- nesting deeper than :data:`MAX_DEPTH` levels;
- a document that expands (aliases counted each time they are used) to more than
  :data:`MAX_VALUES` values;
- an alias that refers to the node it is in (a recursive structure).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.errors import ConfigError

if TYPE_CHECKING:
    import yaml

#: The largest YAML file mlzen reads.
MAX_BYTES = 10 * 1024 * 1024
#: How deeply collections may nest in a YAML document.
MAX_DEPTH = 200
#: How many values (scalars, lists, mappings) a document may stand for, aliases expanded.
MAX_VALUES = 1_000_000


def read_yaml(path: str | Path, *, what: str, fix: str) -> Any:
    """The content of the YAML file at ``path``, within the bounds of this module.

    Args:
        path: The file.
        what: What the file is, to start error messages (``"Run configuration
            'run.yaml'"``).
        fix: The sentence that ends an error message for invalid YAML.

    Raises:
        ConfigError: The file cannot be read, is not valid YAML or is out of bounds.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"{what} is {size:,} bytes, more than the {MAX_BYTES:,} mlzen reads from a "
                "YAML file. Keep configuration small: pass data as an artifact (the output "
                "of a step that loads it).",
                path=str(file),
            )
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} cannot be read: {exc}. {fix}", path=str(file)) from exc
    return load_yaml(text, what=what, fix=fix, path=str(file))


def load_yaml(text: str, *, what: str, fix: str, path: str | None = None) -> Any:
    """The content of the YAML document ``text``, within the bounds of this module.

    Raises:
        ConfigError: ``text`` is not valid YAML or is out of bounds.
    """
    import yaml

    fields = {"path": path} if path is not None else {}
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"{what} is {len(text):,} characters, more than the {MAX_BYTES:,} mlzen reads "
            "as YAML. Keep configuration small: pass data as an artifact.",
            **fields,
        )
    loader = _bounded_loader()(text)
    try:
        return loader.get_single_data()
    except _OutOfBounds as exc:
        raise ConfigError(
            f"{what} {exc.problem} (line {exc.line}). {exc.fix}", line=exc.line, **fields
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}. {fix}", **fields) from None
    finally:
        loader.dispose()


class _OutOfBounds(Exception):
    def __init__(self, problem: str, line: int, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.line, self.fix = problem, line, fix


_loader_class: type[yaml.SafeLoader] | None = None


def _bounded_loader() -> type[yaml.SafeLoader]:
    """The loader class, made on first use so that importing this module stays light."""
    global _loader_class
    if _loader_class is None:
        _loader_class = _make_loader()
    return _loader_class


def _make_loader() -> type[yaml.SafeLoader]:
    import yaml
    from yaml.events import AliasEvent
    from yaml.nodes import MappingNode, Node, SequenceNode

    class BoundedLoader(yaml.SafeLoader):
        """``SafeLoader`` that counts nesting and expanded values while composing."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0
            # Expanded size of every finished node, by id (the nodes outlive the load).
            self.sizes: dict[int, int] = {}

        def compose_node(self, parent: Node | None, index: Any) -> Node:
            line = self.peek_event().start_mark.line + 1
            if self.check_event(AliasEvent):
                anchored = self.anchors.get(self.peek_event().anchor)
                if anchored is not None and id(anchored) not in self.sizes:
                    raise _OutOfBounds(
                        "has an alias inside the very node it refers to",
                        line,
                        "Remove the recursive alias.",
                    )
            if self.depth >= MAX_DEPTH:
                raise _OutOfBounds(
                    f"nests values deeper than {MAX_DEPTH} levels",
                    line,
                    "Flatten the structure, or pass such data as an artifact.",
                )
            self.depth += 1
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            size = self.sizes.get(id(node))
            if size is None:
                size = 1
                if isinstance(node, SequenceNode):
                    size += sum(self.sizes[id(child)] for child in node.value)
                elif isinstance(node, MappingNode):
                    size += sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in node.value)
                self.sizes[id(node)] = size
            if size > MAX_VALUES:
                raise _OutOfBounds(
                    f"expands to more than {MAX_VALUES:,} values through its aliases "
                    "(&anchor / *alias)",
                    line,
                    "Use fewer or less nested aliases, or pass such data as an artifact.",
                )
            return node

    return BoundedLoader
