// A picture viewer that zooms to the picture's full resolution and pans, with the
// heatmap (or anything else inside the stage) transformed with it, so an overlay
// stays on the pixels it belongs to at every zoom. Buttons, the mouse wheel,
// dragging, and the keyboard (+ / - / 0 and the arrow keys on the focused viewer).
// lesionsiteZoom.attach() returns the view, so two viewers can be kept in step.
(function () {
  "use strict";

  var STEP = 1.5;  // each zoom step, in or out
  var PAN_STEP = 40;  // px per arrow key press

  function attach(viewer, controls) {
    var stage = viewer.querySelector("[data-stage]");
    var naturalWidth = Number(viewer.dataset.naturalWidth) || 1;
    var scale = 1;  // 1 = the whole picture fits the viewer
    var x = 0, y = 0;  // the stage's offset in viewer pixels
    var listeners = [];
    var level = controls && controls.querySelector("[data-zoom-level]");

    // 100 % = one picture pixel per screen pixel: the zoom a clinician reads as "full resolution".
    function fullScale() { return Math.max(1, naturalWidth / Math.max(1, viewer.clientWidth)); }
    function maxScale() { return Math.max(8, 2 * fullScale()); }

    function clamp() {
      var width = viewer.clientWidth, height = viewer.clientHeight;
      x = Math.min(0, Math.max(width - width * scale, x));
      y = Math.min(0, Math.max(height - height * scale, y));
    }

    function render(quiet) {
      clamp();
      stage.style.transform = "translate(" + x + "px, " + y + "px) scale(" + scale + ")";
      viewer.classList.toggle("is-zoomed", scale > 1);
      if (level) {
        var shown = Math.round(100 * scale * viewer.clientWidth / naturalWidth);
        level.textContent = "Zoom " + shown + " % of full resolution";
      }
      if (!quiet) { listeners.forEach(function (listener) { listener(view.get()); }); }
    }

    // Zoom to `next`, keeping the picture point under (px, py) in place.
    function zoomTo(next, px, py) {
      next = Math.min(maxScale(), Math.max(1, next));
      if (px === undefined) { px = viewer.clientWidth / 2; py = viewer.clientHeight / 2; }
      x = px - (px - x) * next / scale;
      y = py - (py - y) * next / scale;
      scale = next;
      render();
    }

    var view = {
      // The view as fractions of the viewer, so viewers of different pictures can share it.
      get: function () {
        return { scale: scale, x: x / viewer.clientWidth, y: y / viewer.clientHeight };
      },
      set: function (state) {
        scale = state.scale;
        x = state.x * viewer.clientWidth;
        y = state.y * viewer.clientHeight;
        render(true);
      },
      onChange: function (listener) { listeners.push(listener); },
      zoomIn: function () { zoomTo(scale * STEP); },
      zoomOut: function () { zoomTo(scale / STEP); },
      fit: function () { scale = 1; x = 0; y = 0; render(); },
      full: function () { zoomTo(fullScale()); },
    };

    viewer.addEventListener("wheel", function (event) {
      event.preventDefault();
      var box = viewer.getBoundingClientRect();
      zoomTo(scale * (event.deltaY < 0 ? STEP : 1 / STEP), event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });

    var drag = null;
    viewer.addEventListener("pointerdown", function (event) {
      if (scale === 1) { return; }
      drag = { id: event.pointerId, startX: event.clientX - x, startY: event.clientY - y };
      viewer.setPointerCapture(event.pointerId);
      viewer.classList.add("is-dragging");
    });
    viewer.addEventListener("pointermove", function (event) {
      if (!drag || drag.id !== event.pointerId) { return; }
      x = event.clientX - drag.startX;
      y = event.clientY - drag.startY;
      render();
    });
    ["pointerup", "pointercancel"].forEach(function (type) {
      viewer.addEventListener(type, function () { drag = null; viewer.classList.remove("is-dragging"); });
    });

    viewer.tabIndex = 0;
    viewer.setAttribute("role", "group");
    viewer.setAttribute("aria-label", "Picture viewer: + and - zoom, 0 fits, arrow keys move the picture");
    viewer.addEventListener("keydown", function (event) {
      var moves = { ArrowLeft: [PAN_STEP, 0], ArrowRight: [-PAN_STEP, 0], ArrowUp: [0, PAN_STEP], ArrowDown: [0, -PAN_STEP] };
      if (event.key === "+" || event.key === "=") { view.zoomIn(); }
      else if (event.key === "-") { view.zoomOut(); }
      else if (event.key === "0") { view.fit(); }
      else if (moves[event.key] && scale > 1) { x += moves[event.key][0]; y += moves[event.key][1]; render(); }
      else { return; }
      event.preventDefault();
    });

    if (controls) {
      controls.hidden = false;
      controls.querySelectorAll("[data-zoom]").forEach(function (button) {
        var actions = { "in": view.zoomIn, out: view.zoomOut, fit: view.fit, full: view.full };
        button.addEventListener("click", function () { actions[button.dataset.zoom](); });
      });
    }
    window.addEventListener("resize", function () { render(true); });
    render(true);
    return view;
  }

  window.lesionsiteZoom = { attach: attach };

  var viewer = document.getElementById("viewer");
  if (viewer) {
    var hint = document.querySelector("[data-viewer-hint]");
    if (hint) { hint.hidden = false; }
    window.lesionsiteViewer = attach(viewer, document.querySelector("[data-viewer-controls]"));
  }
})();
