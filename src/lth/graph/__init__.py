"""The run graph: nodes that reference other nodes' states and masks, the ops that resolve them, and given nodes
(tensors handed in, stored as a run)."""

from lth.graph.given import GIVEN, given_node, given_spec, tensors_hash, write_given
from lth.graph.node import MASK, Node, Recipe, Ref, closure, freeze
from lth.graph.ops import OPS, OpContext, Setup, op, resolve

__all__ = ["GIVEN", "MASK", "Node", "OPS", "OpContext", "Recipe", "Ref", "Setup", "closure", "freeze", "given_node",
           "given_spec", "op", "resolve", "tensors_hash", "write_given"]
