// Démarche console: countdowns for running deadlines, and live refresh of the
// page's [data-live] regions when the server says a visible crisis changed.
// No framework; the pages work without this file (reload to refresh).
(function () {
  "use strict";

  function human(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (d > 0) return d + "d " + pad(h) + "h " + pad(m) + "m";
    if (h > 0) return h + "h " + pad(m) + "m " + pad(sec) + "s";
    return m + "m " + pad(sec) + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var risk = el.hasAttribute("data-at-risk") ? Date.parse(el.getAttribute("data-at-risk")) : NaN;
      var left = due - now;
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("at-risk", left >= 0 && !isNaN(risk) && now >= risk);
      el.textContent = left < 0 ? "overdue by " + human(left) : human(left) + " left";
    });
  }

  // A region is kept while someone is filling in one of its forms.
  function editing(region) {
    if (!region.hasAttribute("data-keep-when-editing")) return false;
    var a = document.activeElement;
    if (a && region.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) return true;
    var dirty = false;
    region.querySelectorAll("textarea, input:not([type=hidden])").forEach(function (f) {
      if (f.type === "radio" || f.type === "checkbox") { if (f.checked !== f.defaultChecked) dirty = true; }
      else if (f.value !== f.defaultValue) dirty = true;
    });
    region.querySelectorAll("select").forEach(function (s) {
      var def = 0; // the option the page chose, or the first
      for (var i = 0; i < s.options.length; i++) if (s.options[i].defaultSelected) def = i;
      if (s.selectedIndex !== def) dirty = true;
    });
    return dirty;
  }

  var status = null, pending = null, updates = 0;
  function say(text, off) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("off", !!off);
  }

  function refresh() {
    pending = null;
    // A refusal is shown at the form's address (…/decide, …/control): refresh
    // the crisis page it belongs to.
    var page = location.pathname.replace(/\/(decide|control)$/, "") + location.search;
    fetch(page, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (r) { if (!r.ok && r.status !== 404) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (region) {
          var fresh = doc.getElementById(region.id);
          if (!fresh || editing(region)) return;
          // Explanations someone opened stay open.
          var opened = [];
          region.querySelectorAll("details[id]").forEach(function (d) { opened.push([d.id, d.open]); });
          opened.forEach(function (o) { var f = fresh.querySelector("#" + CSS.escape(o[0])); if (f) f.open = o[1]; });
          if (fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
        });
        updates++;
        document.body.setAttribute("data-updates", String(updates));
        tick();
        say("Live updates: on · last change " + new Date().toLocaleTimeString());
      })
      .catch(function () { say("Live updates: refresh failed; retrying on the next event", true); });
  }

  function listen(src) {
    var es = new EventSource(src);
    es.addEventListener("ready", function () {
      say("Live updates: on");
      document.body.setAttribute("data-live-ready", "1");
      // Catch up on what changed between rendering the page and listening
      // (and during a reconnection): events of that moment were not sent here.
      if (pending) clearTimeout(pending);
      pending = setTimeout(refresh, 50);
    });
    es.addEventListener("crisis", function () {
      if (pending) clearTimeout(pending);
      pending = setTimeout(refresh, 300);
    });
    es.onerror = function () {
      // A refused stream (the session ended) is closed for good: say so.
      if (es.readyState === EventSource.CLOSED) say("Live updates: off — reload the page (your session may have ended)", true);
      else say("Live updates: reconnecting…", true);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    status = document.getElementById("live-status");
    tick();
    setInterval(tick, 1000);
    var src = document.body.getAttribute("data-live-src");
    if (src && window.EventSource) listen(src);
  });
})();
