// The upload page's drop zone. Files dropped on it join the form's own file
// input (through a DataTransfer), so the form posts them as if they had been
// chosen; every chosen file is listed with its size before anything is sent.
// Without JavaScript the plain file input does the same job. The hints here only
// save a round trip: the server checks every file and is the judge.
(function () {
  "use strict";

  var zone = document.getElementById("dropzone");
  if (!zone) { return; }
  var input = zone.querySelector('input[type="file"]');
  var form = zone.closest("form");
  var chosen = form.querySelector("[data-chosen]");
  var summary = document.getElementById("chosen-summary");
  var list = document.getElementById("file-list");
  var maxFiles = Number(zone.dataset.maxFiles) || Infinity;
  var maxBytes = Number(zone.dataset.maxBytes) || Infinity;
  // What the server accepts (classifier.imaging); a browser may leave `type` empty.
  var ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp", "image/tiff", "image/bmp", "image/x-ms-bmp"];
  var ACCEPTED_NAMES = /\.(jpe?g|png|webp|tiff?|bmp)$/i;

  // Old browsers cannot build a FileList; they keep the plain input, which still works.
  var canSetFiles = (function () {
    try { return typeof DataTransfer === "function" && new DataTransfer().files instanceof FileList; }
    catch (e) { return false; }
  })();

  function humanSize(bytes) {
    if (bytes < 1024) { return bytes + " B"; }
    if (bytes < 1024 * 1024) { return (bytes / 1024).toFixed(1) + " KB"; }
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function problemWith(file) {
    var typed = file.type ? ACCEPTED_TYPES.indexOf(file.type) !== -1 : ACCEPTED_NAMES.test(file.name);
    if (!typed) { return "not a JPEG, PNG, WebP, TIFF or BMP image: it will be refused"; }
    if (file.size > maxBytes) { return "larger than the " + humanSize(maxBytes) + " limit: it will be refused"; }
    return "";
  }

  function currentFiles() { return Array.prototype.slice.call(input.files || []); }

  function fileKey(file) { return [file.name, file.size, file.lastModified].join("\u0000"); }

  function setFiles(files) {
    var transfer = new DataTransfer();
    files.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
    render();
  }

  function addFiles(dropped) {
    var files = currentFiles();
    var seen = {};
    files.forEach(function (file) { seen[fileKey(file)] = true; });
    dropped.forEach(function (file) {
      if (!seen[fileKey(file)]) { files.push(file); seen[fileKey(file)] = true; }
    });
    setFiles(files);
  }

  function removeFile(index) {
    var files = currentFiles();
    files.splice(index, 1);
    setFiles(files);
    // Keep the keyboard user in place: the next file's Remove button, else the input.
    var buttons = list.querySelectorAll("button");
    (buttons[Math.min(index, buttons.length - 1)] || input).focus();
  }

  function render() {
    var files = currentFiles();
    var total = 0;
    var flagged = 0;
    list.textContent = "";
    files.forEach(function (file, index) {
      total += file.size;
      var item = document.createElement("li");
      var name = document.createElement("span");
      name.className = "file-name";
      name.textContent = file.name;
      var size = document.createElement("span");
      size.className = "file-size";
      size.textContent = humanSize(file.size);
      item.append(name, " ", size);
      var problem = problemWith(file);
      if (problem) {
        flagged += 1;
        item.dataset.warning = "true";
        var warning = document.createElement("span");
        warning.className = "file-warning";
        warning.textContent = "⚠ " + problem;
        item.append(" ", warning);
      }
      if (canSetFiles) {
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "link";
        remove.textContent = "Remove";
        remove.setAttribute("aria-label", "Remove " + file.name);
        remove.addEventListener("click", function () { removeFile(index); });
        item.append(" ", remove);
      }
      list.append(item);
    });
    chosen.hidden = files.length === 0;
    var text = (files.length === 1 ? "1 file" : files.length + " files") + " chosen, " + humanSize(total) + " in all.";
    if (files.length > maxFiles) { text += " One upload takes at most " + maxFiles + " files."; }
    if (flagged) { text += " " + flagged + " marked ⚠ will be refused."; }
    summary.textContent = files.length ? text : "";
  }

  function carriesFiles(event) {
    return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") !== -1;
  }

  input.addEventListener("change", render);

  if (canSetFiles) {
    form.querySelector("[data-dropzone-hint]").hidden = false;
    zone.classList.add("is-enhanced");
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        if (!carriesFiles(event)) { return; }
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        zone.classList.add("is-dragging");
      });
    });
    zone.addEventListener("dragleave", function (event) {
      if (!zone.contains(event.relatedTarget)) { zone.classList.remove("is-dragging"); }
    });
    zone.addEventListener("drop", function (event) {
      if (!carriesFiles(event)) { return; }
      event.preventDefault();  // also stops the input's own drop from replacing the selection
      zone.classList.remove("is-dragging");
      addFiles(Array.prototype.slice.call(event.dataTransfer.files));
    });
    // A file dropped just outside the zone would otherwise replace the page with the image.
    ["dragover", "drop"].forEach(function (type) {
      window.addEventListener(type, function (event) {
        if (carriesFiles(event) && !zone.contains(event.target)) { event.preventDefault(); }
      });
    });
  }

  form.addEventListener("submit", function () {
    var button = form.querySelector("[data-submit]");
    var count = currentFiles().length;
    button.disabled = true;
    button.textContent = count > 1 ? "Uploading " + count + " images…" : "Uploading…";
  });
  // Coming back with the browser's Back button: the form is usable again.
  window.addEventListener("pageshow", function () {
    var button = form.querySelector("[data-submit]");
    button.disabled = false;
    button.textContent = "Upload and classify";
    render();
  });

  render();
})();
