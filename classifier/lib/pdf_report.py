"""PDF reports of a patient (every lesion) or of one lesion, drawn with ReportLab from plain data.

Why ReportLab: it installs as pure-Python wheels with no system library, so the README's
one command works on a fresh machine; WeasyPrint needs Pango and its fonts from the
system. The page layout is Platypus (paragraphs and tables that flow onto new pages); the
header, the footer and "page X of Y" are drawn on each page's canvas once the number of
pages is known.

Everything here is plain data in, bytes out: the views gather the rows, check access and
write the audit entry; this module knows nothing of Django. Text from users (references,
labels, notes) is escaped before ReportLab's paragraph markup sees it, so "<b>" prints as
"<b>". Pictures are decoded with Pillow and re-encoded as PNG, so a WebP thumbnail works
and a broken one prints as "picture unavailable" instead of failing the report.

The text font is Bitstream Vera, which ships inside the reportlab wheel: embedded, so
every reader shows the same letters and the text can be searched and copied. It covers
Western European scripts; letters outside it (Greek, Cyrillic, CJK) print as boxes.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from reportlab.graphics.shapes import Circle, Drawing, Group, Polygon, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    Image,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from classifier.lib import bodymap
from classifier.lib.changes import Changes

# The wording of the README and of every page's notice (templates/base.html), so the report says what the site says.
DISCLAIMER = (
    "Research tool, not a diagnosis. lesionsite is not a medical device and has no regulatory clearance. "
    "Its predictions can be wrong, it has only seen dermatoscopic images from the HAM10000 collection, and it "
    "must never replace a clinician's examination or histopathology."
)
SHORT_DISCLAIMER = "Research tool, not a diagnosis."

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
HEADER_HEIGHT = 14 * mm  # the band above the frame that holds the header
FOOTER_HEIGHT = 12 * mm
THUMBNAIL_WIDTH, THUMBNAIL_HEIGHT = 26 * mm, 20 * mm
FIGURE_HEIGHT = 46 * mm  # the body map beside a lesion's details: both views side by side

FONT, BOLD, ITALIC = "Vera", "VeraBd", "VeraIt"
INK = colors.HexColor("#1b1f24")
MUTED = colors.HexColor("#4a5560")
WARN = colors.HexColor("#8a1c1c")
LINE = colors.HexColor("#d5dae0")
NOTICE_BG = colors.HexColor("#fff4d6")
SKIN = colors.HexColor("#f3ece6")


@dataclass(frozen=True)
class PatientDetails:
    """What the report says about the patient: the clinic's reference and the optional details."""

    reference: str
    year_of_birth: int | None = None
    sex: str = ""
    skin_type: str = ""  # Fitzpatrick I-VI
    note: str = ""


@dataclass(frozen=True)
class TimelineEntry:
    """One picture of a lesion: when, the picture, what the model read and whether it flagged it.

    ``reading`` is the sentence the pages show ("Melanocytic nevus, 82 %", "No reading:
    not like a dermatoscopic image"); ``thumbnail`` and ``heatmap`` are PNG, WebP or JPEG bytes.
    """

    taken_at: dt.date | dt.datetime
    reading: str
    malignancy_score: float | None = None
    flagged: bool = False
    thumbnail: bytes | None = None
    heatmap: bytes | None = None
    model_version: str = ""


@dataclass(frozen=True)
class LesionSection:
    label: str
    site: str
    side: str
    status: str
    position: bodymap.MapPoint | None = None
    diagnosis: str = ""  # the confirmed diagnosis, "" when there is none
    diagnosis_method: str = ""  # how it was confirmed (histopathology, ...)
    timeline: tuple[TimelineEntry, ...] = ()  # oldest first
    changes: Changes | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    clinic: str
    patient: PatientDetails
    generated_by: str
    generated_at: dt.datetime
    lesions: tuple[LesionSection, ...] = ()
    disclaimer: str = DISCLAIMER


def patient_report_pdf(report: Report) -> bytes:
    """Every lesion of the patient, after the patient's details."""
    return _build(report, report.lesions, "Patient report")


def lesion_report_pdf(report: Report, lesion: LesionSection) -> bytes:
    """One lesion, with the patient's details (``report.lesions`` is not used)."""
    return _build(report, (lesion,), f"Lesion report: {lesion.label}")


# --- Building ------------------------------------------------------------------------


