"""Focused tests of the Go text/template interpreter (ollmlx.text.gotemplate).

GO_CASES were produced by running Go's own text/template (go1.19, with missingkey=zero unless
noted, and a `json` function doing json.Marshal) on the same templates and data; the engine must
reproduce the output or the error message exactly. Behaviour that changed in later Go releases
(range over integers, `else with`, JSON escaping of \\b and \\f, lexer errors for `)`) is tested
separately below against current Go semantics.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

import pytest

from ollmlx.text.gotemplate import (
    FieldNode,
    GoStruct,
    IfNode,
    Limits,
    NilPointer,
    NilSlice,
    RangeNode,
    Template,
    TemplateError,
    TextNode,
    iter_nodes,
    marshal,
    sprint,
    sprintf,
)
from ollmlx.text.gotemplate.values import NO_VALUE


def _json(v: Any) -> str:
    try:
        return marshal(v)
    except Exception:
        return ""


FUNCS = {"json": _json}


def render(text: str, data: Any = None, missing_key: str = "zero", **funcs: Any) -> str:
    return Template.parse(text, funcs={**FUNCS, **funcs}, missing_key=missing_key).execute(data)


def error_of(text: str, data: Any = None, missing_key: str = "zero") -> str:
    with pytest.raises(TemplateError) as e:
        render(text, data, missing_key)
    return str(e.value)


GO_CASES: list[tuple[str, Any, str, str | None, str | None]] = [
    ('{{ .A }} {{ print .B }} {{ .M.x }} {{1e6}} {{ printf "%v %q %5.2f" 1.5 "a\\n" 3.14159 }}', {'A': [1, 'x', None, {'b': 2}]}, 'zero', 'template: :1:29: executing "" at <.M.x>: nil pointer evaluating interface {}.x', None),
    ('{{ .M.x }}', {}, 'zero', 'template: :1:5: executing "" at <.M.x>: nil pointer evaluating interface {}.x', None),
    ('{{ .M.x }}', {}, 'default', None, '<no value>'),
    ('{{ .A }}', {}, 'zero', None, '<no value>'),
    ('{{ .A }} {{ print .B }} {{1e6}} {{ printf "%v %q %5.2f" 1.5 "a\\n" 3.14159 }}', {'A': [1, 'x', None, {'b': 2}]}, 'zero', None, '[1 x <nil> map[b:2]] <nil> 1e+06 1.5 "a\\n"  3.14'),
    ("{{ 1.5 }} {{ 100000.0 }} {{ 1234567.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1e21 }} {{ -0.0 }} {{ 3 }} {{ 0x1F }} {{ 'a' }} {{ 017 }} {{ 1_000 }}", None, 'zero', None, '1.5 100000 1.234567e+06 0.0001 1e-05 1e+21 -0 3 31 97 15 1000'),
    ('{{ if }}', None, 'zero', 'template: :1: missing value for if', None),
    ('{{ if .A }}', None, 'zero', 'template: :1: unexpected EOF', None),
    ('{{ end }}', None, 'zero', 'template: :1: unexpected {{end}}', None),
    ('{{ else }}', None, 'zero', 'template: :1: unexpected {{else}}', None),
    ('{{ foo }}', None, 'zero', 'template: :1: function "foo" not defined', None),
    ('{{ .A } }}', None, 'zero', 'template: :1: unexpected "}" in operand', None),
    ('{{ .A', None, 'zero', 'template: :1: unclosed action', None),
    ('{{ .A\n }}x{{ .B', None, 'zero', 'template: :2: unclosed action', None),
    ('{{/* unclosed', None, 'zero', 'template: :1: unclosed comment', None),
    ('{{/* c */ .A}}', None, 'zero', 'template: :1: comment ends before closing delimiter', None),
    ('a {{- /* c */ -}} b', None, 'zero', None, 'ab'),
    ('a  {{- 1 -}}  b {{- 2}} c {{3 -}} d', None, 'zero', None, 'a1b2 c 3d'),
    ('{{-3}}{{- -3 -}}x', None, 'zero', None, '-3-3x'),
    ('{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}{{ if true }}{{ $x = 3 }}{{ $y := 4 }}{{ end }}{{ $x }}', None, 'zero', None, '123'),
    ('{{ $y }}', None, 'zero', 'template: :1: undefined variable "$y"', None),
    ('{{ range $i, $e := .L }}{{ $i }}={{ $e }};{{ else }}empty{{ end }}', {'L': ['a', 'b']}, 'zero', None, '0=a;1=b;'),
    ('{{ range $i, $e := .L }}{{ $i }}={{ $e }};{{ else }}empty{{ end }}', {'L': []}, 'zero', None, 'empty'),
    ('{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}', {'M': {'b': 1, 'a': 2, 'c': {'x': [1, 2]}}}, 'zero', None, 'a=2;b=1;c=map[x:[1 2]];'),
    ('{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}', {'L': [1, 2, 3, 4, 5]}, 'zero', None, '13'),
    ('{{ define "x" }}X{{ . }}{{ end }}{{ template "x" 5 }}{{ block "y" . }}Y{{ end }}', None, 'zero', None, 'X5Y'),
    ('{{ template "nope" }}', None, 'zero', 'template: :1:12: executing "" at <{{template "nope"}}>: template "nope" not defined', None),
    ('{{ printf "%d %s %v %x %X %o %b %c %q %U %t %e %E %g %G %8.3f|%-8d|%08d|%+d|% d|%#x|%#o" 42 "s" 3.5 255 255 8 5 65 "q" 0x1F600 true 1234.5678 1234.5678 1234.5678 1e21 3.14159 42 42 42 42 255 8 }}', None, 'zero', None, '42 s 3.5 ff FF 10 101 A "q" U+1F600 true 1.234568e+03 1.234568E+03 1234.5678 1E+21    3.142|42      |00000042|+42| 42|0xff|010'),
    ('{{ printf "%d" "s" }}|{{ printf "%s" 5 }}|{{ printf "%d %d" 1 }}|{{ printf "%d" 1 2 }}|{{ printf "%!" }}|{{ printf "%" }}|{{ printf "%z" 3 }}|{{ printf "%v" nil }}|{{ printf "%d" nil }}|{{ printf "%s" .L }}|{{ printf "%x" "hi" }}|{{printf "%5s|%-5s|%.2s|%05d|%x" "ab" "ab" "abcdef" -42 -255}}', {'L': ['a', 'b']}, 'zero', None, '%!d(string=s)|%!s(int=5)|1 %!d(MISSING)|1%!(EXTRA int=2)|%!!(MISSING)|%!(NOVERB)|%!z(int=3)|<nil>|%!d(<nil>)|[a b]|6869|   ab|ab   |ab|-0042|-ff'),
    ('{{ eq 1 1 }} {{ eq 1 2 3 1 }} {{ eq "a" "a" }} {{ eq .X nil }} {{ eq .X "a" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }}', {}, 'zero', None, 'true true true true false true true true true false'),
    ('{{ eq 1 1.0 }}', None, 'zero', 'template: :1:3: executing "" at <eq 1 1.0>: error calling eq: incompatible types for comparison', None),
    ('{{ eq .L .L }}', {'L': [1]}, 'zero', 'template: :1:3: executing "" at <eq .L .L>: error calling eq: non-comparable type [%!s(int=1)]: []interface {}', None),
    ('{{ eq nil nil }}', None, 'zero', None, 'true'),
    ('{{ lt nil 1 }}', None, 'zero', 'template: :1:3: executing "" at <lt nil 1>: error calling lt: invalid type for comparison', None),
    ('{{ lt true false }}', None, 'zero', 'template: :1:3: executing "" at <lt true false>: error calling lt: invalid type for comparison', None),
    ('{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 "" }} {{ or 0 3 4 }} {{ and .X .Y.Z }} {{ or 1 .Y.Z }} {{ not 0 }} {{ not .L }}', {'L': []}, 'zero', None, '0 2  3 <no value> 1 true true'),
    ('{{ len "héllo" }} {{ len .L }} {{ len .M }} {{ index .L 1 }} {{ index .M "a" }} {{ index .M "zz" }} {{ index "abc" 1 }} {{ slice "hello" 1 3 }} {{ slice .L 1 }}', {'L': [1, 2, 3], 'M': {'a': 'A'}}, 'zero', None, '6 3 1 2 A <no value> 98 el [2 3]'),
    ('{{ len 3 }}', None, 'zero', 'template: :1:3: executing "" at <len 3>: error calling len: len of type int', None),
    ('{{ len .X }}', {}, 'zero', 'template: :1:3: executing "" at <len .X>: error calling len: len of nil pointer', None),
    ('{{ len nil }}', None, 'zero', 'template: :1:3: executing "" at <len nil>: error calling len: reflect: call of reflect.Value.Type on zero Value', None),
    ('{{ index .L 5 }}', {'L': [1, 2, 3]}, 'zero', 'template: :1:3: executing "" at <index .L 5>: error calling index: index out of range: 5', None),
    ('{{ index .L 3 }}', {'L': [1, 2, 3]}, 'zero', 'template: :1:3: executing "" at <index .L 3>: error calling index: reflect: slice index out of range', None),
    ('{{ index .M 1 }}', {'M': {'a': 1}}, 'zero', 'template: :1:3: executing "" at <index .M 1>: error calling index: value has type int; should be string', None),
    ('{{ index .X 1 }}', {}, 'zero', 'template: :1:3: executing "" at <index .X 1>: error calling index: index of untyped nil', None),
    ('{{ slice .L 2 1 }}', {'L': [1, 2, 3]}, 'zero', 'template: :1:3: executing "" at <slice .L 2 1>: error calling slice: invalid slice index: 2 > 1', None),
    ('{{ html "<a href=\'x\'>&\\"" }} {{ js "a\'b\\"c<d>e&f=g\\nh\\u2028é" }} {{ urlquery "a b&c=d/é" }} {{ print 1 2 "a" "b" 3 nil }} {{ println 1 "a" }}', None, 'zero', None, '&lt;a href=&#39;x&#39;&gt;&amp;&#34; a\\\'b\\"c\\u003Cd\\u003Ee\\u0026f\\u003Dg\\u000Ah\\u2028é a+b%26c%3Dd%2F%C3%A9 1 2ab3 <nil> 1 a\n'),
    ('{{ .A.B.C }}', {'A': {'B': {'C': 'deep'}}}, 'zero', None, 'deep'),
    ('{{ $.A }} {{ $ }}', {'A': 1}, 'zero', None, '1 map[A:1]'),
    ('{{ (.A).B }} {{ (index .L 0).x }}', {'A': {'B': 7}, 'L': [{'x': 'y'}]}, 'zero', None, '7 y'),
    ('{{ .A | printf "%s-%s" "x" }} {{ "a" | printf "%s" }} {{ 3 | len }}', None, 'zero', 'template: :1:61: executing "" at <len>: error calling len: len of type int', None),
    ('{{ 3 | 4 }}', None, 'zero', 'template: :1: non executable command in pipeline stage 2', None),
    ('{{ nil }}', None, 'zero', 'template: :1:3: executing "" at <nil>: nil is not a command', None),
    ('{{ .A 1 }}', {'A': 2}, 'zero', 'template: :1:3: executing "" at <.A>: A is not a method but has arguments', None),
    ('{{ "x" 1 }}', None, 'zero', 'template: :1:3: executing "" at <"x">: can\'t give argument to non-function "x"', None),
    ('{{ range .A }}{{ end }}', {'A': 1.5}, 'zero', 'template: :1:9: executing "" at <.A>: range can\'t iterate over 1.5', None),
    ('{{ if .A }}yes{{ else if .B }}b{{ else }}no{{ end }}', {'B': 0}, 'zero', None, 'no'),
    ('{{ $x := 1 }}{{ range .L }}{{ $x = . }}{{ end }}{{ $x }}', {'L': [5, 6]}, 'zero', None, '6'),
    ('{{ break }}', None, 'zero', 'template: :1: {{break}} outside {{range}}', None),
    ('{{ range .L }}{{ break 1 }}{{ end }}', None, 'zero', 'template: :1: unexpected "1" in {{break}}', None),
    ('{{ $x, $y := 1 }}', None, 'zero', 'template: :1: too many declarations in command', None),
    ('{{ range $x, $y, $z := .L }}{{ end }}', None, 'zero', 'template: :1: too many declarations in range', None),
    ('{{ range $x, 3 := .L }}{{ end }}', None, 'zero', 'template: :1: range can only initialize variables', None),
    ('{{ .A. }}', None, 'zero', 'template: :1: unexpected <.> in operand', None),
    ('{{ "a".B }}', None, 'zero', 'template: :1: unexpected . after term "\\"a\\""', None),
    ('{{ $x.A }}', None, 'zero', 'template: :1: undefined variable "$x"', None),
    ('{{ .A.b-c }}', None, 'zero', "template: :1: bad character U+002D '-'", None),
    ('{{ 3x }}', None, 'zero', 'template: :1: bad number syntax: "3x"', None),
    ('{{ 1+2 }}', None, 'zero', 'template: :1: bad number syntax: "1+2"', None),
    ('{{ ( }}', None, 'zero', 'template: :1: unclosed left paren', None),
    ('{{ (1 }}', None, 'zero', 'template: :1: unclosed left paren', None),
    ('{{ # }}', None, 'zero', 'template: :1: unexpected "#" in command', None),
    ('{{ é }}', None, 'zero', 'template: :1: function "é" not defined', None),
    ("{{ 'ab' }}", None, 'zero', "template: :1: malformed character constant: 'ab'", None),
    ("{{ '' }}", None, 'zero', 'template: :1: invalid syntax', None),
    ('{{ "\\q" }}', None, 'zero', 'template: :1: invalid syntax', None),
    ('{{ `raw\nstr` }}', None, 'zero', None, 'raw\nstr'),
    ('{{ 99999999999999999999 }}', None, 'zero', 'template: :1: integer overflow: "99999999999999999999"', None),
    ('{{ 08 }}', None, 'zero', 'template: :1: integer overflow: "08"', None),
    ('{{ 1e400 }}', None, 'zero', 'template: :1: illegal number syntax: "1e400"', None),
    ('{{ 0x }}', None, 'zero', 'template: :1: illegal number syntax: "0x"', None),
    ('{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}', None, 'zero', 'template: :1: template: multiple definition of template "a"', None),
    ('{{ define "a" }}{{ end }}{{ define "a" }}2{{ end }}{{ template "a" }}', None, 'zero', None, '2'),
    ('{{ .Missing.Foo }}', {'Missing': None}, 'zero', 'template: :1:11: executing "" at <.Missing.Foo>: nil pointer evaluating interface {}.Foo', None),
    ('{{ if .X.Y }}a{{ end }}', {}, 'default', None, ''),
    ('{{ .S.Foo }}', {'S': 'str'}, 'zero', 'template: :1:5: executing "" at <.S.Foo>: can\'t evaluate field Foo in type interface {}', None),
    ('{{ index . "A" }}', {'A': None}, 'zero', None, '<no value>'),
    ('{{ print .A }} {{ .A }} {{ printf "%v" .A }}', {'A': None}, 'zero', None, '<nil> <no value> <nil>'),
    ('{{ printf "%T %T %T %T %T %T" 1 1.5 "s" true .L .M }}', {'L': [1], 'M': {'a': 1}}, 'zero', None, 'int float64 string bool []interface {} map[string]interface {}'),
    ('{{ 1 }} {{ true }} {{ "s" }} {{ . }}', [1, 'a', {'k': [True, False]}, 2.5], 'zero', None, '1 true s [1 a map[k:[true false]] 2.5]'),
    ('x{{ with $x := .A }}{{ $x }}{{ end }}{{ $x }}', {'A': 1}, 'zero', 'template: :1: undefined variable "$x"', None),
    ('{{ if and .A (eq .A 1) }}y{{ end }}', {}, 'zero', None, ''),
    ('{{ printf "%6.2f|%-8.3e|%+.1f|%x|%10.4g|%v|%v|%v" 3.14159 1234.5 -2.0 3.5 0.000123456 1e-7 123456789.0 1e100 }}', None, 'zero', None, '  3.14|1.234e+03|-2.0|0x1.cp+01| 0.0001235|1e-07|1.23456789e+08|1e+100'),
    ('{{ printf "%v %v %v %.3v %5v" 1.0 -1.5 100000000.0 3.14159 2 }}', None, 'zero', None, '1 -1.5 1e+08 3.14     2'),
    ('{{ printf "%q %+q %#q %q" "héllo\\u0001" "héllo" "abc" 65 }}', None, 'zero', None, '"héllo\\x01" "h\\u00e9llo" `abc` \'A\''),
    ('{{ printf "%[2]d %[1]d %d" 1 2 }} {{ printf "%*d|%-*d|%.*f" 5 1 5 2 2 3.14159 }}', None, 'zero', None, '2 1 2     1|2    |3.14'),
    ('{{ printf "%3c|%-3c|%U|%#U" 65 66 9731 9731 }}', None, 'zero', None, "  A|B  |U+2603|U+2603 '☃'"),
    ('a\n{{- .A -}}\nb\n{{ .A -}}\n\n  c  {{- .A }}  d', {'A': 'x'}, 'zero', None, 'axb\nxcx  d'),
    ('{{ .A\n | printf "%s!"\n}}', {'A': 'x'}, 'zero', None, 'x!'),
    ('line1\nline2 {{ if .A }}\nx{{ .B }\n{{ end }}', None, 'zero', 'template: :3: unexpected "}" in operand', None),
    ('line1\n{{ if\n .A \n\n .B }}', None, 'zero', 'template: :5: unexpected EOF', None),
    ('line1\n{{ $x := \n .A }}{{ end }}', None, 'zero', 'template: :3: unexpected {{end}}', None),
    ('a\n\nb{{ "unterminated\n" }}', None, 'zero', 'template: :3: unterminated quoted string', None),
    ("{{ 'a }}", None, 'zero', 'template: :1: unterminated character constant', None),
    ('{{ `abc }}', None, 'zero', 'template: :1: unterminated raw quoted string', None),
    ('x\n{{ if .A }}\n{{ else }}\n{{ else }}\n{{ end }}', None, 'zero', 'template: :4: expected end; found {{else}}', None),
    ('{{ if .A }}{{ end }}{{ end }}', None, 'zero', 'template: :1: unexpected {{end}}', None),
    ('{{ range .A }}{{ else }}{{ break }}{{ end }}', None, 'zero', 'template: :1: {{break}} outside {{range}}', None),
    ('{{ define "x" }}{{ if . }}{{ end }}', None, 'zero', 'template: :1: unexpected EOF', None),
    ('{{ define x }}{{ end }}', None, 'zero', 'template: :1: unexpected "x" in define clause', None),
    ('{{ define "x" 1 }}{{ end }}', None, 'zero', 'template: :1: unexpected "1" in define clause', None),
    ('{{ template x }}', None, 'zero', 'template: :1: unexpected "x" in template clause', None),
    ('{{ block "b" }}{{ end }}', None, 'zero', 'template: :1: missing value for block clause', None),
    ('{{ block "b" . }}B{{ else }}{{ end }}', None, 'zero', 'template: :1: unexpected {{else}} in block clause', None),
    ('{{ define "t" }}[{{ . }}|{{ $ }}]{{ end }}{{ template "t" .A }}{{ $x := 1 }}{{ template "t" $x }}', {'A': 'a'}, 'zero', None, '[a|a][1|1]'),
    ('{{ define "t" }}{{ $x }}{{ end }}{{ $x := 1 }}{{ template "t" }}', None, 'zero', 'template: :1: undefined variable "$x"', None),
    ('{{ if .A }}a{{ else if .B }}b{{ else if .C }}c{{ else }}d{{ end }}', {'C': 1}, 'zero', None, 'c'),
    ('{{ with $v := .A }}{{ $v }}{{ . }}{{ end }}', {'A': [1, 2]}, 'zero', None, '[1 2][1 2]'),
    ('{{ range $i, $v := .A }}{{ $i }}{{ $v }}{{ $.B }}{{ end }}', {'A': {'x': 1, 'y': 2}, 'B': '!'}, 'zero', None, 'x1!y2!'),
    ('{{ range $v := .A }}{{ $v }}{{ end }}', {'A': [3, 4]}, 'zero', None, '34'),
    ('{{ $i := 0 }}{{ $e := 0 }}{{ range $i, $e = .A }}{{ end }}{{ $i }}{{ $e }}', {'A': [3, 4]}, 'zero', None, '14'),
    ('{{ .A }} {{ .B }} {{ .C }} {{ .D }} {{ .E }}', {'A': {'b': {'c': [1, {'d': None}]}}, 'B': [[1, 2], []], 'C': {}, 'D': 1e+100, 'E': -1.5e-07}, 'zero', None, 'map[b:map[c:[1 map[d:<nil>]]]] [[1 2] []] map[] 1e+100 -1.5e-07'),
    ('{{ printf "%v|%+v|%s|%d" .A .A .A .A }}', {'A': {'k': [1, 'two', 3.5, True, None]}}, 'zero', None, 'map[k:[1 two 3.5 true <nil>]]|map[k:[1 two 3.5 true <nil>]]|map[k:[%!s(int=1) two %!s(float64=3.5) %!s(bool=true) <nil>]]|map[%!d(string=k):[1 %!d(string=two) %!d(float64=3.5) %!d(bool=true) <nil>]]'),
    ('{{ printf "%5t|%-6v|%q" true false .A }}', {'A': ['x', 'y']}, 'zero', None, ' true|false |["x" "y"]'),
    ('{{ printf "%x|% x|%#x|% #x|%X" "hello" "hi" "hi" "hi" .A }}', {'A': [10, 255]}, 'zero', None, '68656c6c6f|68 69|0x6869|0x68 0x69|[A FF]'),
    ('{{ printf "%08.3f|%-8.3f|%+08d|%x|%o|%#b" -3.14159 2.5 42 -255 -8 5 }}', None, 'zero', None, '-003.142|2.500   |+0000042|-ff|-10|0b101'),
    ('{{ printf "%e|%.0e|%.0f|%.1f|%g|%.3g|%.10g" 0.0 5.5 2.5 0.05 100000.0 1000.0 0.1 }}', None, 'zero', None, '0.000000e+00|6e+00|2|0.1|100000|1e+03|0.1'),
    ('{{ printf "%6.2v|%v|%v|%v" 3.14159 0.000001 0.0000001 123456.0 }}', None, 'zero', None, '   3.1|1e-06|1e-07|123456'),
    ('{{ printf "%s %v" .NaN .Inf }}', {}, 'zero', None, '%!s(<nil>) <nil>'),
    ('{{ print "a" 1 2 "b" "c" 3.5 true nil }}|{{ print }}|{{ println }}|{{ print nil nil }}', None, 'zero', None, 'a1 2bc3.5 true <nil>||\n|<nil> <nil>'),
    ('{{ html .A }} {{ js .A }} {{ urlquery .A 1 }}', {'A': ['<x>', 1]}, 'zero', None, '[&lt;x&gt; 1] [\\u003Cx\\u003E 1] %5B%3Cx%3E+1%5D+1'),
    ('{{ index .A 0 1 }} {{ index .A 1 }} {{ index .M "a" "b" }}', {'A': [[1, 2], [3]], 'M': {'a': {'b': 'c'}}}, 'zero', None, '2 [3] c'),
    ('{{ slice .A }} {{ slice .A 1 2 }} {{ slice "abcdef" 2 }} {{ slice .A 0 3 3 }}', {'A': [1, 2, 3]}, 'zero', None, '[1 2 3] [2] cdef [1 2 3]'),
    ('{{ slice "abc" 1 2 3 }}', None, 'zero', 'template: :1:3: executing "" at <slice "abc" 1 2 3>: error calling slice: cannot 3-index slice a string', None),
    ('{{ slice .A 1 2 3 4 }}', {'A': [1, 2, 3]}, 'zero', 'template: :1:3: executing "" at <slice .A 1 2 3 4>: error calling slice: too many slice indexes: 4', None),
    ('{{ index .A -1 }}', {'A': [1]}, 'zero', 'template: :1:3: executing "" at <index .A -1>: error calling index: index out of range: -1', None),
    ('{{ index .A "x" }}', {'A': [1]}, 'zero', 'template: :1:3: executing "" at <index .A "x">: error calling index: cannot index slice/array with type string', None),
    ('{{ index .A nil }}', {'A': [1]}, 'zero', 'template: :1:3: executing "" at <index .A nil>: error calling index: cannot index slice/array with nil', None),
    ('{{ index 3 1 }}', None, 'zero', 'template: :1:3: executing "" at <index 3 1>: error calling index: can\'t index item of type int', None),
    ('{{ slice 3 1 }}', None, 'zero', 'template: :1:3: executing "" at <slice 3 1>: error calling slice: can\'t slice item of type int', None),
    ('{{ not }}', None, 'zero', 'template: :1:3: executing "" at <not>: wrong number of args for not: want 1 got 0', None),
    ('{{ not 1 2 }}', None, 'zero', 'template: :1:3: executing "" at <not>: wrong number of args for not: want 1 got 2', None),
    ('{{ and }}', None, 'zero', 'template: :1:3: executing "" at <and>: wrong number of args for and: want at least 1 got 0', None),
    ('{{ eq }}', None, 'zero', 'template: :1:3: executing "" at <eq>: wrong number of args for eq: want at least 1 got 0', None),
    ('{{ eq 1 }}', None, 'zero', 'template: :1:3: executing "" at <eq 1>: error calling eq: missing argument for comparison', None),
    ('{{ ne 1 }}', None, 'zero', 'template: :1:3: executing "" at <ne>: wrong number of args for ne: want 2 got 1', None),
    ('{{ printf }}', None, 'zero', 'template: :1:3: executing "" at <printf>: wrong number of args for printf: want at least 1 got 0', None),
    ('{{ printf 1 }}', None, 'zero', 'template: :1:10: executing "" at <1>: expected string; found 1', None),
    ('{{ printf .A }}', {'A': 1}, 'zero', 'template: :1:10: executing "" at <.A>: wrong type for value; expected string; got int', None),
    ('{{ printf .A }}', {}, 'zero', 'template: :1:10: executing "" at <.A>: wrong type for value; expected string; got interface {}', None),
    ('{{ printf nil }}', None, 'zero', 'template: :1:10: executing "" at <nil>: cannot assign nil to string', None),
    ('{{ json }}', None, 'zero', 'template: :1:3: executing "" at <json>: wrong number of args for json: want 1 got 0', None),
    ('{{ json 1 2 }}', None, 'zero', 'template: :1:3: executing "" at <json>: wrong number of args for json: want 1 got 2', None),
    ('{{ lt "a" 1 }}', None, 'zero', 'template: :1:3: executing "" at <lt "a" 1>: error calling lt: incompatible types for comparison', None),
    ('{{ lt .L .L }}', {'L': [1]}, 'zero', 'template: :1:3: executing "" at <lt .L .L>: error calling lt: invalid type for comparison', None),
    ('{{ eq .M .M }}', {'M': {'a': 1}}, 'zero', 'template: :1:3: executing "" at <eq .M .M>: error calling eq: non-comparable type map[a:%!s(int=1)]: map[string]interface {}', None),
    ('{{ eq .A nil }} {{ eq nil .A }} {{ ne .A nil }}', {'A': None}, 'zero', None, 'true true false'),
    ('{{ eq .L nil }}', {'L': [1]}, 'zero', None, 'false'),
    ('{{ eq "a" .B }}', {'B': None}, 'zero', None, 'false'),
    ('{{ eq 2 .B }}', {}, 'zero', None, 'false'),
    ('{{ or .A .B }}|{{ and .A .B }}|{{ or .A }}', {'A': None, 'B': 0}, 'zero', None, '0|<no value>|<no value>'),
    ('{{ .A | not }} {{ .A | len }}', {'A': [1]}, 'zero', None, 'false 1'),
    ('{{ .A | and 1 }} {{ 0 | or 0 }} {{ 0 | and 1 }}', {'A': 2}, 'zero', None, '2 0 0'),
    ('{{ call .F }}', {'F': 1}, 'zero', 'template: :1:3: executing "" at <call .F>: error calling call: non-function of type int', None),
    ('{{ call nil }}', None, 'zero', 'template: :1:3: executing "" at <call nil>: error calling call: call of nil', None),
    ('{{ $ := 1 }}', None, 'zero', None, ''),
    ('{{ $x := 1 }}{{ $x := 2 }}{{ $x }}', None, 'zero', None, '2'),
    ('{{ range .A }}{{ $x := . }}{{ end }}{{ $x }}', None, 'zero', 'template: :1: undefined variable "$x"', None),
    ('{{ if $x := 1 }}{{ $x }}{{ end }}{{ $x }}', None, 'zero', 'template: :1: undefined variable "$x"', None),
    ('{{ .A.B | printf "%v" }}', {'A': 1}, 'zero', 'template: :1:5: executing "" at <.A.B>: can\'t evaluate field B in type interface {}', None),
    ('{{ .A.B }}', {'A': [1]}, 'zero', 'template: :1:5: executing "" at <.A.B>: can\'t evaluate field B in type interface {}', None),
    ('{{ .A.B }}', {'A': True}, 'zero', 'template: :1:5: executing "" at <.A.B>: can\'t evaluate field B in type interface {}', None),
    ('{{ $x := .A }}{{ $x.B }}', {'A': 's'}, 'zero', 'template: :1:19: executing "" at <$x.B>: can\'t evaluate field B in type string', None),
    ('{{ (.A).B }}', {'A': 's'}, 'zero', 'template: :1:4: executing "" at <.A>: can\'t evaluate field B in type string', None),
    ('{{ (nil).B }}', None, 'zero', 'template: :1:4: executing "" at <nil>: nil is not a command', None),
    ('{{ .A.B 1 }}', {'A': {'B': 1}}, 'zero', 'template: :1:5: executing "" at <.A.B>: B is not a method but has arguments', None),
    ('{{ 1 | .A }}', {'A': 1}, 'zero', 'template: :1:7: executing "" at <.A>: A is not a method but has arguments', None),
    ('{{ 1 | $ }}', None, 'zero', 'template: :1:7: executing "" at <$>: can\'t give argument to non-function $', None),
    ('{{ 1 | (.A) }}', {'A': 1}, 'zero', 'template: :1:3: executing "" at <1>: can\'t give argument to non-function .A', None),
    ('{{ (1) 2 }}', None, 'zero', 'template: :1:3: executing "" at <(1) 2>: can\'t give argument to non-function 1', None),
    ('{{ .A | . }}', None, 'zero', 'template: :1: non executable command in pipeline stage 2', None),
    ('{{ "\\x41\\101\\u00e9\\U0001F600\\t" }}', None, 'zero', None, 'AAé😀\t'),
    ('{{ \'\\n\' }} {{ \'\\x41\' }} {{ \'é\' }} {{ printf "%c" \'x\' }}', None, 'zero', None, '10 65 233 x'),
    ('{{ 1.5e3 }} {{ 0x10 }} {{ 0o17 }} {{ 0b101 }} {{ 1e3 }} {{ .5 }} {{ -.5 }} {{ +3 }} {{ 0x1p4 }} {{ 2i }} {{ 1+2i }}', None, 'zero', None, '1500 16 15 5 1000 0.5 -0.5 3 16 (0+2i) (1+2i)'),
    ('{{ 1__0 }}', None, 'zero', 'template: :1: illegal number syntax: "1__0"', None),
    ('{{ 0x_1 }}', None, 'zero', None, '1'),
    ('{{ 1_ }}', None, 'zero', 'template: :1: illegal number syntax: "1_"', None),
    ('{{ 9223372036854775807 }} {{ -9223372036854775808 }}', None, 'zero', None, '9223372036854775807 -9223372036854775808'),
    ('{{ 9223372036854775808 }}', None, 'zero', 'template: :1:3: executing "" at <9223372036854775808>: 9223372036854775808 overflows int', None),
    ('{{ 18446744073709551616 }}', None, 'zero', 'template: :1: integer overflow: "18446744073709551616"', None),
    ('{{ . }}', 'plain', 'zero', None, 'plain'),
    ('{{ . }}', None, 'zero', None, '<no value>'),
    ('{{ .A }}', None, 'zero', None, '<no value>'),
    ('{{ $.A }}', None, 'zero', None, '<no value>'),
    ('{{- /* a comment */ -}}\n  x  {{- /* c2 */}}  y', None, 'zero', None, 'x  y'),
    ('{{/*\nmulti\nline*/}}z', None, 'zero', None, 'z'),
    ('{{ /* c */ }}', None, 'zero', 'template: :1: unexpected "/" in command', None),
    ('{{- .A}}{{.A -}}', {'A': 1}, 'zero', None, '11'),
    ('{{-.A}}', None, 'zero', 'template: :1: bad number syntax: "-.A"', None),
    ('{{ .A-}}', None, 'zero', "template: :1: bad character U+002D '-'", None),
    ('{{ .A -}}', {'A': 1}, 'zero', None, '1'),
    ('{{.A\t-}}\n x', {'A': 1}, 'zero', None, '1x'),
    ('{{ .A  -}}\n x', {'A': 1}, 'zero', None, '1x'),
    ('{{ $x := 1 -}} {{ $x }}', None, 'zero', None, '1'),
    ('{{ range $i, $e := . }}{{ $i }}{{ end }}', 's', 'zero', 'template: :1:19: executing "" at <.>: range can\'t iterate over s', None),
    ('{{ range . }}{{ . }}{{ end }}', True, 'zero', 'template: :1:9: executing "" at <.>: range can\'t iterate over true', None),
    ('{{ with 0 }}x{{ else }}{{ . }}{{ end }}', None, 'zero', None, '<no value>'),
    ('{{ template "a" . }}{{ define "a" }}{{ .X }}{{ end }}', {'X': 1}, 'zero', None, '1'),
    ('{{ define "a" }}A{{ end }}', None, 'zero', None, ''),
    ('x{{ define "a" }}A{{ end }}y{{ template "a" }}', None, 'zero', None, 'xyA'),
    ('{{ .A }}', {'A': {'1': 'x', '10': 'y', '2': 'z'}}, 'zero', None, 'map[1:x 10:y 2:z]'),
    ('{{ len "日本語" }} {{ index "日本語" 0 }} {{ printf "%q" (slice "日本語" 0 2) }} {{ slice "日本語" 0 3 }}', None, 'zero', None, '9 230 "\\xe6\\x97" 日'),
]


@pytest.mark.parametrize(("text", "data", "missing_key", "err", "out"), GO_CASES)
def test_matches_go(text: str, data: Any, missing_key: str, err: str | None, out: str | None) -> None:
    if err is not None:
        assert error_of(text, data, missing_key) == err
    else:
        assert render(text, data, missing_key) == out


# ---- lexing: trim markers and comments ---------------------------------------------------------


def test_trim_markers() -> None:
    assert render("a  {{- 1 -}}  b {{- 2}} c {{3 -}} d") == "a1b2 c 3d"
    assert render("a\n{{- .A -}}\nb\n{{ .A -}}\n\n  c  {{- .A }}  d", {"A": "x"}) == "axb\nxcx  d"
    assert render("{{-3}}{{- -3 -}}x") == "-3-3x"  # "{{-3" is a number, not a trim marker
    assert render("x {{- /* comment */ -}} y") == "xy"
    assert render("{{.A\t-}}\n x", {"A": 1}) == "1x"
    assert error_of("{{-.A}}") == 'template: :1: bad number syntax: "-.A"'


def test_comments() -> None:
    assert render("{{/*\nmulti\nline*/}}z") == "z"
    assert error_of("{{/* unclosed") == "template: :1: unclosed comment"
    assert error_of("{{/* c */ .A}}") == "template: :1: comment ends before closing delimiter"


# ---- control structures ------------------------------------------------------------------------


def test_range_else_break_continue() -> None:
    t = "{{ range $i, $e := .L }}{{ $i }}={{ $e }};{{ else }}empty{{ end }}"
    assert render(t, {"L": ["a", "b"]}) == "0=a;1=b;"
    assert render(t, {"L": []}) == "empty"
    assert render(t, {}) == "empty"
    t = "{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}"
    assert render(t, {"L": [1, 2, 3, 4, 5]}) == "13"
    assert render("{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}", {"M": {"b": 1, "a": 2}}) == "a=2;b=1;"
    assert error_of("{{ break }}") == "template: :1: {{break}} outside {{range}}"


def test_range_over_int() -> None:  # Go 1.22
    assert render("{{ range 3 }}{{ . }}{{ end }}") == "012"
    assert render("{{ range $i := 2 }}[{{ $i }}]{{ end }}") == "[0][1]"
    assert render("{{ range 0 }}x{{ else }}none{{ end }}") == "none"
    assert error_of("{{ range $i, $e := 3 }}{{ end }}").endswith(
        "can't use 3 to iterate over more than one variable")
    assert error_of("{{ range .A }}{{ end }}", {"A": 1.5}).endswith("range can't iterate over 1.5")


def test_if_else_chain_and_with() -> None:
    t = "{{ if .A }}a{{ else if .B }}b{{ else if .C }}c{{ else }}d{{ end }}"
    assert [render(t, d) for d in ({"A": 1}, {"B": 1}, {"C": 1}, {})] == ["a", "b", "c", "d"]
    t = "{{ with .A }}{{ . }}{{ else with .B }}b{{ . }}{{ else }}none{{ end }}"  # else with: Go 1.23
    assert [render(t, d) for d in ({"A": 1}, {"B": "x"}, {})] == ["1", "bx", "none"]
    assert render("{{ with $v := .A }}{{ $v }}{{ . }}{{ end }}", {"A": [1, 2]}) == "[1 2][1 2]"


def test_truthiness() -> None:
    t = "{{ if . }}T{{ else }}F{{ end }}"
    falsy: list[Any] = [False, 0, 0.0, "", [], {}, None, NilPointer()]
    truthy: list[Any] = [True, 1, -1.5, "x", [0], {"a": 0}, object()]
    assert [render(t, v) for v in falsy] == ["F"] * len(falsy)
    assert [render(t, v) for v in truthy] == ["T"] * len(truthy)


def test_variables_and_scoping() -> None:
    t = ("{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}{{ if true }}{{ $x = 3 }}{{ $y := 4 }}{{ end }}{{ $x }}")
    assert render(t) == "123"
    assert render("{{ $x := 1 }}{{ range .L }}{{ $x = . }}{{ end }}{{ $x }}", {"L": [5, 6]}) == "6"
    assert error_of("{{ if true }}{{ $y := 4 }}{{ end }}{{ $y }}") == 'template: :1: undefined variable "$y"'
    assert render("{{ $.A }} {{ $ }}", {"A": 1}) == "1 map[A:1]"
    t = '{{ define "t" }}[{{ . }}|{{ $ }}]{{ end }}{{ template "t" .A }}'
    assert render(t, {"A": "a"}) == "[a|a]"


def test_define_template_block() -> None:
    t = '{{ define "x" }}X{{ . }}{{ end }}{{ template "x" 5 }}{{ block "y" . }}Y{{ end }}'
    assert render(t) == "X5Y"
    tmpl = Template.parse(t)
    assert sorted(x.name for x in tmpl.templates()) == ["", "x", "y"]
    assert tmpl.execute_template("x", 7) == "X7"
    assert error_of('{{ template "nope" }}').endswith('template "nope" not defined')
    assert error_of('{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}') == \
        'template: :1: template: multiple definition of template "a"'
    # an empty redefinition does not replace a real one
    assert render('{{ define "a" }}A{{ end }}{{ define "a" }} {{ end }}{{ template "a" }}') == "A"


# ---- functions ---------------------------------------------------------------------------------


def test_printf_verbs() -> None:
    assert render('{{ printf "%d|%5.2f|%-4s|%04d|%x|%X|%q|%v|%t|%e|%g|%c|%U" 42 3.14159 "ab" 7 255 255 "q" 1.5 '
                  'true 1234.5678 0.000001 65 9731 }}') == \
        '42| 3.14|ab  |0007|ff|FF|"q"|1.5|true|1.234568e+03|1e-06|A|U+2603'
    assert render('{{ printf "%d %d" 1 }}|{{ printf "%d" 1 2 }}|{{ printf "%z" 3 }}|{{ printf "%s" 5 }}') == \
        "1 %!d(MISSING)|1%!(EXTRA int=1)|%!z(int=3)|%!s(int=5)".replace("EXTRA int=1", "EXTRA int=2")
    assert render('{{ printf "%[2]d %[1]d" 1 2 }} {{ printf "%*d|%.*f" 5 1 2 3.14159 }}') == "2 1     1|3.14"
    assert sprintf("%v %+v", {"a": [1, None]}, 2) == "map[a:[1 <nil>]] 2"


def test_print_and_println() -> None:
    assert render('{{ print 1 2 "a" "b" 3 nil }}') == "1 2ab3 <nil>"
    assert render('{{ println 1 "a" }}') == "1 a\n"
    assert sprint(1.0, 1e6, 1e21, 1234567.0, 0.0001, 0.00001, -0.0) == "1 1e+06 1e+21 1.234567e+06 0.0001 1e-05 -0"


def test_eq_multiple_args_and_comparisons() -> None:
    assert render("{{ eq 1 2 3 1 }} {{ eq 1 2 3 }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt 1.5 2.5 }}") == \
        "true false true true true false"
    assert render('{{ eq .Role "user" "system" }}', {"Role": "system"}) == "true"
    assert error_of("{{ eq 1 1.0 }}").endswith("error calling eq: incompatible types for comparison")
    assert render("{{ eq .Missing nil }} {{ eq .Missing 1 }}", {}) == "true false"


def test_and_or_short_circuit() -> None:
    assert render("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 3 4 }}") == '0 2  3'
    # the second operand would fail if it were evaluated
    assert render("{{ and 0 (index .L 9) }}|{{ or 1 (index .L 9) }}", {"L": []}) == "0|1"
    calls: list[int] = []

    def boom() -> int:
        calls.append(1)
        return 1

    assert render("{{ or 1 boom }}{{ and 0 boom }}", boom=boom) == "10"
    assert calls == []


def test_len_index_slice() -> None:
    d = {"L": [1, 2, 3], "M": {"a": "A"}}
    assert render('{{ len "héllo" }} {{ len .L }} {{ index .L 1 }} {{ index .M "a" }} {{ slice .L 1 }}', d) == \
        "6 3 2 A [2 3]"
    assert render('{{ index .M "zz" }}', d) == "<no value>"
    assert error_of("{{ index .L 5 }}", d).endswith("error calling index: index out of range: 5")
    assert error_of("{{ len 3 }}").endswith("error calling len: len of type int")


def test_json_func() -> None:
    assert render("{{ json . }}", {"z": 1, "a": [1.5, "x<y>&", None, True], "e": {}}) == \
        '{"a":[1.5,"x\\u003cy\\u003e\\u0026",null,true],"e":{},"z":1}'
    assert render('{{ json "\\b\\f\\t\\u0001\\u2028" }}') == '"\\b\\f\\t\\u0001\\u2028"'  # Go >= 1.22
    assert render("{{ json 1e21 }} {{ json 1e-7 }} {{ json 100.0 }} {{ json .M }}", {"M": None}) == \
        "1e+21 1e-7 100 null"


def test_html_js_urlquery() -> None:
    assert render("{{ html \"<a href='x'>&\" }}") == "&lt;a href=&#39;x&#39;&gt;&amp;"
    assert render('{{ js "a\'b<c>=" }}') == "a\\'b\\u003Cc\\u003E\\u003D"
    assert render('{{ urlquery "a b&c" }}') == "a+b%26c"


def test_function_errors() -> None:
    assert error_of("{{ foo }}") == 'template: :1: function "foo" not defined'
    assert error_of("{{ not }}").endswith("wrong number of args for not: want 1 got 0")
    assert error_of("{{ printf 1 }}").endswith("expected string; found 1")

    def fail(x: Any) -> str:
        raise ValueError("nope")

    with pytest.raises(TemplateError, match="error calling fail: nope"):
        render("{{ fail 1 }}", fail=fail)


# ---- missing keys, printing, data objects ------------------------------------------------------


def test_missingkey_zero() -> None:
    assert render("{{ .A }}", {}) == "<no value>"
    assert render("{{ print .A }}", {}) == "<nil>"
    assert render("{{ if .A }}x{{ else }}y{{ end }}", {}) == "y"
    assert error_of("{{ .A.B }}", {}).endswith("nil pointer evaluating interface {}.B")
    assert render("{{ .A.B }}", {}, missing_key="default") == "<no value>"
    with pytest.raises(TemplateError, match='map has no entry for key "A"'):
        render("{{ .A }}", {}, missing_key="error")


def test_printing_values() -> None:
    data = {"M": {"b": [1, "x", None], "a": {"n": 2.5}}, "L": [True, 1e6, "s"], "N": None, "B": b"hi"}
    assert render("{{ .M }}|{{ .L }}|{{ .N }}|{{ .B }}|{{ printf \"%s\" .B }}", data) == \
        "map[a:map[n:2.5] b:[1 x <nil>]]|[true 1e+06 s]|<no value>|[104 105]|hi"


@dataclasses.dataclass(eq=False)
class Msg(GoStruct):
    go_type: ClassVar[str] = "main.Msg"
    Role: str = ""
    Tags: list[str] = dataclasses.field(default_factory=NilSlice)
    Meta: Any = None

    def Upper(self, suffix: str) -> str:
        return self.Role.upper() + suffix


class Args(dict):
    def __go_str__(self) -> str:
        return marshal(dict(self))


def test_struct_like_objects() -> None:
    m = Msg(Role="user", Meta={"k": "v"})
    assert render("{{ .Role }}|{{ . }}|{{ printf \"%+v\" . }}|{{ .Upper \"!\" }}|{{ json . }}", m) == \
        'user|{user [] map[k:v]}|{Role:user Tags:[] Meta:map[k:v]}|USER!|{"Role":"user","Tags":null,"Meta":{"k":"v"}}'
    assert error_of("{{ .Nope }}", m).endswith("can't evaluate field Nope in type main.Msg")
    assert error_of("{{ .Role 1 }}", m).endswith("Role has arguments but cannot be invoked as function")

    class Plain:
        def __init__(self) -> None:
            self.Name = "p"

    assert render("{{ .Name }}", Plain()) == "p"
    a = Args(z=1, a="x")
    assert render("{{ . }}|{{ range $k, $v := . }}{{ $k }}{{ end }}|{{ .String }}", a) == \
        '{"a":"x","z":1}|az|{"a":"x","z":1}'


# ---- parse errors and hostile input ------------------------------------------------------------

PARSE_ERRORS = [
    ("{{ if }}", "template: :1: missing value for if"),
    ("{{ if .A }}", "template: :1: unexpected EOF"),
    ("{{ end }}", "template: :1: unexpected {{end}}"),
    ("{{ .A } }}", 'template: :1: unexpected "}" in operand'),
    ("{{ .A", "template: :1: unclosed action"),
    ("x\n{{ .A\n }}y{{ .B", "template: :3: unclosed action"),
    ("{{ .A\n\n", "template: :3: unclosed action started at :1"),
    ("{{ ) }}", "template: :1: unexpected right paren"),
    ("{{ (1 }}", "template: :1: unclosed left paren"),
    ("{{ 3x }}", 'template: :1: bad number syntax: "3x"'),
    ("{{ \"a }}", "template: :1: unterminated quoted string"),
    ("{{ $x }}", 'template: :1: undefined variable "$x"'),
]


@pytest.mark.parametrize(("text", "err"), PARSE_ERRORS)
def test_parse_error_messages(text: str, err: str) -> None:
    with pytest.raises(TemplateError) as e:
        Template.parse(text)
    assert str(e.value) == err


HOSTILE = [
    "{{" + "(" * 5000 + "1" + ")" * 5000 + "}}",
    "{{ if 1 }}" * 5000 + "x" + "{{ end }}" * 5000,
    "{{ if 0 }}" + "{{ else if 0 }}" * 5000 + "{{ end }}",
    "{{ range 1 }}" * 3000,
    "{{ .A " + "x" * 100_000,
    '{{ define "a" }}{{ template "a" . }}{{ end }}{{ template "a" . }}',
    '{{ define "a" }}{{ template "a" . }}{{ template "a" . }}{{ end }}{{ template "a" . }}',
    "{{ range 1000000000 }}x{{ end }}",
    '{{ $x := "ab" }}{{ range 40 }}{{ $x = printf "%s%s" $x $x }}{{ end }}{{ len $x }}',
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_fails_fast(text: str) -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError):
        Template.parse(text).execute({})
    assert time.monotonic() - start < 10


def test_limits_are_adjustable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Limits, "max_steps", 50)
    with pytest.raises(TemplateError, match="exceeded maximum execution steps"):
        render("{{ range 100 }}x{{ end }}")
    assert render('{{ printf "%999999999d" 1 }}') == "%!(NOVERB)%!(EXTRA int=1)"


def test_deeply_nested_but_legal() -> None:
    n = 90
    assert render("{{ if 1 }}" * n + "ok" + "{{ end }}" * n) == "ok"
    assert render("{{ " + "(" * n + "1" + ")" * n + " }}") == "1"


# ---- walking the tree --------------------------------------------------------------------------


def test_ast_walk() -> None:
    t = Template.parse("{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ end }}")
    nodes = list(t.walk())
    assert isinstance(nodes[1], RangeNode)
    assert [n.ident for n in nodes if isinstance(n, FieldNode)] == [["Messages"], ["Thinking"], ["Thinking"]]
    assert [n.text for n in nodes if isinstance(n, TextNode)] == ["<think>", "</think>"]
    ifs = [n for n in iter_nodes(t.root) if isinstance(n, IfNode)] if t.root else []
    assert str(ifs[0]) == "{{if .Thinking}}<think>{{.Thinking}}</think>{{end}}"
    copy = t.root.copy() if t.root else None
    assert copy is not t.root and str(copy) == str(t.root)
    assert NO_VALUE is not None
