"""The run graph: nodes that reference other nodes' states and masks, and the ops that resolve them."""

from lth.graph.node import MASK, Node, Recipe, Ref, closure, freeze
from lth.graph.ops import OPS, OpContext, Setup, op, resolve

__all__ = ["MASK", "Node", "OPS", "OpContext", "Recipe", "Ref", "Setup", "closure", "freeze", "op", "resolve"]
