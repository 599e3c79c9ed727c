"""The body map: a front and a back outline of a standing figure, divided into HAM10000's body sites.

One set of polygons is the single source of truth for three uses: the page's SVG
(templates/classifier/_bodymap.html draws them and static/bodymap.js reads the site
and side of the polygon that was clicked), the figure in the PDF report, and the two
functions the server needs: ``default_point`` (where a lesion entered from the site
list, without a click, is drawn) and ``suggest_site`` (which site and side a point on
the map is, for a client that sends a position without a site).

Coordinates. A point is (view, x, y) with x and y in [0, 1] over the view's box:
x = 0 is the box's left edge *as the viewer sees it*, y = 0 its top. The front view
shows the patient facing the viewer, so the patient's left is on the viewer's right;
the back view shows the patient from behind, so the patient's left is on the viewer's
left. The figure is symmetric, so the two views share one outline and differ only in
which site each part is and which way left and right run.

Sites are HAM10000's ``localization`` vocabulary (classifier.models.SITE_CHOICES).
"trunk" is HAM10000's word when the record does not say chest, abdomen or back; on the
map it is the band of the hips and buttocks, which has no word of its own there. "acral"
(palms and soles) overlaps hand and foot: a click on a hand says "hand"; an acral lesion
chosen from the list is drawn on the palm (the front view shows the palms, as in the
anatomical position). "unknown" has no place on the map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

WIDTH, HEIGHT = 200, 400  # the SVG viewBox of one view: a figure twice as tall as it is wide
CENTRE_X = WIDTH / 2
MIDLINE_HALF_WIDTH = 5  # viewBox units either side of the centre line that count as "midline" (5 % of the width)

VIEWS = ("front", "back")
SIDES = ("left", "right", "midline")
SITES = (
    "abdomen",
    "acral",
    "back",
    "chest",
    "ear",
    "face",
    "foot",
    "genital",
    "hand",
    "lower extremity",
    "neck",
    "scalp",
    "trunk",
    "upper extremity",
    "unknown",
)
# Sites on the body's centre line, which can be on either side or on the midline; the
# others come in pairs (an ear, a hand), which are left or right, never midline.
CENTRAL_SITES = frozenset({"scalp", "face", "neck", "chest", "abdomen", "back", "trunk", "genital"})
PAIRED_SITES = frozenset({"ear", "upper extremity", "hand", "lower extremity", "foot", "acral"})
# The view a site is drawn on when it is chosen from the list: the one that shows it.
BACK_VIEW_SITES = frozenset({"back"})

Point = tuple[float, float]


@dataclass(frozen=True)
class MapPoint:
    """A place on the body map: the view and x, y in [0, 1] (x as the viewer sees it, y from the top)."""

    view: str
    x: float
    y: float

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {self.view!r}")
        if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0):
            raise ValueError(f"x and y must be between 0 and 1, not ({self.x}, {self.y})")


@dataclass(frozen=True)
class Placement:
    """A body site and side, as the lesion form and the Lesion model hold them."""

    site: str
    side: str


@dataclass(frozen=True)
class Region:
    """One clickable piece of a view: a polygon in viewBox units that is one site on one side."""

    site: str
    side: str
    points: tuple[Point, ...]

    @property
    def svg_points(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)

    @property
    def label(self) -> str:
        return place_label(self.site, self.side)


@dataclass(frozen=True)
class Part:
    """A part of the figure (the chest, the left hand): its outline, and its regions, one per side it spans."""

    site: str
    points: tuple[Point, ...]
    regions: tuple[Region, ...]

    @property
    def svg_points(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass(frozen=True)
class Figure:
    """One view of the map: its parts in drawing order (a later part lies on top of an earlier one)."""

    view: str
    parts: tuple[Part, ...]

    @property
    def regions(self) -> tuple[Region, ...]:
        """Every region in drawing order: what a click hits is the last one that contains the point."""
        return tuple(region for part in self.parts for region in part.regions)

    @property
    def title(self) -> str:
        return "Front" if self.view == "front" else "Back"

    @property
    def orientation(self) -> str:
        """Which way round the figure is, in words a clinician reads at a glance."""
        return "the patient's left is on your " + ("right" if self.view == "front" else "left")

    @property
    def viewer_left_side(self) -> str:
        """The patient's side on the viewer's left ("right" on the front view)."""
        return "right" if self.view == "front" else "left"

    @property
    def viewer_right_side(self) -> str:
        return "left" if self.view == "front" else "right"


def place_label(site: str, side: str) -> str:
    """ "Chest, left", "Genital, midline", "Unknown"."""
    words = site.capitalize()
    return f"{words}, {side}" if side else words


def valid_sides(site: str) -> tuple[str, ...]:
    """The sides that make sense for a site: a hand is left or right; a chest may also be on the midline."""
    if site in CENTRAL_SITES:
        return SIDES
    if site in PAIRED_SITES:
        return ("left", "right")
    if site == "unknown":
        return SIDES
    raise ValueError(f"unknown body site {site!r}")


def default_point(site: str, side: str = "", view: str | None = None) -> MapPoint | None:
    """Where a lesion chosen from the site list (no click) is drawn, or None when the map has no place for it.

    The point is the centre of the site's part on that side (on the centre line for
    "midline" or no side), on the view that shows the site unless ``view`` says which.
    None for "unknown", for a paired site (a hand) on the midline or with no side, and
    for a site the asked view does not show (the face on the back view).
    """
    if site not in SITES:
        raise ValueError(f"unknown body site {site!r}")
    if side and side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    if view is not None and view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    if site == "unknown" or (site in PAIRED_SITES and side not in ("left", "right")):
        return None
    drawn_as = "hand" if site == "acral" else site
    if view is None:
        view = "back" if site in BACK_VIEW_SITES else "front"
    if site == "acral" and view == "back":
        return None  # the back view shows the backs of the hands and the heels, not palms or soles
    wanted = side or "midline"
    pieces = [region for region in FIGURES[view].regions if region.site == drawn_as and region.side == wanted]
    if not pieces:
        return None
    piece = max(pieces, key=lambda region: abs(_area(region.points)))
    x, y = _centroid(piece.points)
    if wanted == "midline":
        x = CENTRE_X
    y = _visible_y(view, piece, x, y)
    return MapPoint(view, round(x / WIDTH, 4), round(y / HEIGHT, 4))


def _visible_y(view: str, piece: Region, x: float, y: float) -> float:
    """y itself if a click at (x, y) would say this piece's site and side; else the middle of the longest
    stretch of the vertical line through x where it would (the trunk's midline lies partly under the
    genital region), so that suggest_site(default_point(...)) always gives the site back."""
    expected = Placement(piece.site, piece.side)
    if suggest_site(view, x / WIDTH, y / HEIGHT) == expected:
        return y
    ys = [py for _, py in piece.points]
    best: list[float] = []
    run: list[float] = []
    step = 0.5
    sample = min(ys)
    while sample <= max(ys):
        if suggest_site(view, x / WIDTH, sample / HEIGHT) == expected:
            run.append(sample)
            if len(run) > len(best):
                best = list(run)
        else:
            run = []
        sample += step
    return best[len(best) // 2] if best else y


def suggest_site(view: str, x: float, y: float) -> Placement | None:
    """The site and side at a point of the map (x, y in [0, 1]), or None off the figure.

    The same answer the page gives for a click: the topmost region under the point.
    """
    point = MapPoint(view, x, y)  # validates
    px, py = point.x * WIDTH, point.y * HEIGHT
    for region in reversed(FIGURES[view].regions):
        if _contains(region.points, px, py):
            return Placement(region.site, region.side)
    return None


def figure(view: str) -> Figure:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    return FIGURES[view]


# --- Pins: the lesions on the map ----------------------------------------------------

# A pin's look follows its lesion's latest reading; the words go into its accessible name,
# so the colour is never the only cue (the partial also draws each state in its own shape).
PIN_STATES: dict[str, str] = {
    "suspicious": "suspicious for malignancy",
    "not-suspicious": "not flagged as suspicious",
    "no-reading": "no reading",
    "pending": "reading pending",
}


def reading_state(status: str | None, has_reading: bool, is_malignant: bool | None) -> str:
    """The pin state for a lesion whose latest prediction has this status (None: no picture yet).

    "no-reading" covers no picture, a failed prediction and a picture unlike a
    dermatoscopic image (out of distribution): none of them says anything about the lesion.
    """
    if status in ("queued", "running"):
        return "pending"
    if status == "done" and has_reading:
        return "suspicious" if is_malignant else "not-suspicious"
    return "no-reading"


@dataclass(frozen=True)
class Pin:
    """A lesion to show on the map: its label, the link to its page, its state and where it is (None: not placed)."""

    label: str
    url: str
    state: str
    point: MapPoint | None

    def __post_init__(self) -> None:
        if self.state not in PIN_STATES:
            raise ValueError(f"state must be one of {', '.join(PIN_STATES)}, not {self.state!r}")

    @property
    def state_words(self) -> str:
        return PIN_STATES[self.state]

    @property
    def name(self) -> str:
        """The accessible name of the pin's link: "L3, left scapula: suspicious for malignancy"."""
        return f"{self.label}: {self.state_words}"


