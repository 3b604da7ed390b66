"""Ollama's TEMPLATE semantics on top of the Go template engine (spec §13; ollama template/template.go,
thinking/template.go InferTags, tools/template.go parseTag).

``parse(text)`` gives an :class:`OllamaTemplate`; ``render_messages`` / ``render_fim`` render
prompts the way Ollama's ``Template.Execute`` does (modern ``.Messages`` mode, legacy
``.Prompt``/``.Response`` mode, fill-in-the-middle mode). Messages and tools use Ollama's JSON
shapes (``role``, ``content``, ``tool_calls``, ...); they are converted to the Go structs Ollama
hands its templates (``Role``, ``Content``, ``ToolCalls``, ...), including how they print.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .gotemplate import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    Func,
    GoMap,
    GoStruct,
    IfNode,
    JSONError,
    ListNode,
    NilMap,
    NilPointer,
    NilSlice,
    Node,
    PipeNode,
    RangeNode,
    Template,
    TemplateError,
    TemplateNode,
    TextNode,
    VariableNode,
    marshal,
    object_from_pairs,
)
from .gotemplate.nodes import GO_SPACE

__all__ = [
    "DEFAULT_TEMPLATE",
    "FUNCS",
    "OllamaTemplate",
    "PropertyType",
    "TemplateArgs",
    "TemplateMessage",
    "TemplateProperties",
    "TemplateTool",
    "TemplateToolCall",
    "TemplateToolCallFunction",
    "TemplateToolFunction",
    "TemplateToolFunctionParameters",
    "TemplateTools",
    "ToolPropertiesMap",
    "ToolProperty",
    "Values",
    "capabilities",
    "collate",
    "convert_message",
    "convert_tools",
    "has_insert",
    "has_tool_round_trip",
    "has_tools",
    "identifiers",
    "parse",
    "render_fim",
    "render_messages",
    "template_vars",
    "thinking_tags",
    "tool_call_tag",
    "uses_messages",
]

DEFAULT_TEMPLATE = "{{ .Prompt }}"

_F = TypeVar("_F", bound=Callable[..., Any])


def _guard(fn: _F) -> _F:
    """Report a too-deep template as a TemplateError rather than a RecursionError."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise TemplateError("template: max nesting depth exceeded") from None

    return wrapper  # type: ignore[return-value]

# ---- template functions ------------------------------------------------------------------------


def _json(v: Any) -> str:
    try:
        return marshal(v)
    except JSONError:
        return ""


def _current_date(*_args: str) -> str:
    return datetime.date.today().strftime("%Y-%m-%d")


def _yesterday_date(*_args: str) -> str:
    return (datetime.date.today() - datetime.timedelta(days=1)).strftime("%Y-%m-%d")


def _to_typescript_type(v: Any) -> str:
    return v.ToTypeScriptType() if isinstance(v, ToolProperty) else "any"


FUNCS: dict[str, Func] = {
    "json": Func(_json, ("any",)),
    "currentDate": Func(_current_date, (), "string"),
    "yesterdayDate": Func(_yesterday_date, (), "string"),
    "toTypeScriptType": Func(_to_typescript_type, ("any",)),
}

# ---- the Go values Ollama gives its templates --------------------------------------------------


def _jsonish(v: Any) -> Any:
    """A value as Go's json.Unmarshal into `any` leaves it: numbers are float64."""
    if isinstance(v, bool) or v is None or isinstance(v, str | float):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonish(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonish(x) for x in v]
    return v


class PropertyType(list):
    """api.PropertyType: a string or a list of strings."""

    __go_type__ = "api.PropertyType"

    def __go_str__(self) -> str:
        if not self:
            return ""
        if len(self) == 1:
            return str(self[0])
        return "[" + " ".join(self) + "]"

    def __go_json__(self) -> str:
        if len(self) == 1:
            return marshal(self[0])
        return marshal(list(self)) if self else "null"


