// A pending order's page (templates/store/order.html) shows the payment's outcome by itself: it asks
// GET /api/orders/<id> every few seconds and reloads the page once the order's state differs from the
// one it was drawn with (paid, failed, cancelled). Nothing moves while nothing changes, so a reader or a
// keyboard user keeps their place; asking stops while the tab is hidden, and slows down after errors
// (a lapsed session token is renewed by Clerk in the background meanwhile).
(function () {
  "use strict";

  var script = document.currentScript;
  var url = script.dataset.statusUrl;
  var drawn = script.dataset.state;
  var EVERY_MS = 3000;
  var AT_MOST_MS = 60000;
  var wait = EVERY_MS;

  function later() {
    setTimeout(ask, wait);
  }

  function ask() {
    if (document.visibilityState === "hidden") {
      document.addEventListener("visibilitychange", function resume() {
        document.removeEventListener("visibilitychange", resume);
        ask();
      });
      return;
    }
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (order) {
        if (order.status + "/" + order.payment_status !== drawn) {
          window.location.reload();
          return;
        }
        wait = EVERY_MS;
        later();
      })
      .catch(function () {
        wait = Math.min(wait * 2, AT_MOST_MS);
        later();
      });
  }

  later();
})();
