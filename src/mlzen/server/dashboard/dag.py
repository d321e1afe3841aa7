"""Layered layout of a directed graph, drawn as inline SVG (pipeline DAGs, lineage).

The layout is the classic Sugiyama scheme, small enough to run on every page view:

1. *Layering*: each node goes one layer right of its deepest parent (longest path), so
   every edge points from a lower layer to a higher one. Edges that would close a cycle
   (not possible in a pipeline, but the input is only data) are ignored for layering.
2. *Long edges* get a dummy node in every layer they cross, so they are routed around
   the real nodes and take part in crossing reduction.
3. *Ordering*: sweeps down and up the layers place each node at the barycenter (mean
   position) of its neighbours in the previous layer; the order with the fewest edge
   crossings seen is kept.
4. *Coordinates*: layers are columns left to right; each column is centred vertically.

``render_svg`` draws the result: a node is a rounded box linking to its page, with a
``data-status`` attribute that the stylesheet colours (and ``live.js`` updates), a
"cached" mark shown for cached steps, and edges labelled with artifact names where the
label fits between two columns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise

from markupsafe import Markup

NODE_WIDTH = 168
NODE_HEIGHT = 46
LAYER_GAP = 112  # horizontal space between two columns, where edge labels go
ROW_GAP = 26
MARGIN = 16
CHAR_WIDTH = 6.6  # average width of a character of the 11px edge-label font
LABEL_CHARS = 22  # characters of a node label before it is cut with an ellipsis
SWEEPS = 12


@dataclass(frozen=True)
class Node:
    """A node to draw: ``kind`` is ``step`` or ``artifact``; ``status`` colours it."""

    id: str
    label: str
    status: str = ""
    href: str | None = None
    detail: str = ""
    kind: str = "step"
    tooltip: str = ""


@dataclass(frozen=True)
class Edge:
    """An edge from node ``source`` to node ``target``, optionally labelled."""

    source: str
    target: str
    label: str = ""


@dataclass
class Placed:
    """A node's layer, position within the layer and top-left corner."""

    node: Node
    layer: int
    order: int
    x: float = 0.0
    y: float = 0.0


@dataclass
class Routed:
    """An edge with the points it passes through, source to target."""

    edge: Edge
    points: list[tuple[float, float]]


@dataclass
class Layout:
    """Where every node and edge goes; ``layers`` lists node ids (and dummies) per layer."""

    nodes: dict[str, Placed]
    edges: list[Routed]
    layers: list[list[str]]
    width: float
    height: float
    crossings: int = 0
    dummies: set[str] = field(default_factory=set)


def assign_layers(node_ids: Sequence[str], edges: Iterable[Edge]) -> dict[str, int]:
    """Longest-path layering: a node sits one layer after its deepest parent.

    Edges that close a cycle are ignored, so every input gets a layering.
    """
    parents: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge.source != edge.target:
            parents[edge.target].append(edge.source)
    layer: dict[str, int] = {}
    visiting: set[str] = set()
    for start in node_ids:
        if start in layer:
            continue
        # Iterative depth-first search, so a long chain cannot exhaust the recursion limit.
        stack: list[tuple[str, int]] = [(start, 0)]
        visiting.add(start)
        while stack:
            node, index = stack[-1]
            pending = [p for p in parents.get(node, []) if p not in layer]
            if index < len(pending):
                stack[-1] = (node, index + 1)
                parent = pending[index]
                if parent not in visiting:
                    visiting.add(parent)
                    stack.append((parent, 0))
                continue
            done = [layer[p] for p in parents.get(node, []) if p in layer]
            layer[node] = 1 + max(done) if done else 0
            visiting.discard(node)
            stack.pop()
    return layer