def _register_fonts() -> None:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    for name, file in ((FONT, "Vera.ttf"), (BOLD, "VeraBd.ttf"), (ITALIC, "VeraIt.ttf")):
        pdfmetrics.registerFont(TTFont(name, file))  # found in reportlab's own fonts folder
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=ITALIC, boldItalic=BOLD)


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5, textColor=INK, alignment=TA_LEFT)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8.5, leading=11),
        "muted": ParagraphStyle("muted", parent=base, fontSize=8.5, leading=11, textColor=MUTED, fontName=ITALIC),
        "title": ParagraphStyle("title", parent=base, fontName=BOLD, fontSize=16, leading=20, spaceAfter=2 * mm),
        "h2": ParagraphStyle(
            "h2", parent=base, fontName=BOLD, fontSize=12.5, leading=16, spaceBefore=5 * mm, spaceAfter=2 * mm
        ),  # fmt: skip
        "h3": ParagraphStyle(
            "h3", parent=base, fontName=BOLD, fontSize=10, leading=13, spaceBefore=3 * mm, spaceAfter=1 * mm
        ),  # fmt: skip
        "flag": ParagraphStyle("flag", parent=base, textColor=WARN, fontName=BOLD),
        "notice": ParagraphStyle("notice", parent=base, fontSize=9, leading=12),
    }


def _build(report: Report, lesions: Sequence[LesionSection], title: str) -> bytes:
    _register_fonts()
    styles = _styles()
    buffer = io.BytesIO()
    document = BaseDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + HEADER_HEIGHT,
        bottomMargin=MARGIN + FOOTER_HEIGHT,
        title=f"lesionsite — {title} — patient {report.patient.reference}",
        author=report.generated_by,
        creator="lesionsite",
        invariant=True,  # the same data gives the same bytes (no creation time or random id inside)
    )
    frame = Frame(document.leftMargin, document.bottomMargin, document.width, document.height, id="body",
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)  # fmt: skip
    document.addPageTemplates([PageTemplate("page", frames=[frame], onPage=_header(report, title))])
    story: list[Flowable] = [
        Paragraph(_text(title), styles["title"]),
        _notice(report.disclaimer, styles, document.width),
        Spacer(1, 3 * mm),
        _patient_table(report, len(lesions), styles, document.width),
    ]
    for lesion in lesions:
        story += _lesion(lesion, styles, document.width)
    document.build(story, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()


def _header(report: Report, title: str):
    clinic_line = f"{report.clinic} · Patient {report.patient.reference}"
    generated = f"Generated by {report.generated_by} on {report.generated_at.strftime('%Y-%m-%d %H:%M')}"

    def draw(canvas: pdfcanvas.Canvas, document: BaseDocTemplate) -> None:
        canvas.saveState()
        top = PAGE_HEIGHT - MARGIN
        canvas.setFont(BOLD, 9.5)
        canvas.setFillColor(INK)
        canvas.drawString(MARGIN, top - 4 * mm, _fit(clinic_line, BOLD, 9.5, document.width * 0.68))
        canvas.setFont(FONT, 8.5)
        canvas.setFillColor(MUTED)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top - 4 * mm, _fit(f"lesionsite · {title}", FONT, 8.5,
                                                                        document.width * 0.3))  # fmt: skip
        canvas.setStrokeColor(LINE)
        canvas.line(MARGIN, top - 7 * mm, PAGE_WIDTH - MARGIN, top - 7 * mm)
        bottom = MARGIN
        canvas.line(MARGIN, bottom + 7 * mm, PAGE_WIDTH - MARGIN, bottom + 7 * mm)
        canvas.drawString(MARGIN, bottom + 3 * mm, _fit(f"{generated} · {SHORT_DISCLAIMER}", FONT, 8.5,
                                                        document.width * 0.75))  # fmt: skip
        canvas.restoreState()

    return draw