def _ts_type(t: str) -> str:
    return {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
            "array": "any[]", "object": "Record<string, any>", "null": "null"}.get(t, "any")


def _tag(name: str) -> dict[str, str]:
    return {"json": name}


@dataclass(eq=False)
class ToolProperty(GoStruct):
    go_type: ClassVar[str] = "api.ToolProperty"
    AnyOf: list[ToolProperty] = field(default_factory=NilSlice, metadata=_tag("anyOf,omitempty"))
    Type: PropertyType = field(default_factory=PropertyType, metadata=_tag("type,omitempty"))
    Items: Any = field(default=None, metadata=_tag("items,omitempty"))
    Description: str = field(default="", metadata=_tag("description,omitempty"))
    Enum: list[Any] = field(default_factory=NilSlice, metadata=_tag("enum,omitempty"))
    Properties: Any = field(default_factory=lambda: NilPointer("*api.ToolPropertiesMap"),
                            metadata=_tag("properties,omitempty"))
    Required: list[str] = field(default_factory=NilSlice, metadata=_tag("required,omitempty"))

    def ToTypeScriptType(self) -> str:
        if self.AnyOf:
            return " | ".join(p.ToTypeScriptType() for p in self.AnyOf)
        if not self.Type:
            return "any"
        return " | ".join(_ts_type(t) for t in self.Type)


class ToolPropertiesMap(GoStruct):
    """*api.ToolPropertiesMap: an insertion-ordered map (marshals in order; not rangeable)."""

    go_type: ClassVar[str] = "*api.ToolPropertiesMap"
    go_pointer: ClassVar[bool] = True

    def __init__(self, items: Iterable[tuple[str, ToolProperty]]) -> None:
        self._items = list(items)

    def __go_json__(self) -> str:
        return object_from_pairs(self._items)

    def Len(self) -> int:
        return len(self._items)

    def ToMap(self) -> GoMap:
        return _properties(self._items)


class TemplateArgs(GoMap):
    """template.templateArgs: map[string]any printing as JSON."""

    __go_type__ = "template.templateArgs"

    def __go_str__(self) -> str:
        return "{}" if isinstance(self, NilMap) else _json(dict(self))


class _NilTemplateArgs(TemplateArgs, NilMap):
    pass


class TemplateProperties(GoMap):
    """template.templateProperties: map[string]api.ToolProperty printing as JSON."""

    __go_type__ = "template.templateProperties"

    def __go_str__(self) -> str:
        return "{}" if isinstance(self, NilMap) else _json(dict(self))


class _NilTemplateProperties(TemplateProperties, NilMap):
    pass


def _properties(items: Iterable[tuple[str, ToolProperty]] | None) -> TemplateProperties:
    cls = TemplateProperties if items is not None else _NilTemplateProperties
    return cls(items or (), zero=ToolProperty, go_type=cls.__go_type__)


@dataclass(eq=False)
class TemplateToolFunctionParameters(GoStruct):
    go_type: ClassVar[str] = "template.templateToolFunctionParameters"
    Type: str = field(default="", metadata=_tag("type"))
    Defs: Any = field(default=None, metadata=_tag("$defs,omitempty"))
    Items: Any = field(default=None, metadata=_tag("items,omitempty"))
    Required: list[str] = field(default_factory=NilSlice, metadata=_tag("required,omitempty"))
    Properties: TemplateProperties = field(default_factory=lambda: _properties(None),
                                           metadata=_tag("properties"))


@dataclass(eq=False)
class TemplateToolFunction(GoStruct):
    go_type: ClassVar[str] = "template.templateToolFunction"
    Name: str = field(default="", metadata=_tag("name"))
    Description: str = field(default="", metadata=_tag("description"))
    Parameters: TemplateToolFunctionParameters = field(default_factory=TemplateToolFunctionParameters,
                                                       metadata=_tag("parameters"))


