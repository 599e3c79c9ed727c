// The upload page's drop zone and its file list. Files dropped on it join the
// form's own file input (through a DataTransfer), so the form posts them as if
// they had been chosen; every chosen file is listed with its size, and each one
// the server will refuse is marked with the reason before anything is sent:
// empty, too large, or bytes that do not start like an accepted image (the
// browser's `type` comes from the file's name, so the first bytes are read
// instead). Submit stays off while such a file is chosen. The form is then sent
// with fetch, so that a file only the server's full decode catches (a truncated
// JPEG) is marked in the same list and the selection is kept. Without
// JavaScript the plain form does the same job and the page lists every refused
// file; the hints here only save a round trip: the server checks every file.
(function () {
  "use strict";

  var zone = document.getElementById("dropzone");
  if (!zone) { return; }
  var input = zone.querySelector('input[type="file"]');
  var form = zone.closest("form");
  var chosen = form.querySelector("[data-chosen]");
  var summary = document.getElementById("chosen-summary");
  var list = document.getElementById("file-list");
  var removeRefused = form.querySelector("[data-remove-refused]");
  var submit = form.querySelector("[data-submit]");
  var submitReason = form.querySelector("[data-submit-reason]");
  var alertBox = form.querySelector("[data-upload-alert]");
  var maxFiles = Number(zone.dataset.maxFiles) || Infinity;
  var maxBytes = Number(zone.dataset.maxBytes) || Infinity;
  var SUBMIT_LABEL = submit.textContent;
  var ACCEPTED_IN_WORDS = "JPEG, PNG, WebP, HEIC, TIFF or BMP";

  // Old browsers cannot build a FileList; they keep the plain input, which still works.
  var canSetFiles = (function () {
    try { return typeof DataTransfer === "function" && new DataTransfer().files instanceof FileList; }
    catch (e) { return false; }
  })();
  var canFetch = typeof window.fetch === "function" && typeof window.FormData === "function";

  // The same signatures as classifier/imaging.py: the accepted formats, and the
  // refused ones it names (everything else "is not an image").
  var ACCEPTED = [
    [0, [0xff, 0xd8, 0xff]],  // JPEG
    [0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],  // PNG
    [0, "II*\u0000"], [0, "MM\u0000*"], [0, "II+\u0000"], [0, "MM\u0000+"],  // TIFF, BigTIFF
    [0, "BM"],  // BMP
  ];
  var NAMED = [
    ["GIF", [0, "GIF87a"]], ["GIF", [0, "GIF89a"]],
    ["ICO", [0, [0x00, 0x00, 0x01, 0x00]]],
    ["Photoshop (PSD)", [0, "8BPS"]],
    ["JPEG 2000", [0, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20, 0x0d, 0x0a, 0x87, 0x0a]]],
    ["JPEG 2000", [0, [0xff, 0x4f, 0xff, 0x51]]],
  ];
  // ISO media files ("....ftyp" then a brand) hold HEIC and AVIF, and videos too.
  var FTYP_BRANDS = {
    heic: "HEIC", heix: "HEIC", heim: "HEIC", heis: "HEIC", hevc: "HEIC", hevx: "HEIC",
    mif1: "HEIF", msf1: "HEIF", avif: "AVIF", avis: "AVIF",
  };
  var HEAD_BYTES = 16;  // enough for every signature above

  function matches(bytes, signature) {
    var offset = signature[0];
    var expected = signature[1];
    for (var i = 0; i < expected.length; i += 1) {
      var want = typeof expected === "string" ? expected.charCodeAt(i) : expected[i];
      if (bytes[offset + i] !== want) { return false; }
    }
    return true;
  }

  function text(bytes, start, end) { return String.fromCharCode.apply(null, bytes.slice(start, end)); }

  // What is wrong with a file whose first bytes are `bytes`; "" when it starts like an accepted image.
  function formatProblem(bytes) {
    if (text(bytes, 0, 4) === "RIFF" && text(bytes, 8, 12) === "WEBP") { return ""; }
    if (ACCEPTED.some(function (signature) { return matches(bytes, signature); })) { return ""; }
    var named = text(bytes, 4, 8) === "ftyp" ? FTYP_BRANDS[text(bytes, 8, 12)] : undefined;
    if (named === "HEIC" || named === "HEIF") { return ""; }  // phones' pictures, decoded by pillow-heif
    NAMED.forEach(function (entry) { if (!named && matches(bytes, entry[1])) { named = entry[0]; } });
    if (named) { return "in " + named + " format, not " + ACCEPTED_IN_WORDS + ": it will be refused"; }
    return "not a " + ACCEPTED_IN_WORDS + " image, whatever its name says: it will be refused";
  }

  function readHead(file) {
    var head = file.slice(0, HEAD_BYTES);
    if (typeof head.arrayBuffer === "function") { return head.arrayBuffer(); }
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(reader.error); };
      reader.readAsArrayBuffer(head);
    });
  }

  function humanSize(bytes) {
    if (bytes < 1024) { return bytes + " B"; }
    if (bytes < 1024 * 1024) { return (bytes / 1024).toFixed(1) + " KB"; }
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function fileKey(file) { return [file.name, file.size, file.lastModified].join("\u0000"); }

  // Per file (by fileKey): {pending: true} while its first bytes are read, then {problem: "..." or ""}.
  var checks = new Map();
  // Per file: the server's reason, when it refused the file although the checks above passed.
  var refusedByServer = new Map();
  var uploading = false;

  function check(file) {
    var key = fileKey(file);
    if (checks.has(key)) { return checks.get(key); }
    var verdict;
    if (file.size === 0) {
      verdict = { problem: "empty (0 bytes): it will be refused" };
    } else if (file.size > maxBytes) {
      verdict = { problem: "larger than the " + humanSize(maxBytes) + " limit: it will be refused" };
    } else {
      verdict = { pending: true };
      readHead(file).then(
        function (buffer) { checks.set(key, { problem: formatProblem(Array.from(new Uint8Array(buffer))) }); },
        function () { checks.set(key, { problem: "could not be read from your device: choose it again" }); }
      ).then(render);
    }
    checks.set(key, verdict);
    return verdict;
  }

  function problemWith(file) {
    return refusedByServer.get(fileKey(file)) || check(file).problem || "";
  }

  function currentFiles() { return Array.prototype.slice.call(input.files || []); }

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

  function plural(count, one, many) { return count === 1 ? one : count + " " + many; }

  // Why Submit is off, or "" when it may be pressed.
  function blockedBecause(files, refused, pending) {
    if (refused) {
      var which = plural(refused, "the refused file", "refused files");
      return canSetFiles
        ? "Upload is off: remove " + which + " first."
        : "Upload is off: choose your files again without " + which + ".";
    }
    if (files.length > maxFiles) {
      return "Upload is off: one upload takes at most " + maxFiles + " files; remove " + (files.length - maxFiles) + ".";
    }
    if (pending) { return "Checking the chosen files…"; }
    return "";
  }

  function render() {
    var files = currentFiles();
    var total = 0;
    var refused = 0;
    var pending = 0;
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
      pending += check(file).pending ? 1 : 0;
      if (problem) {
        refused += 1;
        item.dataset.warning = "true";
        if (refusedByServer.has(fileKey(file))) { item.dataset.refusedBy = "server"; }
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
    var line = plural(files.length, "1 file", "files") + " chosen, " + humanSize(total) + " in all.";
    if (files.length > maxFiles) { line += " One upload takes at most " + maxFiles + " files."; }
    if (refused) { line += " " + refused + " marked ⚠ will be refused."; }
    summary.textContent = files.length ? line : "";

    removeRefused.hidden = !(canSetFiles && refused);
    removeRefused.textContent = "Remove the " + plural(refused, "refused file", "refused files");

    var reason = uploading ? "" : blockedBecause(files, refused, pending);
    // Written only when it changes, so the live region announces it once.
    if (submitReason.textContent !== reason) { submitReason.textContent = reason; }
    submit.disabled = uploading || reason !== "";
    submit.toggleAttribute("data-blocked", !uploading && reason !== "");
    submit.textContent = uploading
      ? (files.length > 1 ? "Uploading " + files.length + " images…" : "Uploading…")
      : SUBMIT_LABEL;
  }

  removeRefused.addEventListener("click", function () {
    setFiles(currentFiles().filter(function (file) { return !problemWith(file); }));
    (submit.disabled ? input : submit).focus();
  });

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

  // --- Sending: the same /upload/ URL as the plain form, asking for JSON.

  function showAlert(message) { alertBox.textContent = message; }

  function clearAnswer() {
    showAlert("");
    // The list a plain post came back with described files that are no longer the question.
    form.querySelectorAll("[data-server-errors]").forEach(function (errors) { errors.hidden = true; });
    form.querySelectorAll("[data-client-errors]").forEach(function (errors) {
      var control = form.elements[errors.dataset.clientErrors];
      control.removeAttribute("aria-invalid");
      var described = (control.getAttribute("aria-describedby") || "").split(" ");
      control.setAttribute("aria-describedby", described.filter(function (id) { return id !== errors.id; }).join(" "));
      errors.remove();
    });
  }

  // Field errors as the page shows them without JavaScript: under the field, referenced by the control.
  function showFieldErrors(fields) {
    Object.keys(fields).forEach(function (name) {
      var control = form.elements[name];
      if (!control || !control.id) { return; }
      var errors = document.createElement("div");
      errors.id = control.id + "_client_error";
      errors.dataset.clientErrors = name;
      fields[name].forEach(function (message) {
        var line = document.createElement("p");
        line.className = "error";
        line.textContent = message;
        errors.append(line);
      });
      (name === "files" ? zone : control).after(errors);
      control.setAttribute("aria-invalid", "true");
      var described = control.getAttribute("aria-describedby");
      control.setAttribute("aria-describedby", (described ? described + " " : "") + errors.id);
    });
  }

  function answered(response, body, sent) {
    if (response.ok && body.redirect) {
      window.location.assign(body.redirect);
      return true;  // stays "Uploading…" until the next page shows
    }
    if (body.errors) {
      body.errors.forEach(function (error) {
        var file = sent[error.index];
        if (file) { refusedByServer.set(fileKey(file), error.detail); }
      });
      showAlert(
        "Nothing was stored: " + plural(body.errors.length, "1 file was", "files were") + " refused, marked ⚠ " +
        "above. Your other files are still chosen: remove the refused ones and upload again."
      );
      return false;
    }
    showAlert(body.detail || "The upload was refused.");
    if (body.fields) { showFieldErrors(body.fields); }
    return false;
  }

  function finished(navigating) {
    if (navigating) { return; }
    uploading = false;
    render();
    (removeRefused.hidden ? alertBox : removeRefused).focus();
  }

  function send() {
    var sent = currentFiles();
    clearAnswer();
    uploading = true;
    render();
    // The form's own fields, the CSRF token among them; the session cookie goes with a same-origin fetch.
    fetch(form.action || window.location.href, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        if (response.redirected) {  // the session ended: the login page, which comes back here
          window.location.assign(response.url);
          return true;
        }
        showAlert("The upload failed (the server answered " + response.status + "). " +
                  "Your files are still chosen: try again.");
        return false;
      }
      return response.json().then(function (body) { return answered(response, body, sent); });
    }).catch(function () {
      showAlert("The upload could not reach the server. Your files are still chosen: try again.");
      return false;
    }).then(finished);
  }

  form.addEventListener("submit", function (event) {
    if (!canFetch) {
      // The plain post: the page that comes back lists every refused file.
      uploading = true;
      render();
      return;
    }
    event.preventDefault();
    if (!uploading && !submit.disabled) { send(); }
  });
  // Coming back with the browser's Back button: the form is usable again.
  window.addEventListener("pageshow", function () {
    uploading = false;
    render();
  });

  render();
})();
