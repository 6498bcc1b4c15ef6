// crm-sync ops console: refresh marked fragments, load deferred ones, select-all. No framework, no build step.
(function () {
  "use strict";
  function load(el, url) {
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "ops.js" } })
      .then(function (response) {
        if (response.status === 401) { window.location.assign("/ops/login"); return null; }
        return response.text().then(function (html) { return { ok: response.ok, html: html }; });
      })
      .then(function (result) {
        if (!result) { return; }
        el.innerHTML = result.html;
        el.setAttribute("data-loaded", result.ok ? "ok" : "error");
        if (el.querySelector("[data-finished]")) { el.removeAttribute("data-refresh"); }
      })
      .catch(function () { el.setAttribute("data-loaded", "error"); });
  }
  document.querySelectorAll("[data-load]").forEach(function (el) { load(el, el.getAttribute("data-load")); });
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    var every = parseInt(el.getAttribute("data-every") || "5", 10) * 1000;
    var timer = window.setInterval(function () {
      if (!el.hasAttribute("data-refresh")) { window.clearInterval(timer); return; }
      if (document.visibilityState === "visible") { load(el, el.getAttribute("data-refresh")); }
    }, every);
  });
  var all = document.querySelector("[data-select-all]");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=call_id]").forEach(function (box) { box.checked = all.checked; });
    });
  }
})();