@dataclass(eq=False)
class TemplateTool(GoStruct):
    go_type: ClassVar[str] = "template.templateTool"
    Type: str = field(default="", metadata=_tag("type"))
    Items: Any = field(default=None, metadata=_tag("items,omitempty"))
    Function: TemplateToolFunction = field(default_factory=TemplateToolFunction, metadata=_tag("function"))

    def __go_str__(self) -> str:
        return _json(self)


class TemplateTools(list):
    """template.templateTools: prints as JSON."""

    __go_type__ = "template.templateTools"

    def __go_str__(self) -> str:
        return _json(self)


class _NilTemplateTools(TemplateTools, NilSlice):
    pass


@dataclass(eq=False)
class TemplateToolCallFunction(GoStruct):
    go_type: ClassVar[str] = "template.templateToolCallFunction"
    Index: int = 0
    Name: str = ""
    Arguments: TemplateArgs = field(default_factory=_NilTemplateArgs)


@dataclass(eq=False)
class TemplateToolCall(GoStruct):
    go_type: ClassVar[str] = "template.templateToolCall"
    ID: str = ""
    Function: TemplateToolCallFunction = field(default_factory=TemplateToolCallFunction)


@dataclass(eq=False)
class TemplateMessage(GoStruct):
    go_type: ClassVar[str] = "*template.templateMessage"
    go_pointer: ClassVar[bool] = True
    Role: str = ""
    Content: str = ""
    Thinking: str = ""
    Images: list[bytes] = field(default_factory=NilSlice)
    ToolCalls: list[TemplateToolCall] = field(default_factory=NilSlice)
    ToolName: str = ""
    ToolCallID: str = ""


# ---- conversion from Ollama's JSON shapes ------------------------------------------------------


def _get(obj: Any, key: str, default: Any = None) -> Any:
    v = obj.get(key, default) if isinstance(obj, Mapping) else getattr(obj, key, default)
    return default if v is None else v


def _str_list(v: Any) -> list[str]:
    return [str(x) for x in v] if isinstance(v, list | tuple) else NilSlice()


def _tool_property(d: Any) -> ToolProperty:
    t = _get(d, "type")
    ptype = PropertyType([t] if isinstance(t, str) else [str(x) for x in t] if t else [])
    props = _get(d, "properties")
    return ToolProperty(
        AnyOf=[_tool_property(x) for x in _get(d, "anyOf")] if _get(d, "anyOf") is not None else NilSlice(),
        Type=ptype,
        Items=_jsonish(_get(d, "items")),
        Description=str(_get(d, "description", "")),
        Enum=_jsonish(list(_get(d, "enum"))) if _get(d, "enum") is not None else NilSlice(),
        Properties=(ToolPropertiesMap((str(k), _tool_property(v)) for k, v in props.items())
                    if isinstance(props, Mapping) else NilPointer("*api.ToolPropertiesMap")),
        Required=_str_list(_get(d, "required")),
    )


def convert_tools(tools: Iterable[Any] | None) -> TemplateTools:
    """api.Tools -> templateTools (nil stays nil: prints "null")."""
    if tools is None:
        return _NilTemplateTools()
    out = TemplateTools()
    for t in tools:
        fn = _get(t, "function", {})
        params = _get(fn, "parameters", {})
        props = _get(params, "properties")
        out.append(TemplateTool(
            Type=str(_get(t, "type", "")),
            Items=_jsonish(_get(t, "items")),
            Function=TemplateToolFunction(
                Name=str(_get(fn, "name", "")),
                Description=str(_get(fn, "description", "")),
                Parameters=TemplateToolFunctionParameters(
                    Type=str(_get(params, "type", "")),
                    Defs=_jsonish(_get(params, "$defs")),
                    Items=_jsonish(_get(params, "items")),
                    Required=_str_list(_get(params, "required")),
                    Properties=_properties(
                        [(str(k), _tool_property(v)) for k, v in props.items()]
                        if isinstance(props, Mapping) else None),
                ),
            ),
        ))
    return out


