"""A Go ``text/template`` interpreter (lexer, parser, executor and builtins), in pure Python.

Typical use::

    t = Template.parse("{{ range .Messages }}{{ .Role }}: {{ .Content }}\\n{{ end }}",
                       missing_key="zero", funcs={"json": ...})
    text = t.execute({"Messages": [{"Role": "user", "Content": "hi"}]})

Data are Python values standing in for Go values (see :mod:`.values`): dicts are Go maps,
other objects are Go structs (attributes are fields), ``None`` is a nil interface.
"""

from .errors import FuncError, TemplateError
from .execute import Limits
from .funcs import BUILTINS, Func
from .gofmt import sprint, sprintln
from .gojson import JSONError, encode_string, marshal, object_from_pairs
from .nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    iter_nodes,
)
from .parser import Tree
from .printf import sprintf
from .template import Template
from .values import NO_VALUE, GoMap, GoStruct, NilMap, NilPointer, NilSlice

__all__ = [
    "BUILTINS", "NO_VALUE", "ActionNode", "BoolNode", "BranchNode", "BreakNode", "ChainNode",
    "CommandNode", "CommentNode", "ContinueNode", "DotNode", "FieldNode", "Func", "FuncError",
    "GoMap", "GoStruct", "IdentifierNode", "IfNode", "JSONError", "Limits", "ListNode", "NilMap",
    "NilNode", "NilPointer", "NilSlice", "Node", "NumberNode", "PipeNode", "RangeNode", "StringNode",
    "Template", "TemplateError", "TemplateNode", "TextNode", "Tree", "VariableNode", "WithNode",
    "encode_string", "iter_nodes", "marshal", "object_from_pairs", "sprint", "sprintf", "sprintln",
]
