// Keeps a batch page current without reloading: polls the REST API with the
// session cookie, fills each row as its result arrives, moves the rows that need
// attention to the top (the same rule as Prediction.by_attention in classifier/models.py), and advances the
// progress bar until every image has finished.
(function () {
  "use strict";

  var table = document.getElementById("batch");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var progress = document.getElementById("batch-progress");
  var count = document.getElementById("batch-count");
  var total = tbody.rows.length;

  // Groups, most urgent first; Prediction.attention_group (classifier/models.py) has the same ones.
  var FLAGGED = 0, UNUSUAL = 1, FAILED = 2, UNREMARKABLE = 3, PENDING = 4;

  function attentionGroup(item) {
    if (item.status === "failed") { return FAILED; }
    if (item.status !== "done") { return PENDING; }
    if (item.is_malignant) { return FLAGGED; }
    if (item.is_out_of_distribution || item.is_uncertain) { return UNUSUAL; }
    return UNREMARKABLE;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function renderRow(row, item) {
    var status = row.querySelector('[data-field="status"]');
    status.textContent = item.status.charAt(0).toUpperCase() + item.status.slice(1);
    status.className = "status status-" + item.status;

    var result = row.querySelector('[data-field="result"]');
    var flag = row.querySelector('[data-field="flag"]');
    result.textContent = "";
    flag.textContent = "";
    if (item.status === "done" && !item.has_reading) {
      // Out of distribution: no lesion label and no flag, as on the result page (Prediction.has_reading).
      result.append(el("span", "not-assessed", "Not assessed:"), " ", el("span", "badge", "Not like a dermatoscopic image"));
      flag.append(el("span", "help", "—"));
    } else if (item.status === "done") {
      result.append(el("strong", "", item.top_class_name), " ",
        el("span", "pct", Math.round(item.top_probability * 100) + " %"));
      if (item.is_uncertain) { result.append(" ", el("span", "badge", "Uncertain")); }
      flag.append(item.is_malignant ? el("span", "flag-on", "⚠ Suspicious") : "Not flagged", " ",
        el("span", "score", "score " + Math.round(item.malignant_probability * 100) + " %"));
    } else if (item.status === "failed") {
      result.append(el("span", "error", item.error || "Could not be classified."));
    } else {
      result.append(el("span", "help", "Waiting for the model…"));
    }
    row.dataset.group = attentionGroup(item);
    row.dataset.score = item.malignant_probability === null ? -1 : item.malignant_probability;
  }

  function sortRows() {
    var rows = Array.prototype.slice.call(tbody.rows);
    var sorted = rows.slice().sort(function (a, b) {
      return (Number(a.dataset.group) - Number(b.dataset.group)) ||
        (Number(b.dataset.score) - Number(a.dataset.score)) ||
        (Number(a.dataset.prediction) - Number(b.dataset.prediction));
    });
    if (sorted.every(function (row, i) { return row === rows[i]; })) { return; }
    // Moving a row blurs whatever had focus inside it; put the focus back.
    var focused = document.activeElement;
    sorted.forEach(function (row) { tbody.appendChild(row); });
    if (focused && focused !== document.activeElement && tbody.contains(focused)) { focused.focus(); }
  }

  function report(finished, flagged, failed) {
    progress.value = finished;
    progress.textContent = finished + " of " + total;
    var text = finished + " of " + total + " classified.";
    if (finished === total) {
      text = "All " + total + " finished: " + flagged + " flagged as suspicious" +
        (failed ? ", " + failed + " could not be classified." : ".");
    }
    if (count.textContent !== text) { count.textContent = text; }
  }

  function update(data) {
    var finished = 0, flagged = 0, failed = 0;
    data.results.forEach(function (item) {
      var row = tbody.querySelector('tr[data-prediction="' + item.id + '"]');
      if (!row) { return; }  // a later re-run of one of these images: not part of this upload
      renderRow(row, item);
      if (item.status === "done" || item.status === "failed") { finished += 1; }
      if (item.status === "done" && item.is_malignant) { flagged += 1; }
      if (item.status === "failed") { failed += 1; }
    });
    sortRows();
    report(finished, flagged, failed);
    return finished >= total;
  }

  window.lesionsitePoll(table.dataset.statusUrl, update);
})();