@dataclass(frozen=True)
class PlacedPin:
    pin: Pin
    cx: float  # in viewBox units
    cy: float


@dataclass(frozen=True)
class ViewMap:
    figure: Figure
    pins: tuple[PlacedPin, ...]


@dataclass(frozen=True)
class BodyMap:
    """What templates/classifier/_bodymap.html draws: both views with their pins, and the pins not on the map."""

    views: tuple[ViewMap, ...]
    unplaced: tuple[Pin, ...]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def defaults(self) -> dict[str, dict[str, dict[str, float | str] | None]]:
        """default_point for every site and side, for static/bodymap.js (a site chosen from the list)."""
        return DEFAULTS

    @property
    def states(self) -> tuple[tuple[str, str], ...]:
        return tuple(PIN_STATES.items())


def body_map(pins: Iterable[Pin]) -> BodyMap:
    """Sort the pins onto their views, in the order given (a later pin is drawn on top)."""
    pins = list(pins)
    views = tuple(
        ViewMap(
            FIGURES[view],
            tuple(
                PlacedPin(pin, round(pin.point.x * WIDTH, 1), round(pin.point.y * HEIGHT, 1))
                for pin in pins
                if pin.point is not None and pin.point.view == view
            ),
        )
        for view in VIEWS
    )
    return BodyMap(views, tuple(pin for pin in pins if pin.point is None))


