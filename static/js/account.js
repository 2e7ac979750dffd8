// /account: "Send me news and offers by e-mail". The choice is the shopper's own, kept in their Clerk
// user's unsafe_metadata.marketing_opt_in: clerk-js `user.updateMetadata({unsafeMetadata})` (Clerk's
// PATCH /v1/me/metadata, a deep merge, so other keys stay), and Clerk's signed `user.updated` webhook
// mirrors it into users.marketing_opt_in. The page renders the box from the mirror, disabled; once
// Clerk has loaded (shop.js starts it, real clerk-js or the stand-in) the box takes Clerk's value,
// which the mirror may trail by a webhook, and is enabled. Without JavaScript it stays disabled and a
// sentence says why; this script removes that sentence as it starts.
(function () {
  "use strict";

  var LOAD_TIMEOUT_MS = 15000;
  var box = document.getElementById("marketing-opt-in");
  var status = document.getElementById("marketing-opt-in-status");
  if (!box || !status) return;
  var needsJs = document.getElementById("marketing-opt-in-needs-js");
  if (needsJs) needsJs.remove();
  var area = box.closest("[data-testid=marketing-opt-in]") || box.parentNode;

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("form-error", Boolean(isError));
    status.classList.toggle("muted", !isError);
  }

  function optedIn(user) {
    var metadata = user && user.unsafeMetadata;
    return Boolean(metadata && metadata.marketing_opt_in === true);
  }

  // shop.js calls Clerk.load(); this waits until it has finished (Clerk.loaded, in clerk-js and the stand-in).
  function loadedClerk() {
    return new Promise(function (resolve, reject) {
      var started = Date.now();
      (function poll() {
        var clerk = window.Clerk;
        if (clerk && clerk.loaded) return resolve(clerk);
        if (Date.now() - started > LOAD_TIMEOUT_MS) return reject(new Error("Clerk did not load"));
        setTimeout(poll, 25);
      })();
    });
  }

  function save(clerk) {
    var wanted = box.checked;
    box.disabled = true;
    area.setAttribute("aria-busy", "true");
    say("Saving…");
    clerk.user.updateMetadata({ unsafeMetadata: { marketing_opt_in: wanted } }).then(function (user) {
      // clerk-js answers an offline browser with the user unchanged instead of an error.
      if (optedIn(user) !== wanted) throw new Error("not saved");
      say(wanted ? "Saved: we will send you news and offers by e-mail." : "Saved: we will not send you news or offers by e-mail.");
    }).catch(function () {
      box.checked = !wanted;
      say("Your choice could not be saved, so nothing changed: check your connection and try again.", true);
    }).then(function () {
      box.disabled = false;
      area.removeAttribute("aria-busy");
    });
  }

  loadedClerk().then(function (clerk) {
    if (!clerk.user) return;  // signed out in the meantime: shop.js shows the page signed out
    box.checked = optedIn(clerk.user);
    box.disabled = false;
    box.addEventListener("change", function () { save(clerk); });
  }, function () {
    say("This choice cannot be changed right now because Clerk did not load: reload the page to try again.", true);
  });
})();
