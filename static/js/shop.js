// Starts Clerk on every page, so that clerk-js keeps the 60-second `__session` cookie fresh in the
// background and notices a sign-out in another tab; mounts Clerk's components where a page asks for
// them with data-clerk="…"; and holds a signed-in form's POST until the session token is fresh.
// The same code runs against real clerk-js 6 + @clerk/ui 1 and against the local stand-in
// (clerk-standin.js). Its settings come from its own <script> tag (templates/base.html).
(function () {
  "use strict";

  var script = document.currentScript;
  var clerkJsUrl = script.dataset.clerkJsUrl;
  var clerkUiUrl = script.dataset.clerkUiUrl;
  var enabled = Boolean(clerkJsUrl) || script.dataset.clerkStandin === "true";
  var signedIn = script.dataset.signedIn === "true";
  var loadOptions = JSON.parse(script.dataset.clerkLoadOptions || "{}");
  var LOAD_TIMEOUT_MS = 15000;
  // How long a signed-in form's POST waits for a fresh token before it goes anyway: the server then
  // decides, as it does without JavaScript. clerk-js answers in milliseconds when it runs; a clerk-js
  // that loaded but never started held "Add to cart" for 10 seconds.
  var SUBMIT_WAIT_MS = 3000;
  var BUSY_TEXT = "Please wait…";

  // The Clerk bundles come after this script in the page, so this hears when one fails to download
  // (error events of <script> do not bubble, but they do pass the capture phase on window).
  var failedScripts = {};
  window.addEventListener("error", function (event) {
    if (event.target && event.target.tagName === "SCRIPT") failedScripts[event.target.src] = true;
  }, true);

  function host(url) {
    try { return new URL(url).host; } catch (e) { return url; }
  }

  function waitForGlobal(read, url, what) {
    return new Promise(function (resolve, reject) {
      var started = Date.now();
      (function poll() {
        var value = read();
        if (value) return resolve(value);
        if (url && failedScripts[url]) {
          return reject(new Error(what + " could not be downloaded from " + host(url) + "."));
        }
        if (Date.now() - started > LOAD_TIMEOUT_MS) {
          return reject(new Error(what + " did not finish loading within " + LOAD_TIMEOUT_MS / 1000 + " seconds."));
        }
        setTimeout(poll, 25);
      })();
    });
  }

  var started = null;
  function startClerk() {
    if (!started) {
      started = Promise.all([
        waitForGlobal(function () { return window.Clerk; }, clerkJsUrl, "Clerk's script (clerk-js)"),
        clerkUiUrl
          ? waitForGlobal(function () { return window.__internal_ClerkUICtor; }, clerkUiUrl, "Clerk's components (@clerk/ui)")
          : null
      ]).then(function (loaded) {
        var clerk = loaded[0];
        var options = Object.assign({}, loadOptions);
        if (loaded[1]) options.ui = { ClerkUI: loaded[1] };
        return clerk.load(options).then(function () { return clerk; }, function (error) {
          throw new Error("Clerk could not start: " + ((error && error.message) || error));
        });
      });
    }
    return started;
  }

  // --- components --------------------------------------------------------------------------------

  var actions = {
    "sign-in": function (clerk, el) {
      var target = el.dataset.redirect || "/";
      // A session with a task to finish (reset a password, set up MFA) has a user but is not signed
      // in yet: the component shows the task instead of sending the shopper back and forth.
      if (clerk.user && !(clerk.session && clerk.session.status === "pending")) { window.location.assign(target); return; }
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

  function showError(el, error) {
    el.innerHTML = '<p class="notice notice-warning" role="alert"></p>';
    el.firstChild.textContent = error.message + " Reload the page to try again.";
  }

  // --- a signed-in page follows the session ------------------------------------------------------

  function followSignOut(clerk) {
    // Signed out in another tab (or the session ended at Clerk): show this page signed out too.
    if (typeof clerk.addListener !== "function") return;
    clerk.addListener(function (resources) {
      if (resources.session === null) window.location.replace(window.location.href);
    });
  }

  function keepFreshWhenVisible(clerk) {
    // Timers barely run in a hidden tab or a sleeping laptop: ask for the token when the shopper is back.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && clerk.session) clerk.session.getToken().catch(function () {});
    });
  }

  function freshToken() {
    var token = startClerk().then(function (clerk) { return clerk.session ? clerk.session.getToken() : null; });
    var giveUp = new Promise(function (resolve) { setTimeout(resolve, SUBMIT_WAIT_MS); });
    return Promise.race([token, giveUp]).catch(function () { return null; });
  }

  // While the POST waits, the form says it is busy: its buttons disabled (no second submission), the
  // clicked one reading BUSY_TEXT. What was changed is kept, to be put back if the page comes back
  // from the history cache.
  var busyForms = new WeakMap();

  function showBusy(form, submitter) {
    var state = { disabled: [], button: null, content: null };
    form.querySelectorAll("button").forEach(function (button) {
      if (!button.disabled) { button.disabled = true; state.disabled.push(button); }
    });
    var button = submitter || form.querySelector('button:not([type]), button[type="submit"]');
    if (button && button.tagName === "BUTTON") {
      state.button = button;
      state.content = Array.prototype.slice.call(button.childNodes);
      button.setAttribute("aria-busy", "true");
      button.textContent = BUSY_TEXT;
    }
    form.setAttribute("aria-busy", "true");
    busyForms.set(form, state);
  }

  function showIdle(form) {
    var state = busyForms.get(form);
    if (!state) return;
    busyForms.delete(form);
    form.removeAttribute("aria-busy");
    if (state.button) {
      state.button.replaceChildren.apply(state.button, state.content);
      state.button.removeAttribute("aria-busy");
    }
    state.disabled.forEach(function (button) { button.disabled = false; });
  }

  // A POST from a signed-in page waits for a fresh token (clerk-js answers from its cache when the
  // token is still good, else asks the Frontend API and rewrites the cookie), so "Add to cart" after
  // a long pause is not mistaken for a signed-out request. One submission per form, whatever the clicks.
  // It is sent with form.submit(): requestSubmit() is ignored while the first submit event is still
  // being dispatched, which is when a token already in clerk-js's cache arrives.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!enabled || !signedIn || (form.getAttribute("method") || "get").toLowerCase() !== "post") return;
    event.preventDefault();
    if (form.dataset.clerkSubmitting) return;
    form.dataset.clerkSubmitting = "true";
    var submitter = event.submitter;
    showBusy(form, submitter);
    freshToken().then(function () {
      if (submitter && submitter.name) {  // what the clicked button would have added to the form
        var field = document.createElement("input");
        field.type = "hidden";
        field.name = submitter.name;
        field.value = submitter.value;
        form.appendChild(field);
      }
      form.submit();
    });
  });

  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;  // back from the history cache: the forms may be sent again
    document.querySelectorAll("form[data-clerk-submitting]").forEach(function (form) {
      delete form.dataset.clerkSubmitting;
      showIdle(form);
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (!enabled) return;
    var targets = document.querySelectorAll("[data-clerk]");
    startClerk().then(function (clerk) {
      targets.forEach(function (el) { actions[el.dataset.clerk](clerk, el); });
      var followsSession = !document.querySelector('[data-clerk="sign-out"], [data-clerk="refresh"]');
      if (signedIn && followsSession) followSignOut(clerk);
      keepFreshWhenVisible(clerk);
    }).catch(function (error) {
      targets.forEach(function (el) { showError(el, error); });
      if (window.console) console.error("shop: " + error.message);
    });
  });
})();
