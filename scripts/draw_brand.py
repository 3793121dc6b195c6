"""Draw the brand images in custom_components/meter_hub/brand/ (a meter dial on a transparent ground).

Home Assistant 2026.3+ and HACS read them from that folder. Run it with any Python that has
Pillow, for example the test environment (Pillow is a Home Assistant dependency):

    ~/.cache/meter_hub/venv-current-*/bin/python scripts/draw_brand.py

Output: icon.png (256x256), icon@2x.png (512x512), logo.png (landscape, 128 px high),
logo@2x.png (256 px high) and dark_logo.png / dark_logo@2x.png (light lettering for dark themes).
The drawing uses only Pillow's built-in font, so every machine produces the same files.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

BRAND_DIR = Path(__file__).resolve().parent.parent / "custom_components" / "meter_hub" / "brand"
SUPERSAMPLE = 4  # draw large, then scale down: smooth edges without anti-aliasing support

RING = (3, 155, 229, 255)  # Home Assistant blue
FACE = (255, 255, 255, 255)
INK = (38, 50, 56, 255)
SCALE_COLOURS = ((67, 160, 71, 255), (253, 216, 53, 255), (251, 140, 0, 255), (229, 57, 53, 255))
NEEDLE = (38, 50, 56, 255)
TEXT_LIGHT_THEME = ((3, 155, 229, 255), (55, 71, 79, 255))  # "Meter", "Hub"
TEXT_DARK_THEME = ((41, 182, 246, 255), (236, 239, 241, 255))

START_DEG = 135.0  # the scale runs clockwise from bottom left (135 degrees) ...
SWEEP_DEG = 270.0  # ... over three quarters of a turn to bottom right
NEEDLE_AT = 0.62  # needle position on the scale, 0..1


def _point(cx: float, cy: float, radius: float, deg: float) -> tuple[float, float]:
    rad = math.radians(deg)
    return cx + radius * math.cos(rad), cy + radius * math.sin(rad)


def draw_dial(size: int) -> Image.Image:
    """A round meter dial: blue rim, white face, coloured scale, ticks, needle and hub."""
    big = size * SUPERSAMPLE
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    c = big / 2
    r = big / 2 * 0.97

    draw.ellipse((c - r, c - r, c + r, c + r), fill=RING)
    face = r * 0.86
    draw.ellipse((c - face, c - face, c + face, c + face), fill=FACE)

    # Coloured scale band in four segments.
    band_outer = face * 0.88
    band_width = int(face * 0.16)
    box = (c - band_outer, c - band_outer, c + band_outer, c + band_outer)
    segment = SWEEP_DEG / len(SCALE_COLOURS)
    for i, colour in enumerate(SCALE_COLOURS):
        start = START_DEG + i * segment
        draw.arc(box, start, start + segment + 0.5, fill=colour, width=band_width)

    # Ticks inside the band: 11 major, with minor ticks between them.
    tick_outer = band_outer - band_width - face * 0.04
    for i in range(41):
        deg = START_DEG + SWEEP_DEG * i / 40
        major = i % 4 == 0
        length = face * (0.13 if major else 0.06)
        width = int(face * (0.035 if major else 0.015))
        draw.line(
            (_point(c, c, tick_outer, deg), _point(c, c, tick_outer - length, deg)),
            fill=INK,
            width=width,
        )

    # Needle: a slim tapered triangle from the hub to the scale, plus a short tail.
    deg = START_DEG + SWEEP_DEG * NEEDLE_AT
    tip = _point(c, c, tick_outer - face * 0.02, deg)
    tail = _point(c, c, face * 0.18, deg + 180)
    half = face * 0.055
    left = _point(c, c, half, deg - 90)
    right = _point(c, c, half, deg + 90)
    draw.polygon((tip, left, tail, right), fill=NEEDLE)
    hub = face * 0.12
    draw.ellipse((c - hub, c - hub, c + hub, c + hub), fill=NEEDLE)
    dot = hub * 0.4
    draw.ellipse((c - dot, c - dot, c + dot, c + dot), fill=RING)

    return img.resize((size, size), Image.Resampling.LANCZOS)


def draw_logo(height: int, colours: tuple[tuple[int, ...], tuple[int, ...]]) -> Image.Image:
    """The dial followed by the name, "Meter" in blue and "Hub" in the theme's text colour."""
    big = height * SUPERSAMPLE
    font = ImageFont.load_default(size=int(big * 0.56))
    stroke = max(1, big // 70)  # a thin stroke in the text colour makes the built-in font bolder
    gap = int(big * 0.16)
    words = ("Meter", " Hub")
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    widths = [probe.textlength(word, font=font) + 2 * stroke for word in words]
    width = big + gap + int(sum(widths)) + gap
    img = Image.new("RGBA", (width, big), (0, 0, 0, 0))
    img.alpha_composite(draw_dial(big), (0, 0))
    draw = ImageDraw.Draw(img)
    x = float(big + gap)
    for word, colour, word_width in zip(words, colours, widths, strict=True):
        draw.text(
            (x, big / 2),
            word,
            font=font,
            fill=colour,
            anchor="lm",
            stroke_width=stroke,
            stroke_fill=colour,
        )
        x += word_width
    bbox = img.getbbox()  # trim the unused margin on the right, as the brand guidelines ask
    if bbox is not None:
        img = img.crop((0, 0, bbox[2], big))
    return img.resize((-(-img.width // SUPERSAMPLE), height), Image.Resampling.LANCZOS)


def main() -> None:
    BRAND_DIR.mkdir(parents=True, exist_ok=True)
    images = {
        "icon.png": draw_dial(256),
        "icon@2x.png": draw_dial(512),
        "logo.png": draw_logo(128, TEXT_LIGHT_THEME),
        "logo@2x.png": draw_logo(256, TEXT_LIGHT_THEME),
        "dark_logo.png": draw_logo(128, TEXT_DARK_THEME),
        "dark_logo@2x.png": draw_logo(256, TEXT_DARK_THEME),
    }
    for name, image in images.items():
        path = BRAND_DIR / name
        image.save(path, optimize=True)
        print(f"{path.relative_to(BRAND_DIR.parents[2])}: {image.width}x{image.height}")


if __name__ == "__main__":
    main()
