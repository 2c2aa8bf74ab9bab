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

  var status = null, pending = null, updates = 0, ended = false;
  function say(text, off) {
    if (!status || ended) return;
    status.textContent = text;
    status.classList.toggle("off", !!off);
  }

  // The session ended (the stream said so, or a refresh landed on the
  // sign-in page): say it, and offer to sign in again; the drafts stay.
  function sessionEnded() {
    if (ended) return;
    say("Live updates: off — your session ended. ", true);
    ended = true;
    document.body.setAttribute("data-session-ended", "1");
    if (!status) return;
    var a = document.createElement("a");
    a.href = "/console/signin?expired=1&next=" + encodeURIComponent(location.pathname);
    a.id = "signin-again";
    a.textContent = "Sign in again (what you typed is kept in this browser)";
    status.appendChild(a);
  }

  // ---- drafts: what is typed in a form is kept in this browser (per crisis
  // and form) until the form is recorded, so neither a refusal, a reload nor
  // an expired session loses it.
  function draftKey(form) { return "demarche-draft:" + form.getAttribute("data-draft"); }
  function fields(form) {
    return [].filter.call(form.elements, function (f) {
      return f.name && f.name !== "csrf" && f.name !== "key" && f.name !== "kind" && f.type !== "hidden" && f.type !== "submit" && f.type !== "button";
    });
  }
  function saveDraft(form) {
    var d = {};
    fields(form).forEach(function (f) { d[f.name] = f.type === "checkbox" ? (f.checked ? "true" : "") : f.value; });
    try { localStorage.setItem(draftKey(form), JSON.stringify(d)); } catch (e) { /* storage full or off: no draft */ }
  }
  function restoreDraft(form) {
    if (form.hasAttribute("data-kept")) return; // the server filled it in again
    var raw = null;
    try { raw = localStorage.getItem(draftKey(form)); } catch (e) { return; }
    if (!raw) return;
    var d; try { d = JSON.parse(raw); } catch (e) { return; }
    var restored = false;
    fields(form).forEach(function (f) {
      if (!(f.name in d) || d[f.name] === "") return;
      if (f.type === "checkbox") { f.checked = d[f.name] === "true"; restored = true; }
      else if (!f.value || f.tagName === "SELECT") { f.value = d[f.name]; restored = true; }
    });
    if (restored && !form.querySelector(".draft-note")) {
      var p = document.createElement("p");
      p.className = "draft-note";
      p.setAttribute("data-client", "");
      p.textContent = "Your draft was put back (kept in this browser). ";
      var b = document.createElement("button");
      b.type = "button"; b.className = "link-button"; b.textContent = "Clear the draft";
      b.addEventListener("click", function () { try { localStorage.removeItem(draftKey(form)); } catch (e) { /* nothing */ } form.reset(); p.remove(); });
      p.appendChild(b);
      form.insertBefore(p, form.firstChild);
    }
  }
  function wireDrafts(root) {
    (root || document).querySelectorAll("form[data-draft]").forEach(function (form) {
      if (form.__drafts) return;
      form.__drafts = true;
      restoreDraft(form);
      form.addEventListener("input", function () { saveDraft(form); });
      form.addEventListener("change", function () { saveDraft(form); });
      form.addEventListener("submit", function () {
        saveDraft(form);
        try { sessionStorage.setItem("demarche-sent", draftKey(form)); } catch (e) { /* nothing */ }
      });
    });
  }
  // A form recorded (the page says done=…) drops its draft; one refused or
  // not sent (the session ended) keeps it.
  function settleDraft() {
    var sent = null;
    try { sent = sessionStorage.getItem("demarche-sent"); } catch (e) { return; }
    if (!sent) return;
    if (/[?&]done=/.test(location.search) && !/[?&]failed=/.test(location.search)) {
      try { localStorage.removeItem(sent); } catch (e) { /* nothing */ }
    }
    if (location.pathname !== "/console/signin") {
      try { sessionStorage.removeItem("demarche-sent"); } catch (e) { /* nothing */ }
    }
  }

  // ---- the roster picker: a roster field's "Find on the roster" opens the
  // roster's search beside the field; a pick adds the expert's id to it.
  function openPicker(link) {
    var forId = link.getAttribute("data-for");
    var input = document.getElementById(forId);
    if (!input) return;
    var box = document.getElementById("picker-" + forId);
    if (box) { box.remove(); link.setAttribute("aria-expanded", "false"); return; }
    box = document.createElement("div");
    box.id = "picker-" + forId;
    box.className = "picker";
    box.setAttribute("data-client", ""); // a live refresh leaves it be
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", "Roster search for " + (input.labels && input.labels[0] ? input.labels[0].textContent.trim() : forId));
    link.parentNode.after(box);
    link.setAttribute("aria-expanded", "true");
    var kind = link.getAttribute("data-kind") || "";
    function load(query) {
      fetch("/console/roster?" + query, { credentials: "same-origin" })
        .then(function (r) {
          if (r.redirected && r.url.indexOf("/console/signin") >= 0) { sessionEnded(); throw new Error("signed out"); }
          return r.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var search = doc.getElementById("roster-search"), results = doc.getElementById("roster-results");
          if (!search || !results) { box.textContent = "The roster could not be read."; return; }
          results.id = "roster-results-" + forId;
          // The picker sits inside the decision form: its search is no form
          // of its own (forms do not nest) and its controls have no names,
          // so the decision form never sends them; its button searches.
          var div = document.createElement("div");
          div.className = search.className + " picker-search";
          div.id = "roster-search-" + forId;
          div.setAttribute("role", "search");
          [].slice.call(search.childNodes).forEach(function (n) { div.appendChild(document.importNode(n, true)); });
          div.querySelectorAll("input, select").forEach(function (c) { c.setAttribute("data-name", c.name); c.removeAttribute("name"); });
          var go = div.querySelector("button");
          go.type = "button";
          function query() {
            var q = new URLSearchParams();
            div.querySelectorAll("[data-name]").forEach(function (c) {
              if (c.type === "checkbox") { if (c.checked) q.set(c.getAttribute("data-name"), c.value); }
              else if (c.value) q.set(c.getAttribute("data-name"), c.value);
            });
            return q.toString();
          }
          go.addEventListener("click", function () { box.removeAttribute("data-loaded"); load(query()); });
          div.addEventListener("keydown", function (ev) {
            if (ev.key === "Enter" && ev.target.tagName === "INPUT") { ev.preventDefault(); go.click(); }
          });
          box.innerHTML = "";
          box.appendChild(div);
          box.appendChild(document.importNode(results, true));
          box.setAttribute("data-loaded", "1");
        })
        .catch(function () { if (!ended) box.textContent = "The roster could not be read; try again."; });
    }
    load("for=" + encodeURIComponent(forId) + (kind ? "&kind=" + encodeURIComponent(kind) : ""));
  }
  function pick(btn) {
    var input = document.getElementById(btn.getAttribute("data-for"));
    if (!input) return;
    var id = btn.getAttribute("data-id");
    if (input.tagName === "TEXTAREA") {
      var have = input.value.split(/[\n,]/).map(function (v) { return v.trim(); }).filter(Boolean);
      if (have.indexOf(id) < 0) have.push(id);
      input.value = have.join("\n");
    } else {
      if (input.hasAttribute("data-roster-many")) {
        var list = input.value.split(",").map(function (v) { return v.trim(); }).filter(Boolean);
        if (list.indexOf(id) < 0) list.push(id);
        input.value = list.join(", ");
      } else input.value = id;
    }
    input.dispatchEvent(new Event("input", { bubbles: true }));
    btn.textContent = "Picked";
    btn.setAttribute("aria-pressed", "true");
  }
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.classList && t.classList.contains("roster-link") && document.getElementById(t.getAttribute("data-for"))) {
      ev.preventDefault();
      openPicker(t);
    } else if (t.classList && t.classList.contains("pick") && document.getElementById(t.getAttribute("data-for"))) {
      ev.preventDefault();
      pick(t);
    }
  });

  // What a region holds, without what changes on every render or in this
  // browser alone: each form's fresh idempotency key (hidden "key"), the
  // countdowns tick() rewrites, what this browser added or opened (a draft's
  // note, a picker, an opened explanation). A refresh that brings nothing
  // else new leaves the region alone.
  function settled(el) {
    var c = el.cloneNode(true);
    c.querySelectorAll("input[type=hidden][name=key]").forEach(function (i) { i.setAttribute("value", ""); i.value = ""; });
    c.querySelectorAll("[data-due]").forEach(function (d) { d.textContent = ""; d.classList.remove("overdue", "at-risk"); });
    c.querySelectorAll("[data-client]").forEach(function (n) { n.remove(); });
    c.querySelectorAll("details").forEach(function (d) { d.removeAttribute("open"); });
    c.querySelectorAll(".roster-link").forEach(function (a) { a.removeAttribute("aria-expanded"); });
    return c.innerHTML;
  }

  // ---- patching a live region in place. A refresh changes only what
  // changed: a node that is the same (same tag and, where it has one, the
  // same key: id, form action, a control's name and value, the data-*
  // mark of a card) stays the same node, so the button someone is about to
  // click, the field they type in, a picker they opened and what they typed
  // are never swapped under them. A button that changes meaning (Claim →
  // Release) is keyed by its value, so it is replaced, never morphed into
  // the other: a click on the old one then does nothing rather than the
  // opposite. Nodes this browser added (a picker, a draft note) carry
  // data-client and are left where they are.
  function clientOnly(n) { return n.nodeType === 1 && n.hasAttribute("data-client"); }
  var marks = ["data-request", "data-crisis", "data-kind", "data-situation", "data-expert"];
  function keyOf(n) {
    if (n.nodeType !== 1) return null;
    if (n.id) return "#" + n.id;
    var tag = n.tagName;
    if (tag === "FORM") return "FORM " + (n.getAttribute("action") || "");
    var name = n.getAttribute("name");
    if (name && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(tag)) {
      var t = (n.getAttribute("type") || "").toLowerCase();
      return tag + " " + name + (tag === "BUTTON" || t === "radio" || t === "checkbox" || t === "submit" ? "=" + (n.getAttribute("value") || "") : "");
    }
    for (var i = 0; i < marks.length; i++) if (n.hasAttribute(marks[i])) return tag + " " + marks[i] + "=" + n.getAttribute(marks[i]);
    return null;
  }
  function alike(a, b) {
    if (a.nodeType !== b.nodeType) return false;
    if (a.nodeType !== 1) return true;
    return a.tagName === b.tagName && keyOf(a) === keyOf(b);
  }
  // Attributes this browser manages on server-rendered nodes: kept as they are.
  function clientAttr(el, name) {
    return (name === "open" && el.tagName === "DETAILS") || (name === "aria-expanded" && el.classList.contains("roster-link"));
  }
  function syncAttrs(cur, fresh) {
    // An idempotency key stays the one the form was shown with.
    var keepValue = cur.tagName === "INPUT" && cur.type === "hidden" && cur.name === "key";
    for (var i = cur.attributes.length - 1; i >= 0; i--) {
      var a = cur.attributes[i].name;
      if (!fresh.hasAttribute(a) && !clientAttr(cur, a)) cur.removeAttribute(a);
    }
    for (var j = 0; j < fresh.attributes.length; j++) {
      var f = fresh.attributes[j];
      if (clientAttr(cur, f.name) || (keepValue && f.name === "value")) continue;
      if (cur.getAttribute(f.name) !== f.value) cur.setAttribute(f.name, f.value);
    }
  }
  function morphNode(cur, fresh) {
    if (cur.nodeType !== 1) {
      if (cur.nodeValue !== fresh.nodeValue) cur.nodeValue = fresh.nodeValue;
      return;
    }
    // A running countdown: tick() writes its text and classes.
    if (cur.hasAttribute("data-due") && cur.getAttribute("data-due") === fresh.getAttribute("data-due") &&
        cur.getAttribute("data-at-risk") === fresh.getAttribute("data-at-risk")) return;
    var tag = cur.tagName;
    // What is typed or chosen stays: only a field left as it was shown
    // takes the new default.
    var typed = null;
    if (tag === "INPUT" && (cur.type === "checkbox" || cur.type === "radio")) { if (cur.checked !== cur.defaultChecked) typed = cur.checked; }
    else if ((tag === "INPUT" && cur.type !== "hidden") || tag === "TEXTAREA") { if (cur.value !== cur.defaultValue) typed = cur.value; }
    else if (tag === "SELECT") { if (cur.selectedIndex !== defaultIndex(cur)) typed = cur.value; }
    syncAttrs(cur, fresh);
    if (tag === "TEXTAREA") {
      if (cur.defaultValue !== fresh.defaultValue) cur.defaultValue = fresh.defaultValue;
    } else morphChildren(cur, fresh);
    if (typed === null) {
      if (tag === "TEXTAREA" || (tag === "INPUT" && cur.type !== "checkbox" && cur.type !== "radio" && cur.type !== "hidden")) { if (cur.value !== cur.defaultValue) cur.value = cur.defaultValue; }
      else if (tag === "INPUT" && cur.type !== "hidden") cur.checked = cur.defaultChecked;
      else if (tag === "SELECT") cur.selectedIndex = defaultIndex(cur);
    } else if (tag === "INPUT" && (cur.type === "checkbox" || cur.type === "radio")) cur.checked = typed;
    else if (cur.value !== typed) {
      cur.value = typed;
      if (tag === "SELECT" && cur.value !== typed) cur.selectedIndex = defaultIndex(cur); // the choice is no longer offered
    }
  }
  function defaultIndex(s) {
    var def = s.options.length ? 0 : -1; // the option the page chose, or the first
    for (var i = 0; i < s.options.length; i++) if (s.options[i].defaultSelected) def = i;
    return def;
  }
  function morphChildren(cur, fresh) {
    var keyed = {};
    for (var c = cur.firstChild; c; c = c.nextSibling) {
      var k = clientOnly(c) ? null : keyOf(c);
      if (k && !(k in keyed)) keyed[k] = c;
    }
    var cursor = cur.firstChild;
    var skip = function () { while (cursor && clientOnly(cursor)) cursor = cursor.nextSibling; };
    for (var f = fresh.firstChild; f; f = f.nextSibling) {
      skip();
      var k2 = keyOf(f), match = null;
      if (k2) {
        if (keyed[k2] && keyed[k2].tagName === f.tagName) { match = keyed[k2]; delete keyed[k2]; }
      } else {
        // the next unkeyed node of the same kind; unkeyed nodes passed on
        // the way are gone from the fresh render
        for (var s = cursor; s; s = s.nextSibling) {
          if (clientOnly(s) || keyOf(s)) continue;
          if (alike(s, f)) { match = s; break; }
        }
        if (match) {
          while (cursor && cursor !== match) {
            var nx = cursor.nextSibling;
            if (!clientOnly(cursor) && !keyOf(cursor)) cur.removeChild(cursor);
            cursor = nx;
          }
        }
      }
      if (match) {
        if (match === cursor) cursor = cursor.nextSibling;
        else cur.insertBefore(match, cursor); // moved: a reordered list
        morphNode(match, f);
      } else {
        cur.insertBefore(document.importNode(f, true), cursor);
      }
    }
    // What the fresh render no longer has goes.
    while (cursor) { var n = cursor.nextSibling; if (!clientOnly(cursor)) cur.removeChild(cursor); cursor = n; }
    Object.keys(keyed).forEach(function (k) { if (keyed[k].parentNode === cur) cur.removeChild(keyed[k]); });
  }

  // While a pointer is down (a click under way) no region changes: the
  // fresh page waits until the click is over, so what was pressed is what
  // is clicked.
  var pressed = false, waiting = null;
  document.addEventListener("pointerdown", function () { pressed = true; }, true);
  function released() {
    if (!pressed) return;
    pressed = false;
    // after the click's own handlers (a submit goes first)
    if (waiting) setTimeout(function () { var d = waiting; waiting = null; if (d && !pressed) apply(d); }, 0);
  }
  ["pointerup", "pointercancel", "click"].forEach(function (t) { document.addEventListener(t, released, true); });
  window.addEventListener("blur", released);

  function refresh() {
    pending = null;
    // A refusal is shown at the form's address (…/decide, …/control): refresh
    // the crisis page it belongs to.
    var page = location.pathname.replace(/\/(decide|control)$/, "") + location.search;
    fetch(page, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (r) {
        if (r.redirected && r.url.indexOf("/console/signin") >= 0) { sessionEnded(); throw new Error("signed out"); }
        if (!r.ok && r.status !== 404) throw new Error(r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        if (pressed) { waiting = doc; return; }
        waiting = null;
        apply(doc);
      })
      .catch(function (e) {
        document.body.setAttribute("data-refresh-error", String(e));
        say("Live updates: refresh failed; retrying on the next event", true);
      });
  }

  function apply(doc) {
    // Only the same kind of page removes panels (an error page has none).
    var sameKind = !!doc.querySelector("#pending[data-live], #board[data-live], #inbox[data-live]");
    var patched = 0;
    document.querySelectorAll("[data-live][id]").forEach(function (region) {
      var fresh = doc.getElementById(region.id);
      if (editing(region)) return;
      // A panel the page no longer has (Controls and Sharing once the
      // crisis is closed) goes.
      if (!fresh) { if (sameKind) region.remove(); return; }
      if (settled(fresh) !== settled(region)) { morphChildren(region, fresh); wireDrafts(region); patched++; }
    });
    mineNotices();
    updates++;
    document.body.setAttribute("data-updates", String(updates));
    document.body.setAttribute("data-patched", String(Number(document.body.getAttribute("data-patched") || 0) + patched));
    tick();
    say("Live updates: on · last change " + new Date().toLocaleTimeString());
  }

  // Notifications: what matters to this person, from the live stream (a
  // new crisis, a deadline at risk or breached) and from the refreshed page
  // (a decision newly waiting for one of the person's roles, approvals
  // included). Shown in the page with a count in the title; a sound and
  // browser notifications only when the person turns them on (never asked
  // on load). Preferences are this browser's, per signed-in subject.
  var notices = { list: [], unread: 0, mine: null, title: document.title };
  function prefKey(name) {
    var sec = document.getElementById("notices");
    return "demarche.notify." + (sec ? sec.getAttribute("data-subject") : "") + "." + name;
  }
  function pref(name) { try { return localStorage.getItem(prefKey(name)) === "on"; } catch (e) { return false; } }
  function setPref(name, on) { try { localStorage.setItem(prefKey(name), on ? "on" : "off"); } catch (e) { /* private mode: for this page only */ } }
  function beep() {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return;
    var ctx = new AC(), o = ctx.createOscillator(), g = ctx.createGain();
    o.frequency.value = 880; g.gain.value = 0.05;
    o.connect(g); g.connect(ctx.destination); o.start(); o.stop(ctx.currentTime + 0.2);
  }
  function showNotices() {
    var list = document.getElementById("notice-list"), count = document.getElementById("notice-count");
    if (!list) return;
    list.innerHTML = "";
    notices.list.slice(0, 20).forEach(function (n) {
      var li = document.createElement("li"), a = document.createElement("a");
      a.href = n.href; a.textContent = n.text;
      li.appendChild(a);
      li.appendChild(document.createTextNode(" · " + n.at.toLocaleTimeString()));
      list.appendChild(li);
    });
    count.textContent = String(notices.unread);
    document.title = (notices.unread ? "(" + notices.unread + ") " : "") + notices.title;
    document.body.setAttribute("data-notices", String(notices.list.length));
  }
  function notify(text, href) {
    notices.list.unshift({ text: text, href: href, at: new Date() });
    notices.unread++;
    showNotices();
    if (pref("sound")) beep();
    if (pref("browser") && window.Notification && Notification.permission === "granted") {
      var n = new Notification("Démarche", { body: text, tag: href + "|" + text });
      n.onclick = function () { window.focus(); location.href = href; };
    }
  }
  var eventWords = { crisis_opened: "New crisis", deadline_at_risk: "Deadline at risk on", deadline_breached: "Deadline breached on" };
  function eventNotice(ev) {
    if (ev && eventWords[ev.event]) notify(eventWords[ev.event] + " " + ev.crisis, "/console/crises/" + encodeURIComponent(ev.crisis));
  }
  function mineKeys() {
    var keys = {};
    document.querySelectorAll("[data-mine]").forEach(function (el) { keys[el.getAttribute("data-mine")] = el.getAttribute("data-mine-text"); });
    return keys;
  }
  // A decision newly waiting for one of the person's roles (what was
  // waiting when the page opened is on the page already).
  function mineNotices() {
    var now = mineKeys();
    if (notices.mine) {
      Object.keys(now).forEach(function (k) {
        if (!(k in notices.mine)) notify("Waiting for you: " + now[k], "/console/crises/" + encodeURIComponent(k.split("|")[0]));
      });
    }
    notices.mine = now;
  }
  function wireNotices() {
    if (!document.getElementById("notices")) return;
    notices.mine = mineKeys();
    var browser = document.getElementById("notify-browser"), sound = document.getElementById("notify-sound");
    function label() {
      var b = pref("browser") && window.Notification && Notification.permission === "granted";
      browser.textContent = "Browser notifications: " + (b ? "on" : "off");
      browser.setAttribute("aria-pressed", b ? "true" : "false");
      if (!window.Notification) { browser.disabled = true; browser.textContent = "Browser notifications: not offered by this browser"; }
      sound.textContent = "Sound: " + (pref("sound") ? "on" : "off");
      sound.setAttribute("aria-pressed", pref("sound") ? "true" : "false");
    }
    browser.addEventListener("click", function () {
      if (pref("browser") && Notification.permission === "granted") { setPref("browser", false); label(); return; }
      // Asked only here, on the person's click, never on load.
      Notification.requestPermission().then(function (p) { setPref("browser", p === "granted"); label(); });
    });
    sound.addEventListener("click", function () { setPref("sound", !pref("sound")); label(); });
    document.getElementById("notices-read").addEventListener("click", function () { notices.unread = 0; showNotices(); });
    label();
    showNotices();
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
    es.addEventListener("crisis", function (e) {
      try { eventNotice(JSON.parse(e.data)); } catch (err) { /* not a notice */ }
      if (pending) clearTimeout(pending);
      pending = setTimeout(refresh, 300);
    });
    es.addEventListener("session-ended", function () { es.close(); sessionEnded(); });
    es.onerror = function () {
      // A refused stream (the session ended) is closed for good: say so.
      if (es.readyState === EventSource.CLOSED) say("Live updates: off — reload the page (your session may have ended)", true);
      else say("Live updates: reconnecting…", true);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    status = document.getElementById("live-status");
    settleDraft();
    wireDrafts(document);
    // A refused form is shown where it is: bring it into view, on its first field in error.
    var bad = document.querySelector("[aria-invalid=true]") || document.querySelector(".form-error");
    if (bad && /[?&]failed=/.test(location.search)) { bad.scrollIntoView({ block: "center" }); if (bad.focus) bad.focus(); }
    tick();
    setInterval(tick, 1000);
    wireNotices();
    var src = document.body.getAttribute("data-live-src");
    if (src && window.EventSource) listen(src);
  });
})();
