// Mounts Clerk's components where a page asks for them with data-clerk="…".
// The same code runs against real clerk-js and against the local stand-in (clerk-standin.js).
(function () {
  "use strict";

  function clerkReady() {
    return new Promise(function (resolve, reject) {
      var started = Date.now();
      (function poll() {
        if (window.Clerk) return resolve(window.Clerk);
        if (Date.now() - started > 15000) return reject(new Error("Clerk's script did not load."));
        setTimeout(poll, 25);
      })();
    }).then(function (clerk) {
      return clerk.load().then(function () { return clerk; });
    });
  }

  var actions = {
    "sign-in": function (clerk, el) {
      var target = el.dataset.redirect || "/";
      if (clerk.user) { window.location.assign(target); return; }
      el.innerHTML = "";
      clerk.mountSignIn(el, { forceRedirectUrl: target, fallbackRedirectUrl: target, signUpForceRedirectUrl: target });
    },
    "sign-out": function (clerk, el) {
      return clerk.signOut({ redirectUrl: el.dataset.redirect || "/" });
    },
    "user-profile": function (clerk, el) {
      el.innerHTML = "";
      clerk.mountUserProfile(el);
    },
    "refresh": function (clerk, el) {
      // Clerk's interstitial: get a fresh session token, then reload once. The guard cookie tells
      // the server not to serve this page again for a while, so a failed refresh cannot loop.
      document.cookie = el.dataset.guardCookie + "=1; max-age=15; path=/; SameSite=Lax";
      var fresh = clerk.session ? clerk.session.getToken({ skipCache: true }) : Promise.resolve(null);
      return fresh.catch(function () { return null; }).then(function () { window.location.reload(); });
    }
  };

  document.addEventListener("DOMContentLoaded", function () {
    var targets = document.querySelectorAll("[data-clerk]");
    if (!targets.length) return;
    clerkReady().then(function (clerk) {
      targets.forEach(function (el) { actions[el.dataset.clerk](clerk, el); });
    }).catch(function (error) {
      targets.forEach(function (el) {
        el.innerHTML = '<p class="notice notice-warning"></p>';
        el.firstChild.textContent = error.message + " Check your connection and reload the page.";
      });
    });
  });
})();
