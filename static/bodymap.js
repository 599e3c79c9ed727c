// The body map on the page that adds a lesion (templates/classifier/_bodymap.html with `placing`):
// a click on the figure places the new-lesion marker, fills the hidden view / x / y inputs and
// selects the clicked region's site and side in the form's lists; choosing a site or side from
// the lists (the keyboard's way in) moves the marker to that site's default point, which the
// server also uses when the form arrives without a position (no JavaScript, or no click).
// The site and side of a click are the clicked polygon's: classifier.lib.bodymap drew it.
(function () {
  "use strict";

  var map = document.querySelector("[data-bodymap][data-placing]");
  var defaultsNode = document.getElementById("bodymap-defaults");
  if (!map || !defaultsNode) { return; }
  var defaults = JSON.parse(defaultsNode.textContent);
  var width = Number(map.dataset.width), height = Number(map.dataset.height);
  var status = map.querySelector("[data-bodymap-status]");
  var hint = map.querySelector("[data-bodymap-hint]");
  if (hint) { hint.hidden = false; }

  function field(name) { return document.querySelector('[data-bodymap-field="' + name + '"]'); }
  var fields = { view: field("view"), x: field("x"), y: field("y"), site: field("site"), side: field("side") };

  function words(site, side) {
    var text = site.charAt(0).toUpperCase() + site.slice(1);
    return side ? text + ", " + side : text;
  }

  function announce(text) { if (status) { status.textContent = text; } }

  function setValue(input, value) { if (input) { input.value = value; } }

  function place(view, x, y) {
    map.querySelectorAll("svg[data-view]").forEach(function (svg) {
      var marker = svg.querySelector("[data-marker]");
      var here = svg.dataset.view === view;
      marker.classList.toggle("is-placed", here);
      if (here) { marker.setAttribute("transform", "translate(" + x * width + " " + y * height + ")"); }
    });
    setValue(fields.view, view);
    setValue(fields.x, x.toFixed(4));
    setValue(fields.y, y.toFixed(4));
  }

  function unplace() {
    map.querySelectorAll("[data-marker]").forEach(function (marker) { marker.classList.remove("is-placed"); });
    setValue(fields.view, "");
    setValue(fields.x, "");
    setValue(fields.y, "");
  }

  function clamp(value) { return Math.min(1, Math.max(0, value)); }

  map.querySelectorAll("svg[data-view]").forEach(function (svg) {
    svg.addEventListener("click", function (event) {
      var region = event.target.closest("[data-site]");
      if (!region) { return; }  // off the figure, or on a pin (a link)
      var point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      var inside = point.matrixTransform(svg.getScreenCTM().inverse());
      var x = clamp(inside.x / width), y = clamp(inside.y / height);
      setValue(fields.site, region.dataset.site);
      setValue(fields.side, region.dataset.side);
      place(svg.dataset.view, x, y);
      announce("New lesion marked on the " + svg.dataset.view + " view: " + words(region.dataset.site, region.dataset.side) + ".");
    });
  });

  function fromLists() {
    var site = fields.site ? fields.site.value : "";
    var side = fields.side ? fields.side.value : "";
    var point = site && defaults[site] ? defaults[site][side] : null;
    if (point) {
      place(point.view, point.x, point.y);
      announce("New lesion marked on the " + point.view + " view: " + words(site, side) + ".");
    } else {
      unplace();
      if (site) { announce(words(site, side) + " has no place on the map; the lesion is kept in the list."); }
    }
  }
  [fields.site, fields.side].forEach(function (select) {
    if (select) { select.addEventListener("change", fromLists); }
  });
})();
