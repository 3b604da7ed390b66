"""Tables as Ollama draws them with olekukonko/tablewriter v0.0.5 configured borderless, left
aligned, no white space, 4-space padding (`ollama list`, `ollama ps`, `ollama show`).

What that configuration prints, which the tests pin:
- header cells are upper-cased (tablewriter's Title), padded to the column width and joined by the
  padding; the last header cell is followed by one space;
- every row cell, the last one included, is padded to the column width and followed by the padding;
- a cell wider than the column limit (30, or 100 for some of `show`'s sections) is re-flowed into
  several lines at spaces with tablewriter's minimal-raggedness wrap (a single long word is kept).
"""

from __future__ import annotations

from ollmlx.cli.humanize import display_width

PADDING = "    "
MAX_COL_WIDTH = 30
_PENALTY = 100_000


def title(name: str) -> str:
    """tablewriter.Title: `_` → space, `.` → space unless between digits, trimmed, upper case."""
    chars = list(name)
    for i, ch in enumerate(chars):
        if ch == "_":
            chars[i] = " "
        elif ch == ".":
            prev_ok = i == 0 or chars[i - 1].isdigit() or chars[i - 1] == " "
            next_ok = i == len(chars) - 1 or name[i + 1].isdigit() or name[i + 1] == " "
            if not (prev_ok and next_ok):
                chars[i] = " "
    out = "".join(chars).strip()
    if not out and name:
        out = " "
    return out.upper()


def wrap_words(words: list[str], limit: int, space: int = 1, penalty: int = _PENALTY) -> list[list[str]]:
    """tablewriter.WrapWords: break words into lines minimising the squared slack."""
    n = len(words)
    if n == 0:
        return []
    length = [[0] * n for _ in range(n)]
    for i in range(n):
        length[i][i] = display_width(words[i])
        for j in range(i + 1, n):
            length[i][j] = length[i][j - 1] + space + display_width(words[j])
    nbrk = [0] * n
    cost = [2**31 - 1] * n
    for i in range(n - 1, -1, -1):
        if length[i][n - 1] <= limit:
            cost[i], nbrk[i] = 0, n
            continue
        for j in range(i + 1, n):
            d = limit - length[i][j - 1]
            c = d * d + cost[j]
            if length[i][j - 1] > limit:
                c += penalty
            if c < cost[i]:
                cost[i], nbrk[i] = c, j
    lines, i = [], 0
    while i < n:
        lines.append(words[i:nbrk[i]])
        i = nbrk[i]
    return lines


def wrap_string(s: str, limit: int) -> list[str]:
    """tablewriter.WrapString: newlines count as spaces; the limit grows to the longest word."""
    words = s.replace("\n", " ").split(" ")
    for w in words:
        limit = max(limit, display_width(w))
    return [" ".join(line) for line in wrap_words(words, limit)]


def _cell_lines(text: str, col_limit: int) -> list[str]:
    raw = text.split("\n")
    width = max(display_width(line) for line in raw)
    width = min(width, col_limit)
    # reflow: all lines become one paragraph, then wrap at the (capped) widest line
    return wrap_string(" ".join(raw), width)


def _pad(s: str, width: int) -> str:
    return s + " " * max(0, width - display_width(s))


def render(rows: list[list[str]], header: list[str] | None = None, col_limit: int = MAX_COL_WIDTH) -> str:
    if header is None and not rows:
        return ""
    ncol = max([len(header or [])] + [len(r) for r in rows])
    widths = [0] * ncol
    head_cells = [_cell_lines(title(h), col_limit) for h in header] if header else []
    for i, lines in enumerate(head_cells):
        widths[i] = max(widths[i], *(display_width(x) for x in lines))
    body = []
    for r in rows:
        cells = [_cell_lines(c, col_limit) for c in r]
        for i, lines in enumerate(cells):
            widths[i] = max(widths[i], *(display_width(x) for x in lines))
        body.append(cells)
    out = []
    if head_cells:
        height = max(len(c) for c in head_cells)
        for x in range(height):
            parts = []
            for y in range(ncol):
                h = head_cells[y][x] if y < len(head_cells) and x < len(head_cells[y]) else ""
                parts.append(_pad(h, widths[y]) + (" " if y == ncol - 1 else PADDING))
            out.append("".join(parts))
    for cells in body:
        height = max(len(c) for c in cells)
        for x in range(height):
            parts = []
            for y, lines in enumerate(cells):
                cell = lines[x] if x < len(lines) else "  "
                parts.append(_pad(cell, widths[y]) + PADDING)
            out.append("".join(parts))
    return "".join(line + "\n" for line in out)
