// Polls a REST API URL with the session cookie until render(data) returns true:
// every 0.5 s at first, backing off to 3 s while waiting and to 10 s on errors.
// Shared by the result page (prediction.js) and the batch page (batch.js).
(function () {
  "use strict";

  window.lesionsitePoll = function (url, render) {
    var delay = 500;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          if (!render(data)) { delay = Math.min(delay * 1.5, 3000); setTimeout(tick, delay); }
        })
        .catch(function () { delay = Math.min(delay * 2, 10000); setTimeout(tick, delay); });
    }
    tick();
  };
})();
