"""Parse-tree nodes (mirror text/template/parse/node.go, including their String() forms)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .strconv import quote

if TYPE_CHECKING:
    from .parser import Tree


class Node:
    __slots__ = ("pos", "tr")

    def __init__(self, pos: int, tr: Tree | None = None) -> None:
        self.pos = pos
        self.tr = tr

    def children(self) -> list[Node]:
        """Direct sub-nodes, in source order."""
        return []

    def copy(self) -> Any:
        """A deep copy of this subtree (the Tree it points to is shared, not copied)."""
        cls = type(self)
        new = object.__new__(cls)
        for klass in cls.__mro__:
            for name in getattr(klass, "__slots__", ()):
                if not hasattr(self, name):
                    continue
                v = getattr(self, name)
                if isinstance(v, Node):
                    v = v.copy()
                elif isinstance(v, list):
                    v = [x.copy() if isinstance(x, Node) else x for x in v]
                setattr(new, name, v)
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.text = text

    def __str__(self) -> str:
        return self.text


class CommentNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.text = text

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node] | None = None, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.nodes: list[Node] = nodes if nodes is not None else []

    def children(self) -> list[Node]:
        return list(self.nodes)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class IdentifierNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.ident = ident

    def __str__(self) -> str:
        return self.ident


class VariableNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.ident = ident.split(".")

    def __str__(self) -> str:
        return ".".join(self.ident)


class DotNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "."


class NilNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "nil"


class FieldNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.ident = ident[1:].split(".")  # ident starts with '.'

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


class ChainNode(Node):
    __slots__ = ("field", "node")

    def __init__(self, pos: int, node: Node, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.node = node
        self.field: list[str] = []

    def add(self, field: str) -> None:
        self.field.append(field[1:])

    def children(self) -> list[Node]:
        return [self.node]

    def __str__(self) -> str:
        s = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return s + "".join("." + f for f in self.field)


class BoolNode(Node):
    __slots__ = ("true",)

    def __init__(self, pos: int, true: bool, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.true = true

    def __str__(self) -> str:
        return "true" if self.true else "false"


class NumberNode(Node):
    __slots__ = ("complex128", "float64", "int64", "is_complex", "is_float", "is_int", "is_uint",
                 "text", "uint64")

    def __init__(self, pos: int, text: str, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.text = text
        self.is_int = self.is_uint = self.is_float = self.is_complex = False
        self.int64 = self.uint64 = 0
        self.float64 = 0.0
        self.complex128 = 0j

    def __str__(self) -> str:
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.quoted = quoted
        self.text = text

    def __str__(self) -> str:
        return self.quoted


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.args: list[Node] = []

    def children(self) -> list[Node]:
        return list(self.args)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


class PipeNode(Node):
    __slots__ = ("cmds", "decl", "is_assign", "line")

    def __init__(self, pos: int, line: int, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.line = line
        self.is_assign = False
        self.decl: list[VariableNode] = []
        self.cmds: list[CommandNode] = []

    def children(self) -> list[Node]:
        return [*self.decl, *self.cmds]

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: PipeNode, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.line = line
        self.pipe = pipe

    def children(self) -> list[Node]:
        return [self.pipe]

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class BranchNode(Node):
    """Base of IfNode, RangeNode and WithNode."""

    __slots__ = ("else_list", "line", "list", "pipe")
    keyword = ""

    def __init__(self, pos: int, line: int, pipe: PipeNode, lst: ListNode,
                 else_list: ListNode | None, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.line = line
        self.pipe = pipe
        self.list = lst
        self.else_list = else_list

    def children(self) -> list[Node]:
        out: list[Node] = [self.pipe, self.list]
        if self.else_list is not None:
            out.append(self.else_list)
        return out

    def __str__(self) -> str:
        s = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


class IfNode(BranchNode):
    __slots__ = ()
    keyword = "if"


class RangeNode(BranchNode):
    __slots__ = ()
    keyword = "range"


class WithNode(BranchNode):
    __slots__ = ()
    keyword = "with"


class BreakNode(Node):
    __slots__ = ("line",)

    def __init__(self, pos: int, line: int, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.line = line

    def __str__(self) -> str:
        return "{{break}}"


class ContinueNode(BreakNode):
    __slots__ = ()

    def __str__(self) -> str:
        return "{{continue}}"


class TemplateNode(Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe: PipeNode | None, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.line = line
        self.name = name
        self.pipe = pipe

    def children(self) -> list[Node]:
        return [self.pipe] if self.pipe is not None else []

    def __str__(self) -> str:
        s = "{{template " + quote(self.name)
        if self.pipe is not None:
            s += " " + str(self.pipe)
        return s + "}}"


class EndNode(Node):
    """{{end}}: internal to the parser."""

    __slots__ = ()

    def __str__(self) -> str:
        return "{{end}}"


class ElseNode(Node):
    """{{else}}: internal to the parser."""

    __slots__ = ("line",)

    def __init__(self, pos: int, line: int, tr: Tree | None = None) -> None:
        super().__init__(pos, tr)
        self.line = line

    def __str__(self) -> str:
        return "{{else}}"


# unicode.IsSpace
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def iter_nodes(node: Node) -> Iterator[Node]:
    """All nodes of a subtree, depth first, parents before children (iteratively)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children()))


def is_empty_tree(n: Node | None) -> bool:
    """parse.IsEmptyTree."""
    if n is None or isinstance(n, CommentNode):
        return True
    if isinstance(n, ListNode):
        return all(is_empty_tree(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return n.text.strip(GO_SPACE) == ""
    return False
