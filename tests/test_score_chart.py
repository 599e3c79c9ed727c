"""The malignancy score over time as a server-drawn SVG (classifier.lib.score_chart), read back as XML."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from classifier.lib.score_chart import ScorePoint, score_chart_svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def chart(points, **kwargs) -> ET.Element:
    return ET.fromstring(score_chart_svg(points, **kwargs))


def reading(day, score, version="v3", top="nv", threshold=0.35, month=1, **fields):
    return ScorePoint(dt.date(2026, month, day), score, top, version, threshold, **fields)


def markers(svg):
    return [element for element in svg.iter() if "point" in (element.get("class") or "").split()]


def centre(element) -> tuple[float, float]:
    if element.tag.endswith("circle"):
        return float(element.get("cx")), float(element.get("cy"))
    if element.tag.endswith("rect"):
        return float(element.get("x")) + 4.5, float(element.get("y")) + 4.5
    xs, ys = zip(*(map(float, pair.split(",")) for pair in element.get("points").split()), strict=True)
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


def test_points_are_in_date_order_spaced_by_time_and_placed_by_score():
    svg = chart([reading(31, 0.6), reading(1, 0.2), reading(11, 0.4)])  # given out of order

    points = markers(svg)
    assert [p.get("data-date") for p in points] == ["2026-01-01", "2026-01-11", "2026-01-31"]
    (x0, y0), (x1, y1), (x2, y2) = (centre(p) for p in points)
    assert x0 < x1 < x2
    assert (x1 - x0) / (x2 - x0) == pytest.approx(10 / 30, abs=0.01)  # proportional to the days between
    assert y0 > y1 > y2  # a higher score is higher up
    # The y axis runs from 0 at the bottom line to 1 at the top line.
    zero, one = (float(svg.find(f".//svg:text[.='{tick}']", NS).get("y")) - 4 for tick in ("0", "1"))
    assert y0 == pytest.approx(zero + 0.2 * (one - zero), abs=0.1)


def test_each_point_has_a_title_with_its_date_score_class_and_version():
    svg = chart([reading(1, 0.2), reading(5, 0.52, top="mel")])
    titles = [p.find("svg:title", NS).text for p in markers(svg)]
    assert titles == [
        "2026-01-01: malignancy score 0.20, most likely Melanocytic nevus (nv) (model v3)",
        "2026-01-05: malignancy score 0.52, most likely Melanoma (mel), flagged as suspicious (model v3)",
    ]
    assert "flagged" in markers(svg)[1].get("class")


def test_the_chart_has_an_accessible_title_and_description():
    svg = chart([reading(1, 0.2), reading(5, 0.52, top="mel")], chart_id="lesion-7-chart")
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "lesion-7-chart-title lesion-7-chart-desc"
    assert svg.find("svg:title", NS).text == "Malignancy score over time"
    assert svg.find("svg:desc", NS).text == (
        "2 pictures from 2026-01-01 to 2026-01-05. Latest score 0.52 on 2026-01-05 (flagged as suspicious). "
        "Highest score 0.52 on 2026-01-05. All read by model v3."
    )


def test_the_threshold_is_a_dashed_line_at_its_score():
    svg = chart([reading(1, 0.2), reading(9, 0.3)])
    (line,) = svg.findall(".//svg:line[@class='threshold']", NS)
    assert line.get("stroke-dasharray")
    point_y = centre(markers(svg)[0])[1]
    zero_y = float(svg.find(".//svg:text[.='0']", NS).get("y")) - 4
    one_y = float(svg.find(".//svg:text[.='1']", NS).get("y")) - 4
    assert float(line.get("y1")) == pytest.approx(zero_y + 0.35 * (one_y - zero_y), abs=0.1)
    assert point_y > float(line.get("y1"))  # 0.2 is under the threshold
    assert "flag threshold 0.35" in score_chart_svg([reading(1, 0.2)])


def test_one_point_is_drawn_in_the_middle_with_its_date_and_the_threshold_across():
    svg = chart([reading(1, 0.5)])
    (point,) = markers(svg)
    width = float(svg.get("width"))
    x = centre(point)[0]
    assert 0.3 * width < x < 0.8 * width
    assert svg.find(".//svg:g[@class='dates']/svg:text", NS).text == "2026-01-01"
    (line,) = svg.findall(".//svg:line[@class='threshold']", NS)
    assert float(line.get("x1")) < x < float(line.get("x2"))
    assert not svg.findall(".//svg:polyline", NS)


def test_many_points_keep_their_order_and_date_labels_do_not_crowd():
    points = [ScorePoint(dt.date(2025, 1, 1) + dt.timedelta(days=7 * i), (i % 10) / 10, "nv", "v3", 0.35)
              for i in range(60)]  # fmt: skip
    svg = chart(points)

    xs = [centre(p)[0] for p in markers(svg)]
    assert len(xs) == 60 and xs == sorted(xs)
    labels = svg.findall(".//svg:g[@class='dates']/svg:text", NS)
    label_xs = [float(label.get("x")) for label in labels]
    assert 3 <= len(labels) <= 8
    assert all(b - a >= 84 for a, b in zip(label_xs, label_xs[1:], strict=False))
    assert labels[0].text == "2025-01-01" and labels[-1].text == points[-1].taken_at.isoformat()
    assert max(xs) <= float(svg.get("width"))


def test_a_model_change_is_marked_and_the_versions_are_not_joined():
    svg = chart([reading(1, 0.2, "v2"), reading(5, 0.25, "v2"), reading(9, 0.6, "v3", threshold=0.3),
                 reading(12, 0.62, "v3", threshold=0.3)])  # fmt: skip

    shapes = [p.get("class").split()[1] for p in markers(svg)]
    assert shapes == ["circle", "circle", "square", "square"]
    assert len(svg.findall(".//svg:polyline", NS)) == 2  # one line per version, none across the change
    (change,) = svg.findall(".//svg:line[@class='version-change']", NS)
    first_v3 = centre(markers(svg)[2])[0]
    assert centre(markers(svg)[1])[0] < float(change.get("x1")) < first_v3
    assert "model v3 from here" in score_chart_svg([reading(1, 0.2, "v2"), reading(9, 0.6, "v3")])
    v2_line, v3_line = svg.findall(".//svg:line[@class='threshold']", NS)  # each version's own threshold
    assert float(v3_line.get("y1")) > float(v2_line.get("y1"))  # 0.30 is drawn lower than 0.35
    assert float(v2_line.get("x2")) == float(v3_line.get("x1")) == float(change.get("x1"))
    legend = [text.text for text in svg.findall(".//svg:g[@class='legend']/svg:text", NS)]
    assert legend == ["model v2", "model v3", "flagged as suspicious"]
    assert "Read by 2 model versions: v2 (2), v3 (2); scores of different versions are not comparable." in (
        svg.find("svg:desc", NS).text
    )


def test_a_picture_without_a_reading_is_a_cross_under_the_axis():
    svg = chart([reading(1, 0.2), ScorePoint(dt.date(2026, 1, 5), None, no_reading="out of distribution")])
    assert len(markers(svg)) == 1
    (cross,) = svg.findall(".//svg:g[@class='no-reading']", NS)
    assert cross.find("svg:title", NS).text == "2026-01-05: no reading (out of distribution)"
    assert "1 picture without a reading." in svg.find("svg:desc", NS).text
    assert svg.findall(".//svg:g[@class='legend']/svg:text", NS)[-1].text == "no reading"


def test_no_pictures_gives_an_empty_chart_that_says_so():
    svg = chart([])
    assert svg.find("svg:desc", NS).text == "No pictures of this lesion yet."
    assert markers(svg) == []


def test_text_is_escaped():
    hostile = 'v<3 & "x"'
    text = score_chart_svg([reading(1, 0.2, version=hostile, top="<script>")], title="A & B <c>", chart_id='a"b')
    svg = ET.fromstring(text)  # still well-formed
    assert svg.find("svg:title", NS).text == "A & B <c>"
    assert markers(svg)[0].find("svg:title", NS).text.endswith('most likely <script> (model v<3 & "x")')
    assert "<script>" not in text
    assert svg.get("aria-labelledby").startswith('a"b-title')