# --- The outline -------------------------------------------------------------------
# Drawn by hand for this project on the 200 x 400 box: a standing figure, arms a little
# away from the body, legs apart. Parts on the viewer's left are listed; the right ones
# are their mirror images.


def _ellipse(cx: float, cy: float, rx: float, ry: float, steps: int = 32) -> tuple[Point, ...]:
    return tuple(
        (cx + rx * math.cos(2 * math.pi * i / steps), cy + ry * math.sin(2 * math.pi * i / steps)) for i in range(steps)
    )


def _mirror(points: tuple[Point, ...]) -> tuple[Point, ...]:
    return tuple((WIDTH - x, y) for x, y in reversed(points))


HEAD = _ellipse(100, 32, 19, 23)
HEAD_SCALP_LINE = 19  # y above which the front of the head is scalp (the hairline)
EAR = _ellipse(81, 34, 4.5, 8, steps=16)
NECK = ((91, 50), (109, 50), (111, 70), (89, 70))
TORSO = (
    (89, 66),
    (111, 66),
    (134, 74),
    (137, 100),
    (134, 132),
    (135, 165),
    (138, 190),
    (135, 209),
    (100, 213),
    (65, 209),
    (62, 190),
    (65, 165),
    (66, 132),
    (63, 100),
    (66, 74),
)
CHEST_LINE = 120  # y of the lowest ribs: chest above, abdomen below (front); the back is both
HIP_LINE = 170  # y of the iliac crests: below is the band of the hips and buttocks ("trunk")
ARM = ((66, 74), (57, 79), (50, 96), (45, 140), (38, 184), (50, 187), (56, 146), (62, 104))
HAND = ((38, 184), (50, 187), (52, 200), (47, 218), (39, 222), (32, 214), (33, 196))
LEG = ((65, 209), (100, 213), (98, 222), (95, 290), (93, 372), (79, 372), (76, 330), (72, 270), (65, 228))
FOOT = ((79, 372), (93, 372), (96, 386), (93, 394), (71, 394), (69, 387), (77, 380))
GENITAL = ((90, 188), (110, 188), (105, 211), (95, 211))


