// The local Clerk stand-in's browser side (SHOP_DEV_AUTH=1): the small part of clerk-js our
// templates and shop.js use (load, addListener, user, user.updateMetadata, session.getToken,
// mountSignIn, mountUserProfile, signOut), talking to /dev-clerk/… on this server instead of
// Clerk's Frontend API. The cookies it leaves are the ones clerk-js sets (the server side sets them here).
(function () {
  "use strict";
  var base = "/dev-clerk";

  function post(path, body, method) {
    return fetch(base + path, {
      method: method || "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "The stand-in refused the request.");
        return data;
      });
    });
  }

  function field(form, label, name, type, value) {
    var id = "standin-" + name;
    var wrapper = document.createElement("p");
    wrapper.innerHTML = '<label for="' + id + '"></label><input id="' + id + '" name="' + name + '">';
    wrapper.firstChild.textContent = label;
    var input = wrapper.lastChild;
    input.type = type;
    input.value = value || "";
    form.appendChild(wrapper);
    return input;
  }

  function form(el, title, fields, buttonText, onSubmit) {
    var node = document.createElement("form");
    node.className = "standin-form";
    var heading = document.createElement("h2");
    heading.textContent = title;
    node.appendChild(heading);
    fields.forEach(function (f) { field(node, f[0], f[1], f[2], f[3]); });
    var error = document.createElement("p");
    error.className = "form-error";
    error.setAttribute("role", "alert");
    node.appendChild(error);
    var button = document.createElement("button");
    button.type = "submit";
    button.className = "button";
    button.textContent = buttonText;
    node.appendChild(button);
    node.addEventListener("submit", function (event) {
      event.preventDefault();
      var values = {};
      fields.forEach(function (f) { values[f[1]] = node.elements[f[1]].value; });
      button.disabled = true;
      onSubmit(values).catch(function (e) { error.textContent = e.message; button.disabled = false; });
    });
    el.appendChild(node);
  }

  function expiresAt(jwt) {
    try { return JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).exp * 1000; } catch (e) { return 0; }
  }

  // Another tab signed out: clerk-js hears it on a BroadcastChannel too.
  var channel = window.BroadcastChannel ? new BroadcastChannel("clerk-standin") : null;

  var Clerk = {
    loaded: false,
    user: null,
    session: null,
    _listeners: [],
    _emit: function () {
      var self = this;
      this._listeners.forEach(function (listener) { listener({ user: self.user, session: self.session }); });
    },
    addListener: function (listener) {
      this._listeners.push(listener);
      if (this.loaded) listener({ user: this.user, session: this.session });
      var listeners = this._listeners;
      return function () { listeners.splice(listeners.indexOf(listener), 1); };
    },
    load: function () {
      var self = this;
      return fetch(base + "/me", { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          self.user = data.user ? self._user(data.user) : null;
          self.session = data.user ? self._session(data.session_id) : null;
          if (self.session && !self._refresher) {
            // Like clerk-js: keep __session fresh while the tab is open, well before it expires.
            var session = self.session;
            var every = Math.max(1000, data.token_seconds * 1000 / 2);
            self._refresher = setInterval(function () { session.getToken({ skipCache: true }).catch(function () {}); }, every);
          }
          if (channel) channel.onmessage = function (event) {
            if (event.data !== "signed-out" || !self.session) return;
            self.user = null;
            self.session = null;
            clearInterval(self._refresher);
            self._emit();
          };
          self.loaded = true;
        });
    },
    _user: function (data) {
      // Like clerk-js: a deep merge into unsafeMetadata (PATCH /v1/me/metadata at Clerk), answered
      // with the updated user, which becomes Clerk.user; the shop hears of it by a signed webhook.
      var self = this;
      data.updateMetadata = function (params) {
        return post("/me/metadata", { unsafe_metadata: params && params.unsafeMetadata }, "PATCH").then(function (d) {
          self.user = self._user(d.user);
          self._emit();
          return self.user;
        });
      };
      return data;
    },
    _session: function (id) {
      var cached = null;
      return {
        id: id,
        // Like clerk-js: the cached token while it has more than 10 s left (by this browser's clock).
        getToken: function (options) {
          if (cached && !(options && options.skipCache) && expiresAt(cached) - Date.now() > 10000) {
            return Promise.resolve(cached);
          }
          return post("/tokens").then(function (d) { cached = d.jwt; return d.jwt; });
        }
      };
    },
    mountSignIn: function (el, options) {
      var target = (options && (options.forceRedirectUrl || options.fallbackRedirectUrl)) || "/";
      form(el, "Sign in (local stand-in)", [
        ["E-mail address", "email", "email", ""],
        ["First name", "first_name", "text", ""],
        ["Last name", "last_name", "text", ""]
      ], "Continue", function (values) {
        return post("/sign-in", values).then(function () { window.location.assign(target); });
      });
    },
    openSignIn: function () { window.location.assign("/sign-in"); },
    mountUserProfile: function (el) {
      var user = this.user || {};
      form(el, "Edit your profile (local stand-in)", [
        ["First name", "first_name", "text", user.firstName],
        ["Last name", "last_name", "text", user.lastName]
      ], "Save", function (values) {
        return post("/profile", values).then(function () {
          // The change reaches the shop by a signed webhook, as with Clerk.
          setTimeout(function () { window.location.reload(); }, 500);
        });
      });
    },
    signOut: function (options) {
      return post("/sign-out").then(function () {
        if (channel) channel.postMessage("signed-out");
        window.location.assign((options && options.redirectUrl) || "/");
      });
    }
  };
  window.Clerk = Clerk;
})();