def count_crossings(layers: list[list[str]], links: list[tuple[str, str]]) -> int:
    """Edge crossings between adjacent layers, for links ``(upper, lower)`` one layer apart."""
    position = {node: i for layer in layers for i, node in enumerate(layer)}
    level = {node: depth for depth, layer in enumerate(layers) for node in layer}
    by_gap: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for upper, lower in links:
        by_gap[level[upper]].append((position[upper], position[lower]))
    total = 0
    for pairs in by_gap.values():
        pairs.sort()
        for i, (a_up, a_low) in enumerate(pairs):
            for b_up, b_low in pairs[i + 1 :]:
                if b_up > a_up and b_low < a_low:
                    total += 1
    return total


def _order_layers(layers: list[list[str]], links: list[tuple[str, str]]) -> list[list[str]]:
    """Reorder each layer by barycenters, sweeping down then up; keep the best order."""
    down: dict[str, list[str]] = defaultdict(list)
    up: dict[str, list[str]] = defaultdict(list)
    for upper, lower in links:
        down[upper].append(lower)
        up[lower].append(upper)
    best = [list(layer) for layer in layers]
    best_crossings = count_crossings(best, links)
    current = [list(layer) for layer in layers]
    for sweep in range(SWEEPS):
        if best_crossings == 0:
            break
        downward = sweep % 2 == 0
        indices = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for i in indices:
            fixed = current[i - 1] if downward else current[i + 1]
            neighbours = up if downward else down
            position = {node: p for p, node in enumerate(fixed)}
            key: dict[str, tuple[float, int]] = {}
            for index, node in enumerate(current[i]):
                linked = [position[n] for n in neighbours[node] if n in position]
                # A node with no neighbours there keeps its place.
                key[node] = (sum(linked) / len(linked) if linked else float(index), index)
            current[i].sort(key=key.__getitem__)
        crossings = count_crossings(current, links)
        if crossings < best_crossings:
            best, best_crossings = [list(layer) for layer in current], crossings
    return best