class _NumberedCanvas(pdfcanvas.Canvas):
    """Holds each page back until the last one is laid out, then writes "Page X of Y" on every page."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self):  # noqa: N802 - ReportLab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self.setFont(FONT, 8.5)
            self.setFillColor(MUTED)
            self.drawRightString(PAGE_WIDTH - MARGIN, MARGIN + 3 * mm, f"Page {number} of {total}")
            super().showPage()
        super().save()


def _notice(text: str, styles: dict[str, ParagraphStyle], width: float) -> Table:
    first, _, rest = text.partition(". ")
    words = f"<b>{_text(first)}.</b> {_text(rest)}" if rest else f"<b>{_text(text)}</b>"
    table = Table([[Paragraph(words, styles["notice"])]], colWidths=[width])
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), NOTICE_BG),
        ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#e6cf8a")),
        ("LEFTPADDING", (0, 0), (-1, -1), 6),
        ("RIGHTPADDING", (0, 0), (-1, -1), 6),
        ("TOPPADDING", (0, 0), (-1, -1), 4),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]))  # fmt: skip
    return table


def _facts(rows: list[tuple[str, str]], styles: dict[str, ParagraphStyle], widths: list[float]) -> Table:
    table = Table([[Paragraph(f"<b>{_text(name)}</b>", styles["small"]), Paragraph(_text(value), styles["small"])]
                   for name, value in rows], colWidths=widths)  # fmt: skip
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
    ]))  # fmt: skip
    return table


def _patient_table(report: Report, lesion_count: int, styles: dict[str, ParagraphStyle], width: float) -> Table:
    patient = report.patient
    rows = [
        ("Clinic", report.clinic),
        ("Patient reference", patient.reference),
        ("Year of birth", str(patient.year_of_birth) if patient.year_of_birth else "not entered"),
        ("Sex", patient.sex or "not entered"),
        ("Skin type (Fitzpatrick)", patient.skin_type or "not entered"),
        ("Lesions in this report", str(lesion_count)),
        ("Generated by", f"{report.generated_by}, {report.generated_at.strftime('%Y-%m-%d %H:%M')}"),
    ]
    if patient.note:
        rows.append(("Note", patient.note))
    return _facts(rows, styles, [42 * mm, width - 42 * mm])


def _lesion(lesion: LesionSection, styles: dict[str, ParagraphStyle], width: float) -> list[Flowable]:
    place = bodymap.place_label(lesion.site, lesion.side) if lesion.site else "not entered"
    latest = lesion.timeline[-1] if lesion.timeline else None
    diagnosis = lesion.diagnosis or "none recorded"
    if lesion.diagnosis and lesion.diagnosis_method:
        diagnosis += f" (by {lesion.diagnosis_method})"
    rows = [
        ("Body site", place),
        ("Status", lesion.status),
        ("Confirmed diagnosis", diagnosis),
        ("Pictures", str(len(lesion.timeline))),
        ("Latest reading", _reading_words(latest) if latest else "no picture yet"),
    ]
    figure_width = 2 * 0.5 * FIGURE_HEIGHT + 6 * mm
    details = _facts(rows, styles, [34 * mm, width - figure_width - 38 * mm])
    heading = Paragraph(_text(lesion.label), styles["h2"])
    top = Table([[details, _body_figure(lesion.position)]], colWidths=[width - figure_width, figure_width])
    top.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    flowables: list[Flowable] = [CondPageBreak(FIGURE_HEIGHT + 30 * mm), KeepTogether([heading, top])]
    if lesion.timeline:
        flowables.append(Paragraph("Timeline", styles["h3"]))
        flowables.append(_timeline(lesion.timeline, styles, width))
    flowables.append(Paragraph("Changes between visits", styles["h3"]))
    flowables += _changes(lesion.changes, styles)
    if lesion.notes:
        flowables.append(Paragraph("Notes", styles["h3"]))
        flowables += [Paragraph(_text(note), styles["body"]) for note in lesion.notes]
    return flowables


def _reading_words(entry: TimelineEntry) -> str:
    words = f"{entry.taken_at.strftime('%Y-%m-%d')}: {entry.reading}"
    if entry.malignancy_score is not None:
        words += f"; malignancy score {entry.malignancy_score:.2f}"
    if entry.flagged:
        words += "; flagged as suspicious for malignancy"
    return words


def _timeline(entries: Sequence[TimelineEntry], styles: dict[str, ParagraphStyle], width: float) -> Table:
    header = ["Date", "Picture", "Heatmap", "Reading", "Score", "Flag"]
    rows: list[list] = [[Paragraph(f"<b>{name}</b>", styles["small"]) for name in header]]
    for entry in entries:
        version = f"<br/><font color='#4a5560'>model {_text(entry.model_version)}</font>" if entry.model_version else ""
        rows.append([
            Paragraph(_text(entry.taken_at.strftime("%Y-%m-%d")), styles["small"]),
            _picture(entry.thumbnail, styles, "no picture"),
            _picture(entry.heatmap, styles, "—"),
            Paragraph(_text(entry.reading) + version, styles["small"]),
            Paragraph("—" if entry.malignancy_score is None else f"{entry.malignancy_score:.2f}", styles["small"]),
            Paragraph("Suspicious" if entry.flagged else "—", styles["flag"] if entry.flagged else styles["small"]),
        ])  # fmt: skip
    picture = THUMBNAIL_WIDTH + 4
    widths = [20 * mm, picture, picture, 0, 14 * mm, 22 * mm]
    widths[3] = width - sum(widths)
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, LINE),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2),
    ]))  # fmt: skip
    return table


def _changes(changes: Changes | None, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    if changes is None:
        return [Paragraph("Not worked out for this report.", styles["muted"])]
    out: list[Flowable] = []
    for flag in changes.flags:
        when = f"{flag.before.date_words} to {flag.after.date_words}"
        out.append(Paragraph(f"<b>Flag, {_text(when)}:</b> {_text(flag.sentence)}", styles["body"]))
    for note in changes.notes:
        out.append(Paragraph(_text(note.sentence), styles["muted"]))
    if not changes.flags:
        out.insert(0, Paragraph("No change flags between consecutive visits.", styles["body"]))
    return out


def _picture(data: bytes | None, styles: dict[str, ParagraphStyle], missing: str) -> Flowable:
    if not data:
        return Paragraph(missing, styles["small"])
    try:
        with PILImage.open(io.BytesIO(data)) as picture:
            picture.load()
            rgb = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    except (OSError, ValueError, PILImage.DecompressionBombError):
        return Paragraph("picture unavailable", styles["small"])
    scale = min(THUMBNAIL_WIDTH / rgb.width, THUMBNAIL_HEIGHT / rgb.height)
    png = io.BytesIO()
    rgb.save(png, "PNG")
    png.seek(0)
    return Image(png, width=rgb.width * scale, height=rgb.height * scale)


def _body_figure(position: bodymap.MapPoint | None) -> Drawing:
    """Both views of the body map, small, with a dot where the lesion is (nothing when it has no position)."""
    scale = FIGURE_HEIGHT / bodymap.HEIGHT
    view_width = bodymap.WIDTH * scale
    drawing = Drawing(2 * view_width + 6 * mm, FIGURE_HEIGHT + 4 * mm)
    for index, view in enumerate(bodymap.VIEWS):
        figure = bodymap.figure(view)
        group = Group()
        # The page's trick: every part stroked thickly first, then filled on top, so only the outer edge shows.
        for part in figure.parts:
            group.add(Polygon(_flip(part.points), fillColor=None, strokeColor=MUTED, strokeWidth=4))
        for part in figure.parts:
            group.add(Polygon(_flip(part.points), fillColor=SKIN, strokeColor=SKIN, strokeWidth=0.8))
        if position is not None and position.view == view:
            x, y = position.x * bodymap.WIDTH, bodymap.HEIGHT - position.y * bodymap.HEIGHT
            group.add(Circle(x, y, 9, fillColor=WARN, strokeColor=colors.white, strokeWidth=2))
        group.transform = (scale, 0, 0, scale, index * (view_width + 6 * mm), 4 * mm)
        drawing.add(group)
        label = (
            f"{figure.title} (patient's {figure.viewer_left_side[0].upper()} | {figure.viewer_right_side[0].upper()})"
        )
        drawing.add(String(index * (view_width + 6 * mm) + view_width / 2, 0, label, fontName=FONT, fontSize=7,
                           fillColor=MUTED, textAnchor="middle"))  # fmt: skip
    return drawing


def _flip(points: tuple[bodymap.Point, ...]) -> list[float]:
    """Polygon points in ReportLab's order (x, y, x, y ...), with y turned upwards."""
    return [value for x, y in points for value in (x, bodymap.HEIGHT - y)]


def _fit(text: str, font: str, size: float, width: float) -> str:
    """The text, cut with an ellipsis to fit a width (the header line has room for one line)."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _text(value: str) -> str:
    """User text for a Paragraph: its markup characters escaped, its line breaks kept."""
    return escape(value).replace("\n", "<br/>")
