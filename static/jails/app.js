// jailadmin: the little JavaScript the site needs (no inline scripts: the CSP forbids them).
(function () {
  "use strict";
  // Small screens fold the header into a menu (static/jails/responsive.css), but only with
  // this class: without JavaScript the menu could never open, so nothing folds.
  document.documentElement.classList.add("js");
  var menuButton = document.querySelector(".site-header .menu-toggle");
  var menu = menuButton && document.getElementById(menuButton.getAttribute("aria-controls"));
  if (menu) {
    var setMenuOpen = function (open) {
      menuButton.setAttribute("aria-expanded", open ? "true" : "false");
      menu.classList.toggle("open", open);
    };
    menuButton.addEventListener("click", function () {
      setMenuOpen(menuButton.getAttribute("aria-expanded") !== "true");
    });
    // Escape closes an open menu and puts the focus back where the keyboard user was.
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menuButton.getAttribute("aria-expanded") === "true") {
        setMenuOpen(false);
        menuButton.focus();
      }
    });
  }
  // A table, chart or <pre> box that scrolls sideways (small screens) must be reachable by
  // keyboard to scroll it; one that fits stays out of the tab order. Named by the caption.
  var markScrollers = function () {
    document.querySelectorAll(".table-scroll, .chart-card, pre").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        box.tabIndex = 0;
        var caption = box.querySelector("caption");
        if (!box.hasAttribute("aria-label") && !box.hasAttribute("aria-labelledby") && caption) {
          box.setAttribute("role", "region");
          box.setAttribute("aria-label", caption.textContent.trim());
        }
      } else if (box.tabIndex === 0) {
        box.removeAttribute("tabindex");
      }
    });
  };
  markScrollers();
  window.addEventListener("resize", markScrollers);
  document.addEventListener("htmx:afterSettle", markScrollers);
  // A failed HTMX request (503 from fail2ban, 403, 500) shows its message instead of
  // silently doing nothing; 4xx/5xx bodies rendered by the site are safe HTML partials.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var box = document.getElementById("messages");
    if (!box) {
      box = document.createElement("ul");
      box.id = "messages";
      box.className = "messages";
      var main = document.getElementById("main");
      main.parentNode.insertBefore(box, main);
    }
    var item = document.createElement("li");
    item.className = "message error";
    // The sentences come translated from the server (data-error-* on <body>, base.html);
    // the English fallback is for a page that has no such attribute.
    var unreachable = xhr.status === 503;
    var text = document.body.getAttribute(unreachable ? "data-error-unreachable" : "data-error-failed")
      || (unreachable
        ? "fail2ban or the session storage is not reachable right now (%(status)s)."
        : "The request failed (%(status)s).");
    var status = unreachable ? String(xhr.status) : (xhr.status + " " + xhr.statusText).trim();
    item.textContent = text.replace("%(status)s", status);
    box.replaceChildren(item);
  });
  // A chart's bars and the map's countries are parts of one image (role="img"), which holds
  // no links: a click on one follows its data-href (jails/history/charts.py checked it is a
  // relative or http(s) URL); the keyboard has the same links in the table under the chart.
  document.addEventListener("click", function (event) {
    var part = event.target.closest && event.target.closest("svg.chart [data-href]");
    if (part) { window.location.assign(part.getAttribute("data-href")); }
  });
  document.addEventListener("htmx:sendError", function () {
    var bar = document.getElementById("status-bar");
    if (bar) { bar.classList.add("stale"); }
  });
})();