def _image(v: Any) -> bytes:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    try:
        return base64.b64decode(str(v), validate=True)
    except (binascii.Error, ValueError):
        return str(v).encode("utf-8")


def convert_message(m: Any) -> TemplateMessage:
    """api.Message (Ollama JSON names) -> templateMessage (Go field names)."""
    calls: list[TemplateToolCall] = NilSlice()
    for tc in _get(m, "tool_calls", ()) or ():
        fn = _get(tc, "function", {})
        args = _get(fn, "arguments")
        if isinstance(args, Mapping):
            targs: TemplateArgs = TemplateArgs(_jsonish(args))
        else:
            targs = _NilTemplateArgs()
        call = TemplateToolCall(ID=str(_get(tc, "id", "")), Function=TemplateToolCallFunction(
            Index=int(_get(fn, "index", 0)), Name=str(_get(fn, "name", "")), Arguments=targs))
        calls = [*calls, call]
    images = _get(m, "images")
    return TemplateMessage(
        Role=str(_get(m, "role", "")).lower(),
        Content=str(_get(m, "content", "")),
        Thinking=str(_get(m, "thinking", "")),
        Images=[_image(i) for i in images] if images is not None else NilSlice(),
        ToolCalls=calls,
        ToolName=str(_get(m, "tool_name", "")),
        ToolCallID=str(_get(m, "tool_call_id", "")),
    )


def collate(messages: Iterable[Any]) -> tuple[str, list[TemplateMessage]]:
    """All system contents joined by blank lines, and the messages with consecutive same-role
    messages (except tool results) merged."""
    system: list[str] = []
    collated: list[TemplateMessage] = []
    for raw in messages:
        m = convert_message(raw)
        if m.Role == "system":
            system.append(m.Content)
        if collated and collated[-1].Role == m.Role and m.Role != "tool":
            collated[-1].Content += "\n\n" + m.Content
        else:
            collated.append(m)
    return "\n\n".join(system), collated


# ---- parsing & inspection ----------------------------------------------------------------------


def _response_node() -> ActionNode:
    """{{ .Response }}, appended to templates that use neither .Messages nor .Response."""
    pipe = PipeNode(0, 0)
    cmd = CommandNode(0)
    cmd.args.append(FieldNode(0, ".Response"))
    pipe.cmds.append(cmd)
    return ActionNode(0, 0, pipe)


def identifiers(n: Node | None) -> list[str]:
    """Ollama's Identifiers(): field and variable names along the walk it makes (iteratively)."""
    names: list[str] = []
    stack: list[Node | None] = [n]
    while stack:
        node = stack.pop()
        if isinstance(node, ListNode):
            stack.extend(reversed(node.nodes))
        elif isinstance(node, TemplateNode):
            if node.pipe is None:
                raise TemplateError("undefined template specified")
            stack.append(node.pipe)
        elif isinstance(node, ActionNode):
            stack.append(node.pipe)
        elif isinstance(node, BranchNode):
            stack.extend([node.else_list, node.list, node.pipe])
        elif isinstance(node, PipeNode):
            stack.extend(reversed([a for c in node.cmds for a in c.args]))
        elif isinstance(node, FieldNode | VariableNode):
            names.extend(node.ident)
    return names


class OllamaTemplate:
    """A parsed Ollama TEMPLATE: the Go template (with funcs and missingkey=zero) and its source."""

    def __init__(self, raw: str, template: Template) -> None:
        self.raw = raw
        self.template = template

    def __str__(self) -> str:
        return self.raw

    def contains(self, s: str) -> bool:
        return s in self.raw

    def vars(self) -> list[str]:
        """Sorted, lower-cased identifiers used by the template and its {{define}}s (Vars())."""
        names: set[str] = set()
        for t in self.template.templates():
            for n in t.root.nodes if t.root is not None else ():
                names.update(i.lower() for i in identifiers(n))
        return sorted(names)

    @_guard
    def execute(self, values: Values) -> str:
        return _execute(self, values)


