"""WCAG 2 contrast of theme colours, resolved the way Textual paints them.

A style names colours as theme variables, sometimes translucent (``$ipi 35%``) or automatic
(``$text-muted`` is ``auto 60%``: white or black, whichever contrasts with what is beneath, at
60%). :func:`effective` stacks such layers with Textual's own ``Color`` arithmetic, so a
translucent row flash or a muted label gets the colour that reaches the screen, and
:func:`contrast_ratio` is the WCAG 2 ratio of two opaque colours.

A variable's own opacity counts here as it does in CSS rules. (Textual 8.2 drops it when the
variable is named in a Content style string, so ``"$text-muted"`` there paints at full strength;
measuring at 60% is the weaker case, so a pair that passes here passes either way.)

:func:`colour_difference` (CIEDE2000) says how far apart two colours look, for colours that must
be told apart at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from textual.color import Color
from textual.theme import Theme

TEXT = 4.5  # WCAG 2 AA, SC 1.4.3: normal-size text
GLYPH = 3.0  # WCAG 2 AA, SC 1.4.11: graphics that carry a state


def _linear(channel: int) -> float:
    """An sRGB channel (0…255) as linear light (0…1)."""
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: Color) -> float:
    """WCAG 2 relative luminance of an opaque sRGB colour (0 black … 1 white)."""
    r, g, b = (_linear(c) for c in colour.rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(one: Color, other: Color) -> float:
    """WCAG 2 contrast ratio of two opaque colours, 1.0 … 21.0."""
    a, b = sorted((relative_luminance(one), relative_luminance(other)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def css_variables(theme: Theme, defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CSS variables an app gets under ``theme``, merged as ``App.get_css_variables`` does:
    the app's defaults, overridden by Textual's colour system, overridden by the theme's own."""
    return {**(defaults or {}), **theme.to_color_system().generate(), **theme.variables}


def layer(expression: str, variables: Mapping[str, str]) -> Color:
    """One colour of a style: ``#hex``, a name, ``auto``, ``$variable``, each optionally
    followed by an opacity such as ``35%`` (variables may themselves carry one)."""
    words = expression.split()
    if not words or len(words) > 2:
        raise ValueError(f"not a colour expression: {expression!r}")
    alpha = 1.0
    if len(words) == 2:
        if not words[1].endswith("%"):
            raise ValueError(f"not an opacity: {words[1]!r} in {expression!r}")
        alpha = float(words[1][:-1]) / 100
    word = words[0]
    if word.startswith("$"):
        name = word[1:]
        if name not in variables:
            raise KeyError(f"no variable ${name}")
        base = layer(variables[name], variables)
    elif word == "auto":
        base = Color(0, 0, 0, 1.0, auto=True)
    else:
        base = Color.parse(word)
    return base.multiply_alpha(alpha)


def effective(layers: Sequence[str], variables: Mapping[str, str]) -> Color:
    """The opaque colour of ``layers`` painted bottom first (the first must be opaque)."""
    result = layer(layers[0], variables)
    if result.a < 1 or result.auto or result.ansi is not None:
        raise ValueError(f"the bottom layer {layers[0]!r} is not an opaque colour")
    for expression in layers[1:]:
        result = result + layer(expression, variables)
    return result


def pair_ratio(foreground: str, background: Sequence[str], variables: Mapping[str, str]) -> float:
    """Contrast of ``foreground`` drawn over the ``background`` layers."""
    under = effective(background, variables)
    return contrast_ratio(effective([*background, foreground], variables), under)


def _lab(colour: Color) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an opaque sRGB colour."""
    r, g, b = (_linear(c) for c in colour.rgb)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def colour_difference(one: Color, other: Color) -> float:
    """CIEDE2000 colour difference ΔE00 of two opaque colours (about 2.3: just noticeable;
    10 and more: clearly different colours at a glance)."""
    return delta_e00(_lab(one), _lab(other))


def delta_e00(one: tuple[float, float, float], other: tuple[float, float, float]) -> float:
    """CIEDE2000 difference of two CIE L*a*b* colours (Sharma, Wu & Dalal 2005)."""
    l1, a1, b1 = one
    l2, a2, b2 = other
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    if c1p * c2p == 0:
        dh = 0.0
    elif dh > 180:
        dh -= 360
    elif dh < -180:
        dh += 360
    dhh = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_mean = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_mean = (h1p + h2p) / 2
    else:
        h_mean = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_mean - 30)) + 0.24 * math.cos(math.radians(2 * h_mean))
         + 0.32 * math.cos(math.radians(3 * h_mean + 6))
         - 0.20 * math.cos(math.radians(4 * h_mean - 63)))
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    sc = 1 + 0.045 * cp_mean
    sh = 1 + 0.015 * cp_mean * t
    rt = (-2 * math.sqrt(cp_mean**7 / (cp_mean**7 + 25**7))
          * math.sin(math.radians(60 * math.exp(-(((h_mean - 275) / 25) ** 2)))))
    return math.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2
                     + rt * (dc / sc) * (dhh / sh))
