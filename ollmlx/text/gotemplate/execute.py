"""Executing a parsed template (mirrors text/template/exec.go)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from . import values as V
from .errors import FuncError, TemplateError
from .funcs import BUILTINS, Func
from .gofmt import fprint_value, sprint
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
)
from .strconv import quote

if TYPE_CHECKING:
    from .template import Template

_MISSING = object()  # no final value in a pipeline (Go's missingVal)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Limits:
    """Bounds that keep hostile templates from hanging or exhausting memory."""

    max_template_depth = 100
    max_steps = 2_000_000
    max_output = 64 << 20


def error_context(node: Node, fallback_text: str, fallback_name: str) -> tuple[str, str]:
    """parse.Tree.ErrorContext: ("NAME:LINE:COL", node text); COL counts bytes."""
    tree = node.tr
    text = tree.text if tree is not None else fallback_text
    name = tree.parse_name if tree is not None else fallback_name
    before = text[: node.pos]
    nl = before.rfind("\n")
    col = len(before[nl + 1 :].encode("utf-8", "surrogateescape")) if nl >= 0 else len(
        before.encode("utf-8", "surrogateescape"))
    return f"{name}:{before.count(chr(10)) + 1}:{col}", str(node)


class _Output:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.steps = 0


class State:
    def __init__(self, tmpl: Template, out: _Output, dot: Any, depth: int = 0) -> None:
        self.tmpl = tmpl
        self.out = out
        self.vars: list[list[Any]] = [["$", dot]]
        self.depth = depth
        self.node: Node | None = None

    # ---- errors & variables --------------------------------------------------------------------
    def errorf(self, msg: str) -> NoReturn:
        name = self.tmpl.name
        if self.node is None:
            raise TemplateError(f"template: {name}: {msg}")
        tree = self.tmpl.tree
        location, context = error_context(self.node, tree.text if tree else "", name)
        raise TemplateError(f"template: {location}: executing {quote(name)} at <{context}>: {msg}")

    def at(self, node: Node) -> None:
        self.node = node

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        self.errorf(f"undefined variable: {name}")

    def step(self) -> None:
        self.out.steps += 1
        if self.out.steps > Limits.max_steps:
            self.errorf(f"exceeded maximum execution steps ({Limits.max_steps})")

    def write(self, s: str) -> None:
        self.out.size += len(s)
        if self.out.size > Limits.max_output:
            self.errorf(f"output exceeds {Limits.max_output} characters")
        self.out.parts.append(s)

    # ---- walking -------------------------------------------------------------------------------
    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        self.step()
        if isinstance(node, TextNode):
            self.write(node.text)
        elif isinstance(node, ActionNode):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, IfNode | WithNode):
            self.walk_if_or_with(isinstance(node, WithNode), dot, node)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, CommentNode):
            pass
        else:
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, is_with: bool, dot: Any, node: BranchNode) -> None:
        mark = self.mark()
        try:
            while True:  # "else if"/"else with" chains are walked iteratively
                val = self.eval_pipeline(dot, node.pipe)
                truth, ok = V.is_true(val)
                if not ok:
                    self.errorf(f"if/with can't use {sprint(val)}")
                if truth:
                    self.walk(val if is_with else dot, node.list)
                    return
                rest = node.else_list
                if rest is None:
                    return
                if len(rest.nodes) == 1 and type(rest.nodes[0]) is type(node):
                    node = rest.nodes[0]
                    self.at(node)
                    self.step()
                    continue
                self.walk(dot, rest)
                return
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, r: RangeNode) -> None:
        self.at(r)
        outer = self.mark()
        try:
            val = self.eval_pipeline(dot, r.pipe)
            mark = self.mark()
            k = V.kind(val)
            if k == V.SLICE:
                items: Any = enumerate(val)
            elif k == V.MAP:
                items = V.sorted_items(val)
            elif k == V.INT:
                if len(r.pipe.decl) > 1:
                    self.errorf(f"can't use {sprint(val)} to iterate over more than one variable")
                items = ((V.NO_VALUE, i) for i in range(max(val, 0)))
            elif k == V.INVALID:
                items = ()
            else:
                self.errorf(f"range can't iterate over {sprint(val)}")
            ran = False
            for index, elem in items:
                ran = True
                self.step()
                self._one_iteration(r, mark, index, elem)
            if not ran and r.else_list is not None:
                self.walk(dot, r.else_list)
        except _Break:
            pass
        finally:
            self.pop(outer)

    def _one_iteration(self, r: RangeNode, mark: int, index: Any, elem: Any) -> None:
        decl = r.pipe.decl
        if decl:
            if r.pipe.is_assign:
                self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
            else:
                self.vars[len(self.vars) - 1][1] = elem
        if len(decl) > 1:
            if r.pipe.is_assign:
                self.set_var(decl[1].ident[0], elem)
            else:
                self.vars[len(self.vars) - 2][1] = index
        try:
            self.walk(elem, r.list)
        except _Continue:
            pass
        finally:
            self.pop(mark)

    def walk_template(self, dot: Any, t: TemplateNode) -> None:
        self.at(t)
        tmpl = self.tmpl.lookup(t.name)
        if tmpl is None:
            self.errorf(f"template {quote(t.name)} not defined")
        if self.depth >= Limits.max_template_depth:
            self.errorf(f"exceeded maximum template depth ({Limits.max_template_depth})")
        dot = self.eval_pipeline(dot, t.pipe)
        sub = State(tmpl, self.out, dot, self.depth + 1)
        if tmpl.root is None:
            sub.errorf(f"{quote(tmpl.name)} is an incomplete or empty template")
        sub.walk(dot, tmpl.root)

    def print_value(self, node: Node, v: Any) -> None:
        self.at(node)
        if v is V.NO_VALUE:
            self.write("<no value>")
            return
        if V.kind(v) == V.FUNC:
            self.errorf(f"can't print {node} of type {V.type_name(v)}")
        self.write(fprint_value(v))

    # ---- evaluation ----------------------------------------------------------------------------
    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        if pipe is None:
            return V.NO_VALUE
        self.at(pipe)
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface: dig down to the (invalid) value inside
                value = V.NO_VALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value])
        return value

    def not_a_function(self, args: list[Node] | None, final: Any) -> None:
        if (args is not None and len(args) > 1) or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0] if args else ''}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.true
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {quote(str(first))}")

    def ideal_constant(self, c: NumberNode) -> Any:
        self.at(c)
        t = c.text
        if c.is_complex:
            return c.complex128
        is_hex_int = len(t) > 2 and t[0] == "0" and t[1] in "xX" and not any(ch in t for ch in "pP")
        if c.is_float and not is_hex_int and not t.startswith("'") and any(ch in t for ch in ".eEpP"):
            return c.float64
        if c.is_int:
            return c.int64
        if c.is_uint:
            self.errorf(f"{t} overflows int")
        return V.NO_VALUE

    def eval_chain_node(self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any) -> Any:
        self.at(chain)
        if not chain.field:
            self.errorf("internal error: no fields in evalChainNode")
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final)

    def eval_variable_node(self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_node(self, dot: Any, field: FieldNode, args: list[Node] | None, final: Any) -> Any:
        self.at(field)
        return self.eval_field_chain(dot, dot, field, field.ident, args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: Node, ident: list[str],
                         args: list[Node] | None, final: Any) -> Any:
        iface = False  # whether receiver came out of a map[string]any (its static type is any)
        for name in ident[:-1]:
            prev = receiver
            receiver = self.eval_field(dot, name, node, None, _MISSING, receiver, iface)
            iface = V.kind(prev) == V.MAP and not (isinstance(prev, V.GoMap) and prev.typed)
        return self.eval_field(dot, ident[-1], node, args, final, receiver, iface)

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node] | None, final: Any,
                   receiver: Any, iface: bool = False) -> Any:
        if receiver is V.NO_VALUE:
            if self.tmpl.missing_key == "error":
                self.errorf(f"nil data; no entry for key {quote(name)}")
            return V.NO_VALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        method = V.find_method(receiver, name)
        if method is not None:
            return self.eval_call(dot, Func.of(method), False, node, name, args, final)
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        k = V.kind(receiver)
        if k == V.MAP:
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.tmpl.missing_key == "zero":
                return receiver.go_zero() if isinstance(receiver, V.GoMap) else None
            if self.tmpl.missing_key == "error":
                self.errorf(f"map has no entry for key {quote(name)}")
            return V.NO_VALUE
        if k == V.STRUCT:
            value = V.get_field(receiver, name)
            if value is not V.MISSING_FIELD:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return value
        elif k == V.PTR:
            self.errorf(f"nil pointer evaluating {V.type_name(receiver)}.{name}")
        self.errorf(f"can't evaluate field {name} in type {'interface {}' if iface else V.type_name(receiver)}")

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node] | None,
                      final: Any) -> Any:
        self.at(node)
        name = node.ident
        f = self.tmpl.exec_funcs.get(name)
        builtin = False
        if f is None:
            f = BUILTINS.get(name)
            builtin = f is not None
        if f is None:
            self.errorf(f"{quote(name)} is not a defined function")
        return self.eval_call(dot, f, builtin, cmd, name, args, final)

    def eval_call(self, dot: Any, f: Func, builtin: bool, node: Node, name: str,
                  args: list[Node] | None, final: Any) -> Any:
        argn = args[1:] if args is not None else []
        num_in = len(argn) + (final is not _MISSING)
        nparams = len(f.params)
        if f.variadic is not None:
            if num_in < nparams:
                self.errorf(f"wrong number of args for {name}: want at least {nparams} got {len(argn)}")
        elif not (f.min_args if f.min_args is not None else nparams) <= num_in <= nparams:
            self.errorf(f"wrong number of args for {name}: want {nparams} got {num_in}")
        if builtin and name in ("and", "or"):
            v: Any = V.NO_VALUE
            for a in argn:
                v = self.eval_arg(dot, "value", a)
                if V.truth(None if v is V.NO_VALUE else v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = final
            return v
        argv = []
        for i, a in enumerate(argn):
            argv.append(self.eval_arg(dot, f.params[i] if i < nparams else f.variadic, a))
        if final is not _MISSING:
            kind = f.params[num_in - 1] if num_in - 1 < nparams else f.variadic
            argv.append(self.validate_type(final, kind))
        try:
            result = f.fn(*argv)
        except TemplateError:
            raise
        except (FuncError, Exception) as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")
        if isinstance(result, str) and len(result) > Limits.max_output:
            self.errorf(f"error calling {name}: result exceeds {Limits.max_output} characters")
        return result

    def validate_type(self, value: Any, kind: str | None) -> Any:
        if value is V.NO_VALUE:
            if kind is None or kind == "value":
                return V.NO_VALUE
            if kind == "any":
                return None
            self.errorf(f"invalid value; expected {kind}")
        if kind in (None, "value", "any"):
            return value
        expected = {"string": str, "int": int, "bool": bool}[kind]
        if not isinstance(value, expected) or (kind == "int" and isinstance(value, bool)):
            self.errorf(f"wrong type for value; expected {kind}; got {V.type_name(value)}")
        return value

    def eval_arg(self, dot: Any, kind: str | None, n: Node) -> Any:
        self.at(n)
        if isinstance(n, DotNode):
            return self.validate_type(dot, kind)
        if isinstance(n, NilNode):
            if kind in (None, "value", "any"):
                return V.NO_VALUE if kind != "any" else None
            self.errorf(f"cannot assign nil to {kind}")
        if isinstance(n, FieldNode):
            return self.validate_type(self.eval_field_node(dot, n, [n], _MISSING), kind)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, n, None, _MISSING), kind)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), kind)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, _MISSING), kind)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, n, None, _MISSING), kind)
        literal: dict[str, Callable[[], Any]] = {
            "bool": lambda: n.true if isinstance(n, BoolNode) else self.errorf(f"expected bool; found {n}"),
            "string": lambda: n.text if isinstance(n, StringNode) else self.errorf(f"expected string; found {n}"),
            "int": lambda: n.int64 if isinstance(n, NumberNode) and n.is_int
            else self.errorf(f"expected integer; found {n}"),
        }
        if kind in literal:
            return literal[kind]()
        if isinstance(n, BoolNode):
            return n.true
        if isinstance(n, NumberNode):
            return self.ideal_constant(n)
        if isinstance(n, StringNode):
            return n.text
        self.errorf(f"can't handle {n} for arg of type {kind}")


def execute(tmpl: Template, data: Any) -> str:
    if tmpl.root is None:
        raise TemplateError(f"template: {tmpl.name}: {quote(tmpl.name)} is an incomplete or empty template")
    if data is None:
        data = V.NO_VALUE  # reflect.ValueOf(nil) is the invalid value
    out = _Output()
    state = State(tmpl, out, data)
    try:
        state.walk(data, tmpl.root)
    except RecursionError:
        raise TemplateError(f"template: {tmpl.name}: exceeded maximum nesting depth") from None
    text = "".join(out.parts)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text