@_guard
def parse(text: str) -> OllamaTemplate:
    """Ollama's template.Parse; raises TemplateError with Go's message."""
    tmpl = Template.parse(text, funcs=FUNCS, missing_key="zero")
    t = OllamaTemplate(text, tmpl)
    names = t.vars()
    if "messages" not in names and "response" not in names and tmpl.root is not None:
        tmpl.root.nodes.append(_response_node())
    return t


def _as_template(t: OllamaTemplate | Template | str) -> OllamaTemplate:
    if isinstance(t, OllamaTemplate):
        return t
    if isinstance(t, Template):
        return OllamaTemplate("", t)
    return parse(t)


def template_vars(t: OllamaTemplate | Template | str) -> set[str]:
    """Lower-cased identifiers the template uses (empty if Vars() fails)."""
    try:
        return set(_as_template(t).vars())
    except TemplateError:
        return set()


def uses_messages(t: OllamaTemplate | Template | str) -> bool:
    return "messages" in template_vars(t)


def has_tools(t: OllamaTemplate | Template | str) -> bool:
    return "tools" in template_vars(t)


def has_insert(t: OllamaTemplate | Template | str) -> bool:
    return "suffix" in template_vars(t)


@_guard
def has_tool_round_trip(t: OllamaTemplate | Template | str) -> bool:
    """goTemplateHasToolRoundTrip: uses .Tools and .ToolCalls and renders tool results."""
    ot = _as_template(t)
    names = template_vars(ot)
    if "tools" not in names or "toolcalls" not in names:
        return False
    return any(s in ot.raw for s in ('eq .Role "tool"', "tool_response", "TOOL_RESULTS"))


@_guard
def capabilities(t: OllamaTemplate | Template | str) -> list[str]:
    """goTemplateCapabilities: "tools", "insert", "thinking" as the template supports them."""
    try:
        names = _as_template(t).vars()
    except TemplateError:
        return []
    caps = [c for c, v in (("tools", "tools"), ("insert", "suffix")) if v in names]
    opening, closing = thinking_tags(t)
    if opening and closing:
        caps.append("thinking")
    return caps


def _visit(n: Node | None, enter: Callable[[Node], object], exit_: Callable[[Node], object]) -> None:
    """thinking.templateVisit (note: a branch is entered as the If/Range/With node and again as its
    BranchNode part)."""
    if n is None:
        return
    enter(n)
    if isinstance(n, ListNode):
        for c in n.nodes:
            _visit(c, enter, exit_)
    elif isinstance(n, BranchNode):
        enter(n)  # the embedded BranchNode
        for part in (n.pipe, n.list, n.else_list):
            _visit(part, enter, exit_)
        exit_(n)
    elif isinstance(n, ActionNode | TemplateNode):
        _visit(n.pipe, enter, exit_)
    elif isinstance(n, PipeNode):
        for c in n.cmds:
            _visit(c, enter, exit_)
    elif isinstance(n, CommandNode):
        for a in n.args:
            _visit(a, enter, exit_)
    exit_(n)


def _range_uses_field(r: RangeNode, name: str) -> bool:
    found = []
    _visit(r.pipe, lambda n: found.append(isinstance(n, FieldNode) and n.ident[0] == name), lambda n: None)
    return any(found)


@_guard
def thinking_tags(t: OllamaTemplate | Template | str) -> tuple[str, str]:
    """thinking.InferTags: the text around {{ .Thinking }} inside {{ range .Messages }}."""
    root = _as_template(t).template.root
    ancestors: list[Node] = []
    tags = ["", ""]

    def enter(n: Node) -> None:
        ancestors.append(n)
        if not (isinstance(n, FieldNode) and n.ident and n.ident[0] == "Thinking"):
            return
        rng = next((a for a in reversed(ancestors) if isinstance(a, RangeNode)), None)
        if rng is None or not _range_uses_field(rng, "Messages"):
            return
        lst = next((a for a in reversed(ancestors) if isinstance(a, ListNode)), None)
        if lst is not None and lst.nodes:
            if isinstance(lst.nodes[0], TextNode):
                tags[0] = lst.nodes[0].text.strip(GO_SPACE)
            if isinstance(lst.nodes[-1], TextNode):
                tags[1] = lst.nodes[-1].text.strip(GO_SPACE)

    _visit(root, enter, lambda n: ancestors.pop())
    return tags[0], tags[1]


