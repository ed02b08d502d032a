// hihichat theme: applies the remembered light/dark choice before the first
// paint (this file is a classic script in <head> for that reason) and wires
// the toggle button once the page is parsed.
(function () {
  "use strict";
  var KEY = "hihichat:theme";
  var root = document.documentElement;

  function stored() {
    try {
      var v = window.localStorage.getItem(KEY);
      return v === "dark" || v === "light" ? v : null;
    } catch (e) {
      return null; // storage disabled: follow the system
    }
  }

  function systemDark() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  function current() {
    return stored() || (systemDark() ? "dark" : "light");
  }

  function apply(theme) {
    root.setAttribute("data-theme", theme);
  }

  apply(current());

  function wire() {
    var buttons = document.querySelectorAll("[data-theme-toggle]");
    // The button is named "Dark theme" for good; aria-pressed says whether
    // it is on (a toggle whose name flips would read "Light theme, pressed").
    function label() {
      var dark = current() === "dark";
      for (var i = 0; i < buttons.length; i++) {
        buttons[i].setAttribute("aria-pressed", dark ? "true" : "false");
      }
    }
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", function () {
        var next = current() === "dark" ? "light" : "dark";
        try {
          window.localStorage.setItem(KEY, next);
        } catch (e) {
          /* not remembered, still applied */
        }
        apply(next);
        label();
      });
    }
    label();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
  // Another tab changed the theme.
  window.addEventListener("storage", function (e) {
    if (e.key === KEY) apply(current());
  });
})();
