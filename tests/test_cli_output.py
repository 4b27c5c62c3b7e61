"""What the CLI prints: plain lines straight to the stream, the same bytes rich would print, rich for the rest."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from geotarget.cli._app import Printer

LINES = ["audience: 141,593 customers (within 3,219 m of stores S0001)",
         "store [S1] :smile: :thumbs_up: 100% *bold* `code`",  # brackets and emoji codes are data, kept as written
         "x" * 300]  # never hard-wrapped


def _rich_bytes(text: str) -> str:
    out = io.StringIO()
    Console(file=out, highlight=False, markup=False, emoji=False, soft_wrap=True).print(text)
    return out.getvalue()


def test_plain_lines_are_written_as_rich_would_write_them(capsys):
    printer = Printer()
    for line in LINES:
        printer.print(line)
    out = capsys.readouterr().out
    assert out == "".join(_rich_bytes(line) for line in LINES) == "".join(line + "\n" for line in LINES)
    assert printer._rich is None  # rich was never needed


def test_the_error_printer_reads_markup_and_writes_to_stderr(capsys):
    err = Printer(stderr=True, markup=True)
    err.print("[bold red]error:[/] no such store S9; check --store")
    err.print("plain warning without markup")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: no such store S9; check --store\nplain warning without markup\n"


def test_tables_and_other_attributes_go_through_rich(capsys):
    printer = Printer()
    table = Table(title="privacy policy", show_header=False)
    table.add_row("k_min", "10")
    printer.print(table)
    out = capsys.readouterr().out
    assert "privacy policy" in out and "k_min" in out and "10" in out
    assert printer._rich is not None
    assert printer.is_terminal is False  # rich's own answer, through the printer