def _find_tool_call_node(nodes: list[Node]) -> IfNode | None:
    for n in nodes:
        if isinstance(n, IfNode) and any(
                isinstance(a, FieldNode) and "ToolCalls" in a.ident for c in n.pipe.cmds for a in c.args):
            return n
        if isinstance(n, BranchNode):
            found = _find_tool_call_node(n.list.nodes)
            if found is None and n.else_list is not None:
                found = _find_tool_call_node(n.else_list.nodes)
            if found is not None:
                return found
        elif isinstance(n, ListNode):
            found = _find_tool_call_node(n.nodes)
            if found is not None:
                return found
    return None


def _find_text_node(nodes: list[Node]) -> TextNode | None:
    for n in nodes:
        if isinstance(n, TextNode):
            if n.text.strip(GO_SPACE):
                return n
        elif isinstance(n, BranchNode):
            found = _find_text_node(n.list.nodes)
            if found is None and n.else_list is not None:
                found = _find_text_node(n.else_list.nodes)
            return found
        elif isinstance(n, ListNode):
            found = _find_text_node(n.nodes)
            if found is not None:
                return found
        elif isinstance(n, ActionNode):
            return None
    return None


@_guard
def tool_call_tag(t: OllamaTemplate | Template | str | None) -> str:
    """tools.parseTag: the first text inside {{ if .ToolCalls }} up to "{", or "{" if none."""
    root = _as_template(t).template.root if t is not None else None
    if root is None:
        return "{"
    tc = _find_tool_call_node(root.nodes)
    tn = _find_text_node(tc.list.nodes) if tc is not None else None
    if tn is None:
        return "{"
    tag = tn.text.replace("\r\n", "\n").split("{", 1)[0].strip(GO_SPACE)
    return tag or "{"


# ---- execution ---------------------------------------------------------------------------------


@dataclass
class Values:
    """template.Values. `messages` and `tools` use Ollama's JSON shapes (dicts or objects)."""

    messages: list[Any] | None = None
    tools: list[Any] | None = None
    prompt: str = ""
    suffix: str = ""
    think: bool = False
    think_level: str = ""
    is_think_set: bool = False
    force_legacy: bool = False


class _Cut:
    """deleteNode with the predicate Ollama uses to cut everything after {{ .Response }}."""

    def __init__(self) -> None:
        self.cut = False

    def fn(self, n: Node) -> bool:
        if isinstance(n, FieldNode) and "Response" in n.ident:
            self.cut = True
            return False
        return self.cut

    def walk(self, n: Node) -> Node | None:
        if self.fn(n):
            return None
        if isinstance(n, ListNode):
            n.nodes = [c for c in (self.walk(c) for c in n.nodes) if c is not None]
        elif isinstance(n, BranchNode):
            if self.fn(n):  # Go walks the embedded BranchNode as a node of its own
                raise TemplateError("interface conversion: parse.Node is nil, not *parse.BranchNode")
            n.list = self._list(n.list)
            if n.else_list is not None:
                n.else_list = self._list(n.else_list)
        elif isinstance(n, ActionNode):
            pipe = self.walk(n.pipe)
            if pipe is None:
                return None
            assert isinstance(pipe, PipeNode)
            n.pipe = pipe
        elif isinstance(n, PipeNode):
            for c in n.cmds:
                c.args = [a for a in (self.walk(a) for a in c.args) if a is not None]
                if not c.args:
                    return None
        return n

    def _list(self, lst: ListNode) -> ListNode:
        out = self.walk(lst)
        if not isinstance(out, ListNode):  # Go panics on the nil *ListNode type assertion
            raise TemplateError("interface conversion: parse.Node is nil, not *parse.ListNode")
        return out


