"""The Markdown token stream as headings, labelled fields and the blocks that hold their values.

Only markdown-it-py's block pass runs (inline parsing is switched off): headings, paragraphs,
lists, tables and fences are all the plan reader needs, and inline text is read from the
`inline` tokens' source content. Fenced code, indented code and HTML blocks never produce
headings, which is why this is not done with line regexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable("table")
    # Inline children are never read; link reference definitions are irrelevant to plans.
    md.core.ruler.disable(["inline", "text_join"])
    md.block.ruler.disable(["reference"])
    return md


def tokenize(text: str) -> list[Token]:
    return _markdown().parse(text)


@dataclass
class Heading:
    index: int
    """Index of the `heading_open` token."""
    level: int
    text: str
    line: int
    """1-based source line."""


def headings(tokens: list[Token]) -> list[Heading]:
    found = []
    for index, token in enumerate(tokens):
        # Only document-level headings: one inside a blockquote or list item is quoted text.
        if token.type == "heading_open" and token.level == 0:
            inline = tokens[index + 1]
            line = token.map[0] + 1 if token.map else 0
            found.append(Heading(index, int(token.tag[1:]), inline.content.strip(), line))
    return found


@dataclass
class Item:
    text: str
    line: int
    checked: bool | None = None


BlockKind = Literal["list", "code", "table", "paragraph", "other"]


@dataclass
class Block:
    kind: BlockKind
    line: int
    items: list[Item] = field(default_factory=list)
    """Top-level list items (nested items stay part of their parent's text only)."""
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Field:
    label: str
    """The label as written, without emphasis and colon."""
    key: str
    """The label lower-cased with spaces folded: the lookup key for synonyms."""
    value: str
    line: int
    block: Block | None = None
    source: str = "label"
    """`label` (a bold-label line), `table` (a property-table row) or `heading`."""


_LABEL = re.compile(r"^\s*(?:[-*+]\s+)?\*\*(?P<label>[^*]+?)(?::\*\*|\*\*\s*:)\s*(?P<value>.*)$")
_LABEL_START = re.compile(r"[ \t]*\*\*[^*|]+?(?::\*\*|\*\*[ \t]*:)")
_CHECKBOX = re.compile(r"^\[(?P<mark>[ xX])\]\s*")
_BOLD_CELL = re.compile(r"^\*\*(?P<label>[^*]+?)\*\*:?$")


def label_key(label: str) -> str:
    return " ".join(label.replace("`", "").strip().rstrip(":").lower().split())


def split_segments(line: str) -> list[str]:
    """Split a compact field line on ` | ` between `**Label:**` segments, never inside backticks."""
    segments: list[str] = []
    start = 0
    in_code = False
    index = 0
    while index < len(line):
        char = line[index]
        if char == "`":
            in_code = not in_code
        elif char == "|" and not in_code and _LABEL_START.match(line, index + 1):
            segments.append(line[start:index])
            start = index + 1
        index += 1
    segments.append(line[start:])
    return [segment.strip() for segment in segments]


def _line(token: Token) -> int:
    return token.map[0] + 1 if token.map else 0


def _close_index(tokens: list[Token], index: int) -> int:
    """Index of the token closing the block opened at `index` (itself for leaf blocks)."""
    token = tokens[index]
    if token.nesting != 1:
        return index
    depth = 0
    for position in range(index, len(tokens)):
        depth += tokens[position].nesting
        if depth == 0:
            return position
    return len(tokens) - 1


def _item_text(tokens: list[Token], start: int, end: int) -> str:
    """Text of a list item: the content of its first inline token."""
    for position in range(start, end):
        if tokens[position].type == "inline":
            return tokens[position].content.strip()
        if tokens[position].type in ("fence", "code_block"):
            return tokens[position].content.strip()
    return ""


def read_block(tokens: list[Token], index: int) -> tuple[Block, int]:
    """The block starting at `index` and the index just after it."""
    token = tokens[index]
    end = _close_index(tokens, index)
    line = _line(token)
    if token.type in ("bullet_list_open", "ordered_list_open"):
        items = []
        position = index + 1
        while position < end:
            item_token = tokens[position]
            if item_token.type == "list_item_open":
                item_end = _close_index(tokens, position)
                text = _item_text(tokens, position, item_end)
                checked: bool | None = None
                match = _CHECKBOX.match(text)
                if match:
                    checked = match.group("mark") != " "
                    text = text[match.end() :]
                items.append(Item(text=text, line=_line(item_token), checked=checked))
                position = item_end + 1
            else:
                position += 1
        return Block("list", line, items=items), end + 1
    if token.type in ("fence", "code_block"):
        return Block("code", line, text=token.content), end + 1
    if token.type == "table_open":
        return Block("table", line, rows=_table_rows(tokens, index, end)), end + 1
    if token.type == "paragraph_open":
        return Block("paragraph", line, text=tokens[index + 1].content), end + 1
    return Block("other", line), end + 1


def _table_rows(tokens: list[Token], start: int, end: int) -> list[list[str]]:
    rows: list[list[str]] = []
    for position in range(start, end):
        token = tokens[position]
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(token.content.strip())
    return rows


def _table_row_lines(tokens: list[Token], start: int, end: int) -> list[int]:
    return [_line(tokens[p]) for p in range(start, end) if tokens[p].type == "tr_open"]


def _is_property_table(rows: list[list[str]]) -> bool:
    if not rows or len(rows[0]) < 2:
        return False
    header = rows[0][0].strip("* ").lower()
    if header in ("property", "field", "attribute", "key", "setting"):
        return True
    body = rows[1:]
    return bool(body) and all(row and _BOLD_CELL.match(row[0]) for row in body)


def paragraph_fields(content: str, line: int) -> list[Field]:
    fields: list[Field] = []
    for offset, text_line in enumerate(content.split("\n")):
        segments = split_segments(text_line) if "|" in text_line else [text_line.strip()]
        matched_any = False
        for segment in segments:
            match = _LABEL.match(segment)
            if match is None:
                continue
            matched_any = True
            label = match.group("label").strip().rstrip(":").strip()
            fields.append(
                Field(label, label_key(label), match.group("value").strip(), line + offset)
            )
        if not matched_any and fields:
            # A continuation line belongs to the previous field's value.
            previous = fields[-1]
            previous.value = f"{previous.value}\n{text_line.strip()}".strip()
    return fields


def section_fields(tokens: list[Token], start: int, end: int, level: int) -> list[Field]:
    """Labelled fields in the tokens `[start, end)` of a phase section of heading `level`.

    Bold-label lines in top-level paragraphs (compact `A | B` lines included), property-table
    rows, and sub-headings named like a label; a label with no inline value takes the next block.
    """
    fields: list[Field] = []
    position = start
    while position < end:
        token = tokens[position]
        if token.level != 0:
            position += 1
            continue
        if token.type == "paragraph_open":
            found = paragraph_fields(tokens[position + 1].content, _line(token))
            after = _close_index(tokens, position) + 1
            following = tokens[after + 1] if after + 1 < end else None
            if found and after < end and _takes_next_block(found[-1], tokens[after], following):
                found[-1].block, after = read_block(tokens, after)
            fields.extend(found)
            position = after
            continue
        if token.type == "table_open":
            close = _close_index(tokens, position)
            rows = _table_rows(tokens, position, close)
            if _is_property_table(rows):
                lines = _table_row_lines(tokens, position, close)
                first = 0 if _BOLD_CELL.match(rows[0][0]) else 1
                for row, row_line in list(zip(rows, lines, strict=False))[first:]:
                    if len(row) < 2:
                        continue
                    label = row[0].strip().strip("*").strip().rstrip(":").strip()
                    fields.append(Field(label, label_key(label), row[1], row_line, source="table"))
            position = close + 1
            continue
        if token.type == "heading_open" and int(token.tag[1:]) > level:
            text = tokens[position + 1].content.strip().strip("*").strip().rstrip(":").strip()
            after = position + 3
            field_ = Field(text, label_key(text), "", _line(token), source="heading")
            if after < end and tokens[after].type != "heading_open":
                field_.block, after = read_block(tokens, after)
            fields.append(field_)
            position = after
            continue
        if token.type in ("bullet_list_open", "ordered_list_open"):
            close = _close_index(tokens, position)
            fields.extend(_list_item_fields(tokens, position, close))
            position = close + 1
            continue
        position = _close_index(tokens, position) + 1
    return fields


def _list_item_fields(tokens: list[Token], start: int, end: int) -> list[Field]:
    """`- **Label:** value` items of a top-level list (source `list`: a fallback for labels
    given nowhere else in the phase); an item without a value takes its nested list."""
    fields: list[Field] = []
    item_level = tokens[start].level + 1
    position = start + 1
    while position < end:
        token = tokens[position]
        if token.type != "list_item_open" or token.level != item_level:
            position += 1
            continue
        item_end = _close_index(tokens, position)
        inline = next(
            (tokens[p] for p in range(position, item_end) if tokens[p].type == "inline"), None
        )
        match = _LABEL.match(inline.content.split("\n", 1)[0]) if inline is not None else None
        if match is not None:
            label = match.group("label").strip().rstrip(":").strip()
            field_ = Field(
                label, label_key(label), match.group("value").strip(), _line(token), source="list"
            )
            nested = next(
                (
                    p
                    for p in range(position + 1, item_end)
                    if tokens[p].type in ("bullet_list_open", "ordered_list_open")
                ),
                None,
            )
            if nested is not None and not field_.value:
                field_.block, _ = read_block(tokens, nested)
            fields.append(field_)
        position = item_end + 1
    return fields


def _takes_next_block(field_: Field, next_token: Token, next_inline: Token | None) -> bool:
    if next_token.type in ("heading_open", "hr", "html_block"):
        return False
    value = field_.value.strip()
    if next_token.type == "paragraph_open":
        # `**Blast Radius:**` alone on its line, the value in the next paragraph; a paragraph
        # that starts with its own label is the next field, not this value.
        content = next_inline.content if next_inline is not None else ""
        return not value and not _LABEL.match(content.split("\n", 1)[0])
    return not value or value.endswith(":")
