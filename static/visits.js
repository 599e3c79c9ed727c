// The patient and lesion pages (templates/classifier/patient.html, lesion.html):
// - pictures dropped on a lesion's row (or the lesion page's upload box) go into that row's file
//   input and the form is sent at once: one step, the same request as choosing the files and
//   pressing "Upload visit", which stays the way without a mouse or without JavaScript;
// - readings still waiting for the model are followed through the API (static/poll.js), and once
//   every one has arrived the page says so and offers to show them (a reload: the timeline, the
//   change flags and the chart are drawn by the server).
(function () {
  "use strict";

  var canSetFiles = (function () {
    try { return typeof DataTransfer === "function" && new DataTransfer().files instanceof FileList; }
    catch (e) { return false; }
  })();

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  if (canSetFiles) {
    document.querySelectorAll("[data-drop-hint]").forEach(function (hint) { hint.hidden = false; });
    document.querySelectorAll("[data-visit-drop]").forEach(function (target) {
      var form = target.matches("form") ? target : target.querySelector("form.visit-upload");
      var input = form && form.querySelector('input[type="file"]');
      if (!input) { return; }
      var depth = 0;
      target.addEventListener("dragenter", function (event) {
        if (!hasFiles(event)) { return; }
        event.preventDefault();
        depth += 1;
        target.classList.add("is-dragging");
      });
      target.addEventListener("dragover", function (event) {
        if (hasFiles(event)) { event.preventDefault(); }
      });
      target.addEventListener("dragleave", function () {
        depth = Math.max(0, depth - 1);
        if (!depth) { target.classList.remove("is-dragging"); }
      });
      target.addEventListener("drop", function (event) {
        event.preventDefault();
        depth = 0;
        target.classList.remove("is-dragging");
        var files = event.dataTransfer && event.dataTransfer.files;
        if (!files || !files.length) { return; }
        var chosen = new DataTransfer();
        Array.prototype.forEach.call(files, function (file) { chosen.items.add(file); });
        input.files = chosen.files;
        if (typeof form.requestSubmit === "function") { form.requestSubmit(); } else { form.submit(); }
      });
    });
  }

  var status = document.querySelector("[data-readings-status]");
  var pending = Array.prototype.map.call(
    document.querySelectorAll("[data-pending-prediction]"),
    function (node) { return node.dataset.pendingPrediction; }
  ).filter(function (id, index, all) { return id && all.indexOf(id) === index; });
  if (!status || !pending.length || !window.lesionsitePoll) { return; }

  var waiting = pending.length;
  function say(text, withButton) {
    status.hidden = false;
    status.textContent = text;
    if (withButton) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = "Show the new readings";
      button.addEventListener("click", function () { window.location.reload(); });
      status.appendChild(document.createTextNode(" "));
      status.appendChild(button);
    }
  }
  say("Waiting for " + waiting + " reading" + (waiting === 1 ? "" : "s") + " from the model…", false);
  pending.forEach(function (id) {
    window.lesionsitePoll("/api/v1/predictions/" + encodeURIComponent(id) + "/", function (data) {
      if (data.status !== "done" && data.status !== "failed") { return false; }
      waiting -= 1;
      if (waiting > 0) {
        say("Waiting for " + waiting + " reading" + (waiting === 1 ? "" : "s") + " from the model…", false);
      } else {
        say("The new readings are ready.", true);
      }
      return true;
    });
  });
})();
