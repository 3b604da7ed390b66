"""Parser for Go text/template (mirrors text/template/parse/parse.go)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from .errors import TemplateError
from .lexer import Item, Lexer, T
from .literals import new_number
from .nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
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
    is_empty_tree,
)
from .strconv import SyntaxErr, quote, unquote

# Go allows 10000 nested parentheses; Python's stack does not, so parentheses, control structures
# and "else if" links share one, smaller, limit (every tree walker then stays well inside the stack).
MAX_NESTING = 100


class Tree:
    """A parsed template: its name, root list and source text."""

    def __init__(self, name: str, parse_name: str | None = None, text: str = "") -> None:
        self.name = name
        self.parse_name = name if parse_name is None else parse_name
        self.text = text
        self.root: ListNode | None = None

    def __deepcopy__(self, memo: dict[int, object]) -> Tree:
        return self

    def __repr__(self) -> str:
        return f"Tree({self.name!r})"


class _Parser:
    def __init__(self, tree: Tree, lex: Lexer, tree_set: dict[str, Tree],
                 has_function: Callable[[str], bool]) -> None:
        self.t = tree
        self.lex = lex
        self.tree_set = tree_set
        self.has_function = has_function
        self.token: list[Item] = [Item(T.EOF, 0, "", 1)] * 3
        self.peek_count = 0
        self.vars = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.depth = 0

    # ---- token buffer --------------------------------------------------------------------------
    def next(self) -> Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.lex.next_item()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Item, t1: Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.lex.next_item()
        return self.token[0]

    def next_non_space(self) -> Item:
        while True:
            tok = self.next()
            if tok.typ != T.SPACE:
                return tok

    def peek_non_space(self) -> Item:
        tok = self.next_non_space()
        self.backup()
        return tok

    # ---- errors --------------------------------------------------------------------------------
    def errorf(self, msg: str) -> NoReturn:
        self.t.root = None
        raise TemplateError(f"template: {self.t.parse_name}:{self.token[0].line}: {msg}")

    def expect(self, expected: T, context: str) -> Item:
        tok = self.next_non_space()
        if tok.typ != expected:
            self.unexpected(tok, context)
        return tok

    def expect_one_of(self, e1: T, e2: T, context: str) -> Item:
        tok = self.next_non_space()
        if tok.typ not in (e1, e2):
            self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Item, context: str) -> NoReturn:
        if tok.typ == T.ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != tok.line:
                extra = f" in action started at {self.t.parse_name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{tok}{extra}")
        self.errorf(f"unexpected {tok} in {context}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.errorf(f"max nesting depth exceeded ({MAX_NESTING})")

    # ---- top level -----------------------------------------------------------------------------
    def parse(self) -> None:
        t = self.t
        t.root = ListNode(self.peek().pos, tr=t)
        while self.peek().typ != T.EOF:
            if self.peek().typ == T.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == T.DEFINE:
                    sub = _Parser(Tree("definition", t.parse_name, t.text), self.lex, self.tree_set,
                                  self.has_function)
                    sub.parse_definition()
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, EndNode | ElseNode):
                self.errorf(f"unexpected {n}")
            t.root.nodes.append(n)

    def add(self) -> None:
        existing = self.tree_set.get(self.t.name)
        if existing is None or is_empty_tree(existing.root):
            self.tree_set[self.t.name] = self.t
            return
        if not is_empty_tree(self.t.root):
            self.errorf(f"template: multiple definition of template {quote(self.t.name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.expect_one_of(T.STRING, T.RAW_STRING, context)
        try:
            self.t.name = unquote(name.val)
        except SyntaxErr as e:
            self.errorf(str(e))
        self.expect(T.RIGHT_DELIM, context)
        self.t.root, end = self.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add()

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos, tr=self.t)
        while self.peek_non_space().typ != T.EOF:
            n = self.text_or_action()
            if isinstance(n, EndNode | ElseNode):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.typ == T.TEXT:
            return TextNode(tok.pos, tok.val, self.t)
        if tok.typ == T.LEFT_DELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")

    def action(self) -> Node:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == T.BLOCK:
            return self.block_control()
        if typ in (T.BREAK, T.CONTINUE):
            return self.break_control(tok)
        if typ == T.ELSE:
            return self.else_control()
        if typ == T.END:
            return EndNode(self.expect(T.RIGHT_DELIM, "end").pos, self.t)
        if typ in (T.IF, T.RANGE, T.WITH):
            return self.control(typ)
        if typ == T.TEMPLATE:
            return self.template_control()
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, tok.line, self.pipeline("command", T.RIGHT_DELIM), self.t)

    def break_control(self, tok: Item) -> Node:
        word = "break" if tok.typ == T.BREAK else "continue"
        nxt = self.next_non_space()
        if nxt.typ != T.RIGHT_DELIM:
            self.unexpected(nxt, "{{" + word + "}}")
        if self.range_depth == 0:
            self.errorf("{{" + word + "}} outside {{range}}")
        cls = BreakNode if tok.typ == T.BREAK else ContinueNode
        return cls(tok.pos, tok.line, self.t)

    def control(self, typ: T) -> BranchNode:
        context = {T.IF: "if", T.RANGE: "range", T.WITH: "with"}[typ]
        cls: type[BranchNode] = {T.IF: IfNode, T.RANGE: RangeNode, T.WITH: WithNode}[typ]
        self.nest()  # an "else if" counts as one more level: the tree nests it
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, T.RIGHT_DELIM)
            if typ == T.RANGE:
                self.range_depth += 1
            lst, nxt = self.item_list()
            if typ == T.RANGE:
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, ElseNode):
                if typ in (T.IF, T.WITH) and self.peek().typ == typ:
                    self.next()
                    else_list = ListNode(nxt.pos, tr=self.t)
                    else_list.nodes.append(self.control(typ))
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return cls(pipe.pos, pipe.line, pipe, lst, else_list, self.t)
        finally:
            del self.vars[mark:]
            self.depth -= 1

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (T.IF, T.WITH):
            return ElseNode(peek.pos, peek.line, self.t)
        tok = self.expect(T.RIGHT_DELIM, "else")
        return ElseNode(tok.pos, tok.line, self.t)

    def block_control(self) -> Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.parse_template_name(tok, context)
        pipe = self.pipeline(context, T.RIGHT_DELIM)
        sub = _Parser(Tree(name, self.t.parse_name, self.t.text), self.lex, self.tree_set, self.has_function)
        sub.depth = self.depth
        sub.t.root, end = sub.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        sub.add()
        return TemplateNode(tok.pos, tok.line, name, pipe, self.t)

    def template_control(self) -> Node:
        context = "template clause"
        tok = self.next_non_space()
        name = self.parse_template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != T.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, T.RIGHT_DELIM)
        return TemplateNode(tok.pos, tok.line, name, pipe, self.t)

    def parse_template_name(self, tok: Item, context: str) -> str:
        if tok.typ in (T.STRING, T.RAW_STRING):
            try:
                return unquote(tok.val)
            except SyntaxErr as e:
                self.errorf(str(e))
        self.unexpected(tok, context)

    # ---- pipelines -----------------------------------------------------------------------------
    def pipeline(self, context: str, end: T) -> PipeNode:
        tok = self.peek_non_space()
        pipe = PipeNode(tok.pos, tok.line, self.t)
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != T.VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (T.ASSIGN, T.DECLARE):
                pipe.is_assign = nxt.typ == T.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val, self.t))
                self.vars.append(v.val)
            elif nxt.typ == T.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val, self.t))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T.VARIABLE, T.RIGHT_DELIM, T.RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            elif after.typ == T.SPACE:
                self.backup3(v, after)
            else:
                self.backup2(v)
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.typ in (T.BOOL, T.CHAR_CONSTANT, T.COMPLEX, T.DOT, T.FIELD, T.IDENTIFIER, T.NUMBER,
                           T.NIL, T.RAW_STRING, T.STRING, T.VARIABLE, T.LEFT_PAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos, self.t)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == T.SPACE:
                continue
            if tok.typ in (T.RIGHT_DELIM, T.RIGHT_PAREN):
                self.backup()
            elif tok.typ != T.PIPE:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == T.FIELD:
            chain = ChainNode(self.peek().pos, node, self.t)
            while self.peek().typ == T.FIELD:
                chain.add(self.next().val)
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, str(chain), self.t)
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, str(chain), self.t)
            if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
                self.errorf(f"unexpected . after term {quote(str(node))}")
            return chain
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == T.IDENTIFIER:
            if not self.has_function(tok.val):
                self.errorf(f"function {quote(tok.val)} not defined")
            return IdentifierNode(tok.pos, tok.val, self.t)
        if typ == T.DOT:
            return DotNode(tok.pos, self.t)
        if typ == T.NIL:
            return NilNode(tok.pos, self.t)
        if typ == T.VARIABLE:
            v = VariableNode(tok.pos, tok.val, self.t)
            if v.ident[0] not in self.vars:
                self.errorf(f"undefined variable {quote(v.ident[0])}")
            return v
        if typ == T.FIELD:
            return FieldNode(tok.pos, tok.val, self.t)
        if typ == T.BOOL:
            return BoolNode(tok.pos, tok.val == "true", self.t)
        if typ in (T.CHAR_CONSTANT, T.COMPLEX, T.NUMBER):
            try:
                return new_number(tok.pos, tok.val, typ, self.t)
            except (SyntaxErr, ValueError) as e:
                self.errorf(str(e))
        if typ == T.LEFT_PAREN:
            self.nest()
            try:
                return self.pipeline("parenthesized pipeline", T.RIGHT_PAREN)
            finally:
                self.depth -= 1
        if typ in (T.STRING, T.RAW_STRING):
            try:
                return StringNode(tok.pos, tok.val, unquote(tok.val), self.t)
            except SyntaxErr as e:
                self.errorf(str(e))
        self.backup()
        return None


def parse(name: str, text: str, has_function: Callable[[str], bool],
          left: str = "{{", right: str = "}}") -> dict[str, Tree]:
    """parse.Parse: all trees defined by text, the top-level one under `name`."""
    tree_set: dict[str, Tree] = {}
    lex = Lexer(text, left, right, break_ok=not has_function("break"),
                continue_ok=not has_function("continue"))
    p = _Parser(Tree(name, name, text), lex, tree_set, has_function)
    try:
        p.parse()
        p.add()
    except RecursionError:
        raise TemplateError(f"template: {name}: max nesting depth exceeded") from None
    return tree_set
