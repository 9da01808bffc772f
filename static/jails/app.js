// jailadmin: the little JavaScript the site needs (no inline scripts: the CSP forbids them).
(function () {
  "use strict";
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
    item.textContent = xhr.status === 503
      ? "fail2ban or the session storage is not reachable right now (" + xhr.status + ")."
      : "The request failed (" + xhr.status + " " + xhr.statusText + ").";
    box.replaceChildren(item);
  });
  document.addEventListener("htmx:sendError", function () {
    var bar = document.getElementById("status-bar");
    if (bar) { bar.classList.add("stale"); }
  });
})();
