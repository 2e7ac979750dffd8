// The local Clerk stand-in's browser side (SHOP_DEV_AUTH=1): the small part of clerk-js our
// templates use (load, user, session.getToken, mountSignIn, mountUserProfile, signOut), talking
// to /dev-clerk/… on this server instead of Clerk's Frontend API.
(function () {
  "use strict";
  var base = "/dev-clerk";

  function post(path, body) {
    return fetch(base + path, {
      method: "POST",
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

  var Clerk = {
    loaded: false,
    user: null,
    session: null,
    load: function () {
      var self = this;
      return fetch(base + "/me", { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          self.user = data.user;
          self.session = data.user ? {
            id: data.session_id,
            getToken: function () { return post("/tokens").then(function (d) { return d.jwt; }); }
          } : null;
          if (self.session && !self._refresher) {
            // Like clerk-js: keep the 60-second __session fresh while the tab is open.
            var session = self.session;
            self._refresher = setInterval(function () { session.getToken().catch(function () {}); }, 40000);
          }
          self.loaded = true;
        });
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
        window.location.assign((options && options.redirectUrl) || "/");
      });
    }
  };
  window.Clerk = Clerk;
})();
