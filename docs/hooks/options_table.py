'''MkDocs hook: the options table of ``options.md``, generated from ``tracked.Settings``.

The table is never kept by hand. Each option is a field of the ``Settings``
NamedTuple, written in its source as an annotated assignment followed by a
string (the option's docstring)::

    project: str = "tracked"
    """ClearML project of a task that tracked creates."""

The hook replaces the marker ``<!-- options-table -->`` with one row per
field: the option, its type (the annotation as written), its default, its
environment variable (``TRACKED_<FIELD>``; none for the options only code sets,
``CODE_ONLY``) and its meaning (the docstring).
It finds ``Settings`` through the package (``tracked.Settings``), so it does
not depend on which module defines it.
'''

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

MARKER = "<!-- options-table -->"
PAGE = "options.md"
ENV_PREFIX = "TRACKED_"


def _settings(config: Any) -> type:
    # The source tree's package, even where another copy of tracked is installed.
    root = str(Path(config.config_file_path).resolve().parent)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    import tracked

    return tracked.Settings  # type: ignore[no-any-return]


def _docstrings(settings: type) -> dict[str, tuple[str, str]]:
    """field -> (annotation source, docstring), read from the class's source."""
    source = textwrap.dedent(inspect.getsource(settings))
    tree = ast.parse(source)
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    found: dict[str, tuple[str, str]] = {}
    body = cls.body
    for node, after in zip(body, [*body[1:], None], strict=True):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        annotation = ast.get_source_segment(source, node.annotation) or ast.unparse(node.annotation)
        doc = ""
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            doc = after.value.value
        found[node.target.id] = (annotation, doc)
    return found


def _cell(text: str) -> str:
    """Markdown for one table cell: one line, RST literals as code, pipes outside code escaped.

    (Python-Markdown's tables take a pipe inside a code span as text, and would show a backslash there.)
    """
    text = " ".join(inspect.cleandoc(text).split())
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def _default(value: Any) -> str:
    return _cell(f"`{value!r}`")


def options_table(settings: type) -> str:
    fields: tuple[str, ...] = settings._fields  # type: ignore[attr-defined]
    defaults: dict[str, Any] = settings._field_defaults  # type: ignore[attr-defined]
    docs = _docstrings(settings)
    missing = [name for name in fields if name not in docs or not docs[name][1].strip()]
    if missing:
        raise ValueError(f"Settings fields without a docstring in the source: {', '.join(missing)}")
    rows = [
        "| option | type | default | environment variable | meaning |",
        "|---|---|---|---|---|",
    ]
    # Options only the code sets (what a call returns depends on them): no variable.
    code_only = getattr(sys.modules[settings.__module__], "CODE_ONLY", ())
    for name in fields:
        annotation, doc = docs[name]
        default = _default(defaults[name]) if name in defaults else "required"
        variable = "none: set in the code" if name in code_only else f"`{ENV_PREFIX}{name.upper()}`"
        rows.append(f"| `{name}` | {_cell(f'`{annotation}`')} | {default} | {variable} | {_cell(doc)} |")
    # md_in_html: the table is wrapped so that the stylesheet can keep its code columns on one line.
    return '<div class="options-table" markdown>\n\n' + "\n".join(rows) + "\n\n</div>"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE}: the marker {MARKER} is missing; the options table has nowhere to go")
    return markdown.replace(MARKER, options_table(_settings(config)))
