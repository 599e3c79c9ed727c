// Keeps a result page current without reloading: it polls (poll.js)
// the REST API with the session cookie until the prediction has finished (batch pages: batch.js).
(function () {
  "use strict";

  function percent(p) { return (p * 100).toFixed(1); }
  function wholePercent(p) { return p === null || p === undefined ? "–" : String(Math.round(p * 100)); }

  // The same words as templates/classifier/prediction.html renders on the server.
  function flagMeaning(figures) {
    if (!figures) { return ""; }
    var where = figures.measured_on === "test" ? "held-out test images" : "validation images";
    return "At this threshold the model caught about " + wholePercent(figures.sensitivity) +
      " % of malignant lesions and also flagged about " + wholePercent(figures.false_alarm_rate) +
      " % of benign ones (" + where + " of HAM10000, not from your clinic).";
  }

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
    set("waiting_reason", finished ? "" : data.error || "");
    if (data.status !== "done") { return finished; }
    // Without a reading (out of distribution) the API gives no class, no top probability and no flag.
    set("top_class_name", data.top_class_name || "");
    set("top_probability", data.top_probability === null ? "–" : percent(data.top_probability));
    set("malignant_probability", data.malignant_probability == null ? "–" : percent(data.malignant_probability));
    set("malignant_threshold", data.malignant_threshold == null ? "–" : percent(data.malignant_threshold));
    set("flag_meaning", flagMeaning(data.flag_figures));
    set("model_version", data.model_version || "—");
    set("top_probability_again", data.top_probability === null ? "–" : percent(data.top_probability));
    set("ood_score", data.ood_score === null ? "—" : data.ood_score.toFixed(2));
    set("ood_threshold", data.ood_threshold === null ? "—" : data.ood_threshold.toFixed(2));
    var conditions = {
      out_of_distribution: data.is_out_of_distribution === true,
      in_distribution: data.is_out_of_distribution !== true,
      uncertain: data.is_uncertain === true,
      lesion_outlined: data.has_reading === true && !!data.lesion_outline,
    };
    set("lesion_area", data.lesion_outline ? String(Math.round(data.lesion_outline.area * 100)) : "–");
    root.querySelectorAll("[data-show-if]").forEach(function (el) {
      el.hidden = !conditions[el.dataset.showIf];
    });
    root.querySelectorAll("[data-open-unless]").forEach(function (el) {
      el.open = !conditions[el.dataset.openUnless];
    });
    if (window.lesionsiteHeatmap) { 
      window.lesionsiteHeatmap.show(data.has_reading ? data.explanation : null, data.top_class_name,
        data.has_reading ? "" : "No heatmap: a picture that got no reading has no evidence to show.");
    }
    var flag = root.querySelector('[data-field="malignancy_flag"]');
    if (flag) {
      flag.dataset.malignant = String(data.is_malignant);
      flag.textContent = data.is_malignant
        ? "⚠ Suspicious for malignancy: refer for specialist assessment."
        : "Not flagged as suspicious for malignancy.";
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
