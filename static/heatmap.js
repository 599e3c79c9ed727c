// The heatmap overlay on a result page: the worker stores a small grid (Layer-CAM
// 10x10 or Grad-CAM 5x5 for MobileNetV2 at 150 px, as the version's card says) over
// the part of the picture the model saw; the canvas holds one pixel per cell and the
// browser's smooth scaling spreads it over that box. Off until the clinician turns it on.
(function () {
  "use strict";

  // A blue -> yellow -> red ramp; the weaker the evidence, the more transparent,
  // so weak evidence leaves the lesion visible.
  function colour(v) {
    var r = Math.round(255 * Math.min(1, Math.max(0, 1.5 * v - 0.2)));
    var g = Math.round(255 * Math.max(0, 1 - Math.abs(2 * v - 1.1)));
    var b = Math.round(255 * Math.max(0, 1 - 2 * v));
    return [r, g, b, Math.round(255 * 0.65 * v)];
  }

  var canvas = document.getElementById("heatmap");
  var button = document.getElementById("heatmap-toggle");
  if (!canvas || !button) { return; }
  var help = document.querySelector('[data-field="explanation_help"]');
  var legend = document.querySelector('[data-field="heatmap_legend"]');
  var figures = document.querySelector('[data-field="heatmap_figures"]');
  var METHOD_NAMES = { "layer-cam": "Layer-CAM", "grad-cam": "Grad-CAM" };
  var drawn = false;

  function setVisible(visible) {
    canvas.hidden = !visible;
    if (legend) { legend.hidden = !visible; }
    button.setAttribute("aria-pressed", String(visible));
    button.textContent = visible ? "Hide heatmap" : "Show heatmap";
  }

  button.addEventListener("click", function () {
    if (drawn) { setVisible(canvas.hidden); }
  });

  window.lesionsiteHeatmap = {
    show: function (explanation, topClassName, whyNone) {
      if (drawn) { return; }
      if (!explanation || !explanation.grid || !explanation.grid.length) {
        if (help) { help.textContent = whyNone || "No heatmap for this prediction: its model version does not compute one."; }
        button.hidden = true;
        return;
      }
      var grid = explanation.grid, rows = grid.length, cols = grid[0].length;
      canvas.width = cols;
      canvas.height = rows;
      var context = canvas.getContext("2d");
      var image = context.createImageData(cols, rows);
      for (var y = 0; y < rows; y += 1) {
        for (var x = 0; x < cols; x += 1) {
          var rgba = colour(grid[y][x]), at = 4 * (y * cols + x);
          image.data[at] = rgba[0]; image.data[at + 1] = rgba[1]; image.data[at + 2] = rgba[2]; image.data[at + 3] = rgba[3];
        }
      }
      context.putImageData(image, 0, 0);
      var box = explanation.box || [0, 0, 1, 1];
      canvas.style.left = (100 * box[0]) + "%";
      canvas.style.top = (100 * box[1]) + "%";
      canvas.style.width = (100 * (box[2] - box[0])) + "%";
      canvas.style.height = (100 * (box[3] - box[1])) + "%";
      canvas.setAttribute("role", "img");
      var method = explanation.method || "grad-cam";
      var name = METHOD_NAMES[method] || "Heatmap";
      canvas.setAttribute("aria-label", name + " heatmap of the evidence for " + topClassName);
      if (help) {
        help.textContent = name + ": where the model found the evidence for " + topClassName +
          " (red strongest). It shows what the model used, not where a lesion is malignant.";
      }
      // The card's validation figures describe one map: show them only beside that one.
      if (figures) {
        figures.hidden = figures.dataset.method !== method || (figures.dataset.layer || "") !== (explanation.layer || "");
      }
      button.disabled = false;
      drawn = true;
    },
  };
})();
