// Keeps a result page current without reloading: it polls (poll.js)
// the REST API with the session cookie until the prediction has finished (batch pages: batch.js).
(function () {
  "use strict";

  function percent(p) { return (p * 100).toFixed(1); }

  function renderPrediction(root, data) {
    root.dataset.status = data.status;
    var finished = data.status === "done" || data.status === "failed";
    root.querySelectorAll("[data-show-when]").forEach(function (el) {
      var when = el.dataset.showWhen;
      el.hidden = !((when === "pending" && !finished) || when === data.status);
    });
    var status = root.querySelector('[data-field="status"]');
    if (status) {
      status.textContent = data.status.charAt(0).toUpperCase() + data.status.slice(1);
      status.className = "status status-" + data.status;
    }
    function set(field, text) {
      var el = root.querySelector('[data-field="' + field + '"]');
      if (el) { el.textContent = text; }
    }
    set("error", data.error || "");
    if (data.status !== "done") { return finished; }
    set("top_class_name", data.top_class_name);
    set("top_probability", percent(data.top_probability));
    set("malignant_probability", data.malignant_probability.toFixed(3));
    set("malignant_threshold", data.malignant_threshold === null ? "—" : data.malignant_threshold.toFixed(3));
    set("model_version", data.model_version || "—");
    set("top_probability_again", percent(data.top_probability));
    set("ood_score", data.ood_score === null ? "—" : data.ood_score.toFixed(2));
    set("ood_threshold", data.ood_threshold === null ? "—" : data.ood_threshold.toFixed(2));
    var conditions = {
      out_of_distribution: data.is_out_of_distribution === true,
      in_distribution: data.is_out_of_distribution !== true,
      uncertain: data.is_uncertain === true,
    };
    root.querySelectorAll("[data-show-if]").forEach(function (el) {
      el.hidden = !conditions[el.dataset.showIf];
    });
    root.querySelectorAll("[data-open-unless]").forEach(function (el) {
      el.open = !conditions[el.dataset.openUnless];
    });
    if (window.lesionsiteHeatmap) { window.lesionsiteHeatmap.show(data.explanation, data.top_class_name); }
    var flag = root.querySelector('[data-field="malignancy_flag"]');
    if (flag) {
      flag.dataset.malignant = String(data.is_malignant);
      flag.textContent = data.is_malignant
        ? "⚠ Suspicious for malignancy: refer for specialist assessment."
        : "Below the malignancy threshold.";
    }
    Object.keys(data.probabilities || {}).forEach(function (code) {
      var row = root.querySelector('tr[data-class="' + code + '"]');
      if (!row) { return; }
      var p = data.probabilities[code];
      row.querySelector(".bar").style.setProperty("--p", p);
      row.querySelector(".pct").textContent = percent(p) + " %";
      row.classList.toggle("top", code === data.top_class);
    });
    return finished;
  }

  var result = document.getElementById("result");
  if (result) {
    window.lesionsitePoll(result.dataset.statusUrl, function (data) { return renderPrediction(result, data); });
  }
})();
