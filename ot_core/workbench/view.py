"""The common shape of every workbench view: controls, one output, CSV download, and one
readable line instead of a traceback when the warehouse cannot be read.

A view keeps what it last showed (``shown``, ``frames``, ``message``) besides drawing it into
its ``Output``, so "set a widget's value → the output changes" is testable in a plain Python
process, without a browser or a kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w
import pandas as pd
import sqlalchemy as sa
from IPython.display import display

from ot_core.errors import OTError, first_line, is_transient
from ot_core.secrets import redact
from ot_core.workbench import present
from ot_core.workbench.explore import FIX, Workbench
from ot_core.workbench.present import Html, Message


def read_problem(exc: BaseException) -> Message:
    """One line for a read that failed after the workbench opened (a job holds the file...)."""
    reason = redact(first_line(exc))
    if is_transient(exc):
        return Message(f"The warehouse is busy ({reason}): try again in a minute.", "warning")
    return Message(f"The warehouse cannot be read ({reason}): {FIX}.", "problem")


class View:
    """Base of the four views; subclasses fill ``controls`` and implement ``refresh``."""

    name = "view"

    def __init__(self, wb: Workbench):
        self.wb = wb
        self.out = w.Output(layout=w.Layout(width="100%"))
        self.info = w.Output()
        self.export_button = w.Button(description="Download CSV",
                                      tooltip="download what is shown as CSV files")
        self.export_button.on_click(lambda _b: self.export())
        self.frames: dict[str, pd.DataFrame] = {}
        self.shown: list = []
        self.message = ""
        self.said = ""
        self.said_item: Message | Html | None = None
        self.exported: dict[str, str] = {}  # file name -> CSV text offered for download
        self.controls: list[w.Widget] = []

    # -- drawing ------------------------------------------------------------------------------
    @property
    def widget(self) -> w.Widget:
        bar = w.HBox([*self.controls, self.export_button], layout=w.Layout(flex_flow="row wrap"))
        return w.VBox([bar, self.info, self.out], layout=w.Layout(width="100%"))

    def show(self, *items) -> None:
        """Replace the output with ``items`` (Messages, Html tables, figures, images)."""
        self.shown = [present.image(i) if hasattr(i, "savefig") else i for i in items]
        texts = [i.text for i in items if isinstance(i, Message)]
        self.message = texts[0] if texts else ""
        self.out.clear_output(wait=True)
        with self.out:
            for item in self.shown:
                display(item)

    def say(self, item: Message | Html | str) -> None:
        """A line above the output (what an action did); never a quoted Python string."""
        item = Message(item) if isinstance(item, str) else item
        self.said, self.said_item = item.text, item
        self.info.clear_output(wait=True)
        with self.info:
            display(item)

    def unsay(self) -> None:
        """Clear the line above the output (a warning about an earlier action)."""
        self.said = ""
        self.info.clear_output()

    def guarded(self, fn: Callable[[], None]) -> bool:
        """Run a refresh; a missing warehouse or a failed read shows one line instead."""
        if not self.wb.ok:
            self.frames = {}
            self.show(self.wb.message())
            for c in self.controls:
                if hasattr(c, "disabled"):
                    c.disabled = True
            self.export_button.disabled = True
            return False
        try:
            fn()
            return True
        except (sa.exc.SQLAlchemyError, OSError, OTError) as e:
            self.frames = {}
            self.show(read_problem(e))
            return False

    # -- export -----------------------------------------------------------------------------
    def export_prefix(self) -> str:
        return self.name

    def export(self) -> dict[str, str]:
        """Offer every table shown now as a CSV download link (``{file name: CSV text}``)."""
        self.exported = present.csv_files(self.frames, self.export_prefix())
        self.say(present.download_links(self.exported))
        return self.exported