def _execute(t: OllamaTemplate, v: Values) -> str:
    system, messages = collate(v.messages or ())
    names = t.vars()
    think = {"Think": v.think, "ThinkLevel": v.think_level, "IsThinkSet": v.is_think_set}
    if v.prompt and v.suffix:
        return t.template.execute({"Prompt": v.prompt, "Suffix": v.suffix, "Response": "", **think})
    if not v.force_legacy and "messages" in names:
        return t.template.execute({
            "System": system, "Messages": messages or NilSlice(),
            "Tools": convert_tools(v.tools), "Response": "", **think,
        })
    out: list[str] = []
    turn = {"system": "", "prompt": "", "response": ""}

    def run() -> None:
        out.append(t.template.execute({"System": turn["system"], "Prompt": turn["prompt"],
                                       "Response": turn["response"], **think}))
        turn.update(system="", prompt="", response="")

    for m in messages:
        if m.Role == "system":
            if turn["prompt"] or turn["response"]:
                run()
            turn["system"] = m.Content
        elif m.Role == "user":
            if turn["response"]:
                run()
            turn["prompt"] = m.Content
        elif m.Role == "assistant":
            turn["response"] = m.Content
    root = t.template.root
    cut_root = _Cut().walk(root.copy()) if root is not None else None
    if not isinstance(cut_root, ListNode):
        raise TemplateError("interface conversion: parse.Node is nil, not *parse.ListNode")
    last = t.template.with_root(cut_root)  # Go runs the cut tree without funcs or missingkey=zero
    out.append(last.execute({"System": turn["system"], "Prompt": turn["prompt"],
                             "Response": turn["response"], **think}))
    return "".join(out)


def _think_values(think: bool | str | None, think_level: str | None,
                  is_think_set: bool | None) -> dict[str, Any]:
    if isinstance(think, str):
        on = think in ("high", "medium", "low", "max")
        level = think
    else:
        on = bool(think)
        level = "medium" if think else ""
    return {"think": on, "think_level": level if think_level is None else think_level,
            "is_think_set": (think is not None) if is_think_set is None else is_think_set}


@_guard
def render_messages(template: OllamaTemplate | str, messages: Iterable[Any], *,
                    system: str | None = None, tools: Iterable[Any] | None = None,
                    think: bool | str | None = None, think_level: str | None = None,
                    is_think_set: bool | None = None) -> str:
    """Render a chat prompt as Ollama's Template.Execute does.

    `messages` are Ollama JSON messages; `system`, if given, is prepended as a system message (as
    /api/generate does with its system prompt). `think` is the request's think value (bool, a
    level string, or None when unset): it sets .Think, .ThinkLevel ("medium" for true) and
    .IsThinkSet, unless `think_level` / `is_think_set` override them.
    """
    msgs = list(messages)
    if system is not None:
        msgs.insert(0, {"role": "system", "content": system})
    values = Values(messages=msgs, tools=list(tools) if tools is not None else None,
                    **_think_values(think, think_level, is_think_set))
    return _as_template(template).execute(values)


@_guard
def render_fim(template: OllamaTemplate | str, prompt: str, suffix: str, *,
               think: bool | str | None = None, think_level: str | None = None,
               is_think_set: bool | None = None) -> str:
    """Render a fill-in-the-middle prompt ({.Prompt, .Suffix, .Response: ""}); as in Ollama, an
    empty prompt or suffix falls back to the template's other modes with no messages."""
    values = Values(prompt=prompt, suffix=suffix, **_think_values(think, think_level, is_think_set))
    return _as_template(template).execute(values)
