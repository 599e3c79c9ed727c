// Side-by-side comparison of two pictures of a lesion (templates/classifier/_compare.html): each is
// a static/zoom.js viewer (buttons, wheel, drag, + / - / 0 and the arrow keys), and while "together"
// is ticked a zoom or a move in one is copied to the other through zoom.js's onChange / set, so the
// same part of the lesion stays in view in both. Each picture has its own heatmap overlay, drawn
// from its prediction's explanation grid on the part of the picture the model saw.
(function () {
  "use strict";

  function setUpHeatmap(figure, legend) {
    var data = figure.querySelector('script[type="application/json"]');
    var button = figure.querySelector("[data-heatmap-toggle]");
    var canvas = figure.querySelector("[data-heatmap]");
    if (!data || !button || !canvas) { return; }
    var explanation = JSON.parse(data.textContent);
    if (!explanation || !explanation.grid || !explanation.grid.length) { return; }
    window.lesionsiteDrawHeatmap(canvas, explanation);
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Heatmap of where the model found its evidence");
    button.hidden = false;
    button.addEventListener("click", function () {
      var shown = canvas.hidden;
      canvas.hidden = !shown;
      button.setAttribute("aria-pressed", String(shown));
      button.firstChild.textContent = shown ? "Hide heatmap" : "Show heatmap";
      if (legend) { legend.hidden = !document.querySelector("[data-compare] [data-heatmap]:not([hidden])"); }
    });
  }

  if (!window.lesionsiteZoom) { return; }
  document.querySelectorAll("[data-compare]").forEach(function (section) {
    var figures = Array.prototype.slice.call(section.querySelectorAll("[data-compare-picture]"));
    var together = section.querySelector("[data-compare-link]");
    var options = section.querySelector("[data-compare-options]");
    var legend = section.querySelector("[data-compare-legend]");
    if (options) { options.hidden = false; }
    var views = figures.map(function (figure) {
      setUpHeatmap(figure, legend);
      return window.lesionsiteZoom.attach(figure.querySelector(".viewer"), figure.querySelector("[data-viewer-controls]"));
    });
    views.forEach(function (view, index) {
      // set() is quiet (it calls no listener), so copying a change never echoes back.
      view.onChange(function (state) {
        if (together && !together.checked) { return; }
        views.forEach(function (other, otherIndex) { if (otherIndex !== index) { other.set(state); } });
      });
    });
    if (together) {
      together.addEventListener("change", function () {
        if (together.checked && views.length > 1) { views[1].set(views[0].get()); }
      });
    }
  });
})();
