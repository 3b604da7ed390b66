"""The Template type: a set of named parse trees plus functions and options (text/template)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .errors import TemplateError
from .execute import execute
from .funcs import BUILTINS, Func
from .nodes import ListNode, Node, is_empty_tree, iter_nodes
from .parser import Tree, parse

_MISSING_KEY = {"default": "default", "invalid": "default", "zero": "zero", "error": "error"}


class Template:
    """A Go text/template.

    ``Template.parse(text)`` parses (with ``missingkey=zero`` unless told otherwise);
    ``execute(data)`` renders. Templates defined with
    ``{{define}}``/``{{block}}`` share a namespace with the main one (see :meth:`lookup`).
    """

    def __init__(self, name: str = "", *, funcs: Mapping[str, Callable[..., Any] | Func] | None = None,
                 missing_key: str = "zero", delims: tuple[str, str] = ("{{", "}}")) -> None:
        if missing_key not in _MISSING_KEY:
            raise ValueError(f"unrecognized option: missingkey={missing_key}")
        self.name = name
        self.missing_key = _MISSING_KEY[missing_key]
        self.exec_funcs: dict[str, Func] = {k: Func.of(v) for k, v in (funcs or {}).items()}
        self.delims = delims
        self._common: dict[str, Tree] = {}

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, name: str = "", *,
              funcs: Mapping[str, Callable[..., Any] | Func] | None = None,
              missing_key: str = "zero") -> Template:
        """Parse text into a new template; raises TemplateError with Go's message.

        `missing_key` is Go's ``missingkey`` option: "zero" (the default here, as Ollama uses),
        "default"/"invalid" (Go's own default) or "error"."""
        t = cls(name, funcs=funcs, missing_key=missing_key)
        t.parse_more(text)
        return t

    def parse_more(self, text: str) -> Template:
        """(*Template).Parse: add the trees text defines (redefinitions replace earlier ones)."""
        trees = parse(self.name, text, self.has_function, *self.delims)
        for name, tree in trees.items():
            self.add_parse_tree(name, tree)
        return self

    def has_function(self, name: str) -> bool:
        return name in self.exec_funcs or name in BUILTINS

    def add_parse_tree(self, name: str, tree: Tree) -> Template:
        """Associate a tree with a name (an empty tree never replaces a non-empty one)."""
        old = self._common.get(name)
        if old is not None and is_empty_tree(tree.root) and old.root is not None:
            return self
        self._common[name] = tree
        return self

    def with_root(self, root: ListNode, *, funcs: Mapping[str, Callable[..., Any] | Func] | None = None,
                  missing_key: str = "default") -> Template:
        """A new, standalone template named like this one whose body is `root`
        (Go: ``template.New(name).AddParseTree(name, &parse.Tree{Root: root})``)."""
        t = Template(self.name, funcs=funcs, missing_key=missing_key, delims=self.delims)
        tree = Tree(self.name, self.name, self.tree.text if self.tree else "")
        tree.root = root
        t._common[self.name] = tree
        return t

    def clone(self) -> Template:
        t = Template(self.name, missing_key=self.missing_key, delims=self.delims)
        t.exec_funcs = dict(self.exec_funcs)
        t._common = dict(self._common)
        return t

    # ---- inspection ----------------------------------------------------------------------------
    @property
    def tree(self) -> Tree | None:
        return self._common.get(self.name)

    @property
    def root(self) -> ListNode | None:
        tree = self.tree
        return tree.root if tree is not None else None

    def lookup(self, name: str) -> Template | None:
        """The associated template called name, or None."""
        tree = self._common.get(name)
        if tree is None:
            return None
        if name == self.name:
            return self
        t = Template(name, missing_key=self.missing_key, delims=self.delims)
        t.exec_funcs = self.exec_funcs
        t._common = self._common
        return t

    def templates(self) -> list[Template]:
        """All associated templates that have a tree (Go's Templates())."""
        out = []
        for name in self._common:
            t = self.lookup(name)
            if t is not None and t.root is not None:
                out.append(t)
        return out

    def walk(self) -> Iterator[Node]:
        """Every node of the main tree, depth first."""
        root = self.root
        if root is not None:
            yield from iter_nodes(root)

    def defined_templates(self) -> str:
        names = [f'"{n}"' for n, t in self._common.items() if t.root is not None]
        return "; defined templates are: " + ", ".join(names) if names else ""

    # ---- execution -----------------------------------------------------------------------------
    def execute(self, data: Any = None) -> str:
        """Render with `data` as dot; raises TemplateError (Go's message) on failure."""
        return execute(self, data)

    def execute_template(self, name: str, data: Any = None) -> str:
        t = self.lookup(name)
        if t is None:
            raise TemplateError(f'template: no template "{name}" associated with template "{self.name}"')
        return t.execute(data)

    def __repr__(self) -> str:
        return f"Template({self.name!r})"
