"""Screens pushed over the main view: help, folio inspection, the dialogs, the chart."""


def dialog_css(screen: str) -> str:
    """The frame of a small dialog (``screen`` its class name): an 80-column box, as tall as
    it needs, centred over the view."""
    return f"""
    {screen} {{ align: center middle; }}
    {screen} > Vertical {{
        width: 80; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }}
    """
