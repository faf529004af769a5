"""What reaches the operator's terminal cannot steer it: control characters are shown, not obeyed."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from cdpoc.errors import CdpocError
from cdpoc.printable import printable
from cdpoc.ui import Ui

ATTACK = "name\x1b]0;retitled\x1b\\\x1b[2J\x08\x7f\x9b31m\u202etxt.exe\u2028"


def test_printable_escapes_what_steers_a_terminal_and_keeps_the_rest() -> None:
    assert printable(ATTACK) == "name\\x1b]0;retitled\\x1b\\\\x1b[2J\\x08\\x7f\\x9b31m\\u202etxt.exe\\u2028"
    assert printable("héllo\tworld\nnext ✓") == "héllo\tworld\nnext ✓"
    assert printable("a\nb\r", one_line=True) == "a\\nb\\r"


def ui_on_a_terminal() -> tuple[Ui, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    ui = Ui(Console(file=out, force_terminal=True, width=100), Console(file=err, force_terminal=True, width=100))
    return ui, out, err


def test_everything_the_ui_shows_has_aws_strings_escaped_while_its_own_styles_stay() -> None:
    ui, out, err = ui_on_a_terminal()
    ui.say(f"uploaded {ATTACK}", style="bold")
    table = Table("instance", "tag")
    table.add_row("i-0abc", ATTACK)
    ui.print(table)
    ui.error(CdpocError(f"bad tag {ATTACK}", f"hint {ATTACK}"))
    ui.warn(ATTACK)
    for written in (out.getvalue(), err.getvalue()):
        assert "\\x1b]0;retitled" in written and "\\u202e" in written
        assert "\x1b]" not in written and "\x1b[2J" not in written and "\u202e" not in written
        assert "\x1b[1m" in written or "\x1b[" in written.replace("\\x1b[", "")  # rich's own styling remains


def test_a_live_view_moves_the_cursor_but_its_content_cannot() -> None:
    ui, out, _ = ui_on_a_terminal()
    with ui.live(Table("tag")) as view:
        table = Table("tag")
        table.add_row(f"evil\x1b[1A{ATTACK}")
        view.update(table)
    written = out.getvalue()
    assert "evil\\x1b[1A" in written and "evil\x1b[1A" not in written
    assert "\x1b[2K" in written or "\x1b[1A" in written  # the live region's own cursor control
