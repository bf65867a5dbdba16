"""What every migviz app does with themes: migviz's own registered, Textual's own completed with
migviz's colour variables, and only themes whose state colours stay legible offered."""

from __future__ import annotations

from textual.app import App
from textual.theme import Theme

from themes import DEFAULT_THEME, fallback_palette, load_builtin_themes, offered


class ThemedApp(App[int]):
    """An app in migviz's themes (the main app, the replay screen, the host screen)."""

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Textual's own themes (nord, solarized-light, …) lack migviz's variables: fill them in
        # from the palette made for the theme's kind of background (themes/fallback/). Textual
        # asks again on every theme change, so a switch from dark to light switches palettes.
        return fallback_palette(self.current_theme.dark)

    _offered: dict[str, Theme] | None = None  # available_themes, until a theme is (un)registered

    @property
    def available_themes(self) -> dict[str, Theme]:
        # The picker offers only themes whose state colours reach 3:1 against the grid, which
        # leaves out the ANSI ones: they paint on the terminal's background, of unknown colour.
        # Textual reads this on every look-up of the current theme (many per frame): keep it.
        if self._offered is None:
            self._offered = {name: theme for name, theme in super().available_themes.items()
                             if offered(theme)}
        return dict(self._offered)

    def register_theme(self, theme: Theme) -> None:
        self._offered = None
        super().register_theme(theme)

    def unregister_theme(self, theme_name: str) -> None:
        self._offered = None
        super().unregister_theme(theme_name)

    def use_theme(self, wanted: str | None, user_theme: Theme | None = None) -> bool:
        """Register migviz's themes (and the user's), then switch to ``wanted`` (the default if
        None). Returns False, on the default theme, if ``wanted`` is not offered."""
        for theme in load_builtin_themes():
            self.register_theme(theme)
        if user_theme is not None:
            self.register_theme(user_theme)
        name = wanted or DEFAULT_THEME
        known = name in self.available_themes
        self.theme = name if known else DEFAULT_THEME
        return known
