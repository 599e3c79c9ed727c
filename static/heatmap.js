// The heatmap overlay on a result page (drawn by static/heatmap_canvas.js), its name, its
// card's figures and its toggle. Off until the clinician turns it on.
(function () {
  "use strict";

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
      window.lesionsiteDrawHeatmap(canvas, explanation);
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
