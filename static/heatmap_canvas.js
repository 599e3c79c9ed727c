// Drawing a stored heatmap grid (Layer-CAM 10x10 or Grad-CAM 5x5 for MobileNetV2 at 150 px) on a
// canvas laid over a picture: one canvas pixel per cell, which the browser's smooth scaling spreads
// over the part of the picture the model saw (the explanation's box). Shared by the result page
// (static/heatmap.js) and the visit comparison (static/compare.js), so a map looks the same in both.
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

  window.lesionsiteDrawHeatmap = function (canvas, explanation) {
    var grid = explanation.grid, rows = grid.length, cols = grid[0].length;
    canvas.width = cols;
    canvas.height = rows;
    var context = canvas.getContext("2d");
    var image = context.createImageData(cols, rows);
    for (var y = 0; y < rows; y += 1) {
      for (var x = 0; x < cols; x += 1) {
        var rgba = colour(grid[y][x]), at = 4 * (y * cols + x);
        for (var c = 0; c < 4; c += 1) { image.data[at + c] = rgba[c]; }
      }
    }
    context.putImageData(image, 0, 0);
    var box = explanation.box || [0, 0, 1, 1];
    canvas.style.left = (100 * box[0]) + "%";
    canvas.style.top = (100 * box[1]) + "%";
    canvas.style.width = (100 * (box[2] - box[0])) + "%";
    canvas.style.height = (100 * (box[3] - box[1])) + "%";
  };
})();