def layout(nodes: Sequence[Node], edges: Sequence[Edge]) -> Layout:
    """Lay ``nodes`` out in layers (columns) so that ``edges`` point left to right.

    Edges naming an unknown node are dropped; nodes keep their given order where the
    crossing reduction has no reason to move them.
    """
    known = {node.id: node for node in nodes}
    edges = [e for e in edges if e.source in known and e.target in known]
    layer_of = assign_layers(list(known), edges)
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for node in nodes:
        layers[layer_of[node.id]].append(node.id)

    # Chains of links one layer apart; a long edge passes through dummy nodes.
    links: list[tuple[str, str]] = []
    chains: list[tuple[Edge, list[str]]] = []
    dummies: set[str] = set()
    for index, edge in enumerate(edges):
        start, end = layer_of[edge.source], layer_of[edge.target]
        if end <= start:  # an edge closing a cycle, or a self loop: not drawn
            continue
        chain = [edge.source]
        for depth in range(start + 1, end):
            dummy = f"\0{index}:{depth}"
            dummies.add(dummy)
            layers[depth].append(dummy)
            chain.append(dummy)
        chain.append(edge.target)
        links.extend(pairwise(chain))
        chains.append((edge, chain))

    layers = _order_layers(layers, links)
    tallest = max((len(layer) for layer in layers), default=0)
    height = 2 * MARGIN + max(tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP, 0)
    width = 2 * MARGIN + max(len(layers) * NODE_WIDTH + (len(layers) - 1) * LAYER_GAP, 0)
    placed: dict[str, Placed] = {}
    centres: dict[str, tuple[float, float]] = {}
    for depth, layer in enumerate(layers):
        column = len(layer) * NODE_HEIGHT + (len(layer) - 1) * ROW_GAP
        top = MARGIN + (height - 2 * MARGIN - column) / 2
        x = MARGIN + depth * (NODE_WIDTH + LAYER_GAP)
        for order, node_id in enumerate(layer):
            y = top + order * (NODE_HEIGHT + ROW_GAP)
            centres[node_id] = (x + NODE_WIDTH / 2, y + NODE_HEIGHT / 2)
            if node_id not in dummies:
                placed[node_id] = Placed(known[node_id], depth, order, x, y)
    routed = []
    for edge, chain in chains:
        points = [centres[node_id] for node_id in chain]
        # Leave the source at its right side and enter the target at its left side.
        points[0] = (points[0][0] + NODE_WIDTH / 2, points[0][1])
        points[-1] = (points[-1][0] - NODE_WIDTH / 2, points[-1][1])
        routed.append(Routed(edge, points))
    return Layout(
        nodes=placed,
        edges=routed,
        layers=layers,
        width=width,
        height=height,
        crossings=count_crossings(layers, links),
        dummies=dummies,
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def _path(points: list[tuple[float, float]]) -> str:
    """A smooth path through ``points``: horizontal tangents at every point."""
    (x0, y0), rest = points[0], points[1:]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    for x1, y1 in rest:
        bend = (x1 - x0) / 2
        parts.append(f"C{x0 + bend:.1f},{y0:.1f} {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(parts)


def _edge_label(routed: Routed) -> str:
    label = routed.edge.label
    if not label:
        return ""
    (x0, y0), (x1, y1) = routed.points[0], routed.points[1]
    room = int((LAYER_GAP - 12) / CHAR_WIDTH)
    if room < 3:
        return ""
    text = _cut(label, room)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    return (
        f'<text class="dag-edge-label" x="{mx:.1f}" y="{my - 5:.1f}" text-anchor="middle">'
        f"{escape(text)}<title>{escape(label)}</title></text>"
    )


def _node(placed: Placed) -> str:
    node = placed.node
    x, y = placed.x, placed.y
    status = escape(node.status)
    tooltip = escape(node.tooltip or f"{node.label} {node.status}".strip())
    shape = (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="'
        f'{NODE_HEIGHT / 2 if node.kind == "artifact" else 8}"/>'
    )
    parts = [
        f'<g class="dag-node dag-{escape(node.kind)}" data-node="{escape(node.id)}" '
        f'data-status="{status}">',
        f"<title>{tooltip}</title>",
        shape,
        f'<text class="dag-label" x="{x + 12:.1f}" y="{y + 19:.1f}">'
        f"{escape(_cut(node.label, LABEL_CHARS))}</text>",
        f'<text class="dag-detail" x="{x + 12:.1f}" y="{y + 35:.1f}">'
        f"{escape(_cut(node.detail or node.status, LABEL_CHARS + 4))}</text>",
    ]
    if node.kind == "step":
        parts.append(
            f'<g class="dag-cache-mark"><rect x="{x + NODE_WIDTH - 50:.1f}" '
            f'y="{y - 8:.1f}" width="46" height="16" rx="8"/>'
            f'<text x="{x + NODE_WIDTH - 27:.1f}" y="{y + 4:.1f}" '
            'text-anchor="middle">cached</text></g>'
        )
    parts.append("</g>")
    body = "".join(parts)
    if node.href:
        return f'<a href="{escape(node.href)}" class="dag-link">{body}</a>'
    return body


def render_svg(graph: Layout, *, title: str) -> Markup:
    """The layout as an inline ``<svg>`` element (safe to put in a template as is)."""
    width, height = max(graph.width, 1), max(graph.height, 1)
    edges = "".join(
        f'<path class="dag-edge" d="{_path(r.points)}" marker-end="url(#dag-arrow)"/>'
        for r in graph.edges
    )
    labels = "".join(_edge_label(r) for r in graph.edges)
    nodes = "".join(_node(p) for p in graph.nodes.values())
    # Every piece of text in it went through html.escape above.
    return Markup(  # noqa: S704
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="max-width: {width:.0f}px" '
        f'aria-label="{escape(title)}">'
        '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        f'<g class="dag-edges">{edges}</g><g class="dag-edge-labels">{labels}</g>'
        f'<g class="dag-nodes">{nodes}</g></svg>'
    )