def _clip(points: tuple[Point, ...], axis: int, value: float, keep_below: bool) -> tuple[Point, ...]:
    """The part of a polygon on one side of a vertical (axis 0) or horizontal (axis 1) line (Sutherland-Hodgman)."""

    def inside(p: Point) -> bool:
        return p[axis] <= value if keep_below else p[axis] >= value

    def crossing(a: Point, b: Point) -> Point:
        t = (value - a[axis]) / (b[axis] - a[axis])
        return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))

    out: list[Point] = []
    for i, current in enumerate(points):
        previous = points[i - 1]
        if inside(current):
            if not inside(previous):
                out.append(crossing(previous, current))
            out.append(current)
        elif inside(previous):
            out.append(crossing(previous, current))
    return tuple(out)


def _band(points: tuple[Point, ...], top: float | None, bottom: float | None) -> tuple[Point, ...]:
    if top is not None:
        points = _clip(points, 1, top, keep_below=False)
    if bottom is not None:
        points = _clip(points, 1, bottom, keep_below=True)
    return points


def _central(site: str, points: tuple[Point, ...], view: str) -> Part:
    """A site on the centre line, cut into the viewer's-left part, the midline strip and the viewer's-right part."""
    left_edge, right_edge = CENTRE_X - MIDLINE_HALF_WIDTH, CENTRE_X + MIDLINE_HALF_WIDTH
    viewer_left = "right" if view == "front" else "left"
    viewer_right = "left" if view == "front" else "right"
    pieces = [
        (viewer_left, _clip(points, 0, left_edge, keep_below=True)),
        ("midline", _clip(_clip(points, 0, left_edge, keep_below=False), 0, right_edge, keep_below=True)),
        (viewer_right, _clip(points, 0, right_edge, keep_below=False)),
    ]
    return Part(site, points, tuple(Region(site, side, piece) for side, piece in pieces if len(piece) >= 3))


def _paired(site: str, points: tuple[Point, ...], view: str) -> list[Part]:
    """A part drawn on the viewer's left, and its mirror image on the right."""
    viewer_left = "right" if view == "front" else "left"
    viewer_right = "left" if view == "front" else "right"
    mirrored = _mirror(points)
    return [
        Part(site, points, (Region(site, viewer_left, points),)),
        Part(site, mirrored, (Region(site, viewer_right, mirrored),)),
    ]


def _build(view: str) -> Figure:
    if view == "front":
        head = [("scalp", _band(HEAD, None, HEAD_SCALP_LINE)), ("face", _band(HEAD, HEAD_SCALP_LINE, None))]
        body = [
            ("chest", _band(TORSO, None, CHEST_LINE)),
            ("abdomen", _band(TORSO, CHEST_LINE, HIP_LINE)),
            ("trunk", _band(TORSO, HIP_LINE, None)),
        ]
    else:
        head = [("scalp", HEAD)]
        body = [("back", _band(TORSO, None, HIP_LINE)), ("trunk", _band(TORSO, HIP_LINE, None))]
    # Drawing order: what lies on top comes later (the head over the ears, the torso over the tops of
    # the limbs, the genital region over the hips), and a click takes the topmost.
    parts: list[Part] = _paired("ear", EAR, view)
    parts += [_central(site, points, view) for site, points in head]
    parts.append(_central("neck", NECK, view))
    for site, points in (("upper extremity", ARM), ("hand", HAND), ("lower extremity", LEG), ("foot", FOOT)):
        parts += _paired(site, points, view)
    parts += [_central(site, points, view) for site, points in body]
    if view == "front":
        parts.append(_central("genital", GENITAL, view))
    return Figure(view, tuple(parts))


def _area(points: tuple[Point, ...]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True)) / 2


def _centroid(points: tuple[Point, ...]) -> Point:
    area = _area(points)
    cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    return cx / (6 * area), cy / (6 * area)


def _contains(points: tuple[Point, ...], px: float, py: float) -> bool:
    """Ray casting; the polygons never cross themselves, so this agrees with the browser's hit-testing."""
    inside = False
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


FIGURES: dict[str, Figure] = {view: _build(view) for view in VIEWS}


def _defaults() -> dict[str, dict[str, dict[str, float | str] | None]]:
    table: dict[str, dict[str, dict[str, float | str] | None]] = {}
    for site in SITES:
        table[site] = {}
        for side in ("", *valid_sides(site)):
            point = default_point(site, side)
            table[site][side] = None if point is None else {"view": point.view, "x": point.x, "y": point.y}
    return table


DEFAULTS = _defaults()
