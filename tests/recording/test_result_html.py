"""In a notebook an EvalResult is a small HTML table: metrics with ± and interval, examples, status, where."""

from __future__ import annotations

import html
from collections.abc import Iterator
from html.parser import HTMLParser

from tracked import tracked_eval


class Cells(HTMLParser):
    """The text of each table row's cells, and the text after the table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        (self._cell if self._cell is not None else self.text).append(data)


def test_a_result_shows_as_an_html_table() -> None:
    """Each metric with its value, ± half-width, 95% interval and n; then examples, status and the session."""

    @tracked_eval(verbose=False, task_name="<b>notebook</b>")
    def evaluate() -> Iterator[dict[str, object]]:
        for i in range(10):
            yield {"acc": float(i % 2), "<script>": 1.0, "prediction": f"p{i}"}

    result = evaluate()
    page = result._repr_html_()
    assert "<script>" not in page  # names are escaped
    parsed = Cells()
    parsed.feed(page)
    header, *rows = parsed.rows
    assert header == ["metric", "value", "±", "95% interval", "n"]
    by_name = {row[0]: row for row in rows}
    low, high = result.stats.loc["acc", ["ci_low", "ci_high"]]
    assert by_name["acc"] == ["acc", "0.5", f"± {(high - low) / 2:.4g}", f"[{low:.4g}, {high:.4g}]", "10"]
    assert by_name["<script>"][1] == "1"
    assert by_name["num_examples"][1:] == ["10", "", "", ""]
    footer = "".join(parsed.text)
    assert "status: completed" in footer
    assert "10 examples" in footer
    assert html.unescape(str(result.session_dir)) in footer
