// The release editor, live (web/editor_live.py): the preview beside the form follows the
// typing, the draft is saved every few seconds, and what is typed is kept in this browser
// (localStorage, per draft) until the server has it, to be offered back if the page is
// opened again after a failed save. Served from /admin/static/editor.js (CSP: script-src
// 'self'). Without it the form still works: Save, and the "Preview" button, which posts the
// form into the preview frame.
"use strict";

(function () {
  var PREVIEW_DELAY = 600; // ms after typing stops before the preview is asked for
  var SAVE_DELAY = 1500; // ms after the last change before an autosave...
  var SAVE_EVERY = 5000; // ... or at most this long between two while typing goes on
  var RETRY = 5000; // ms before trying again after the server did not answer
  var SKIPPED = { csrf: true, version: true, view: true }; // not the release's text
  var text = window.distributorText; // the page's words (admin.js, loaded first)

  var form = document.getElementById("editor-form");
  if (!form) {
    return;
  }
  var base = form.getAttribute("data-base"); // /admin/releases/new or /admin/releases/ID
  var zone = form.getAttribute("data-timezone");
  var statusLine = document.getElementById("autosave-status");
  var version = form.querySelector("input[name=version]");
  var previewButton = document.getElementById("preview-button");
  var reachBox = document.getElementById("preview-reach");
  var pane = document.getElementById("preview");
  var frames = 0;

  // --- what is typed -------------------------------------------------------------------

  function fields() {
    var found = [];
    new FormData(form).forEach(function (value, name) {
      if (!SKIPPED[name] && typeof value === "string") {
        found.push([name, value]);
      }
    });
    return found;
  }

  function encoded() {
    var body = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string") {
        body.append(name, value);
      }
    });
    return body;
  }

  function apply(list) {
    var byName = {};
    list.forEach(function (pair) {
      (byName[pair[0]] = byName[pair[0]] || []).push(pair[1]);
    });
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || SKIPPED[el.name]) {
        return;
      }
      var values = byName[el.name] || [];
      if (el.type === "checkbox" || el.type === "radio") {
        el.checked = values.indexOf(el.value) !== -1;
      } else if (el.type !== "file" && values.length) {
        el.value = values.shift(); // fields of one name take their values in order
      }
    });
  }

  // --- the copy kept in this browser ---------------------------------------------------

  function key() {
    return "distributor:editor:" + base;
  }

  function readLocal() {
    try {
      return JSON.parse(window.localStorage.getItem(key()) || "null");
    } catch (e) {
      return null;
    }
  }

  function keepLocally() {
    try {
      window.localStorage.setItem(key(), JSON.stringify({ at: Date.now(), fields: fields() }));
    } catch (e) {
      // Storage full or off: the server's copy is then the only one.
    }
  }

  function forgetLocally(name) {
    try {
      window.localStorage.removeItem(name || key());
    } catch (e) {
      // nothing kept, nothing to forget
    }
  }

  function clock(ms, withSeconds) {
    var options = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (withSeconds) {
      options.second = "2-digit";
    }
    try {
      return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: zone }, options)).format(ms);
    } catch (e) {
      return new Intl.DateTimeFormat("en-GB", options).format(ms);
    }
  }

  function offerRestore() {
    var kept = readLocal();
    if (!kept || !kept.fields) {
      return;
    }
    if (JSON.stringify(kept.fields) === JSON.stringify(fields())) {
      forgetLocally(); // the server has it
      return;
    }
    var offer = document.getElementById("restore-offer");
    document.getElementById("restore-text").textContent =
      text("What you typed at {time} was not saved: it is kept in this browser.", { time: clock(kept.at, false) });
    document.getElementById("restore-yes").textContent =
      text("Restore what you typed at {time}", { time: clock(kept.at, false) });
    offer.hidden = false;
    document.getElementById("restore-yes").addEventListener("click", function () {
      apply(kept.fields);
      offer.hidden = true;
      changed();
    });
    document.getElementById("restore-no").addEventListener("click", function () {
      forgetLocally();
      offer.hidden = true;
    });
  }

  // --- autosave ------------------------------------------------------------------------

  var dirty = false;
  var paused = false; // after a conflict: only Save (knowingly) goes on
  var lastChange = 0;
  var lastSave = Date.now();
  var retryAt = 0;
  var inFlight = null;

  function say(text, failed) {
    statusLine.textContent = text;
    statusLine.classList.toggle("failed", Boolean(failed));
  }

  function changed() {
    keepLocally();
    dirty = true;
    lastChange = Date.now();
    schedulePreview(PREVIEW_DELAY);
  }

  function becameDraft(answer) {
    // The first autosave of a new release created it: from now on this page edits it.
    var before = key();
    base = answer.edit_url.replace(/\/edit$/, "");
    form.setAttribute("data-base", base);
    form.action = answer.edit_url;
    previewButton.setAttribute("formaction", base + "/preview");
    window.history.replaceState(null, "", answer.edit_url);
    forgetLocally(before);
    // A preview of "a new release" the server answered after this draft was stored met the
    // draft's own slug and said it was taken: preview again, as the draft it now is.
    schedulePreview(0);
  }

  function showConflict(answer) {
    var old = document.getElementById("live-conflict");
    if (old) {
      old.remove();
    }
    var box = document.createElement("section");
    box.className = "conflict";
    box.id = "live-conflict";
    box.setAttribute("aria-labelledby", "live-conflict-title");
    var title = document.createElement("h2");
    title.id = "live-conflict-title";
    title.textContent = text("Someone else saved this draft");
    var said = document.createElement("p");
    said.textContent = text("{error}. Their version is below; yours is in the form. " +
      "Autosave is paused: copy what you need from theirs into yours, then press Save, " +
      "which replaces theirs.", { error: answer.error });
    var list = document.createElement("dl");
    list.className = "theirs";
    [["Title", "title"], ["Lead", "lead"], ["Body", "body"]].forEach(function (pair) {
      var dt = document.createElement("dt");
      dt.textContent = text(pair[0]);
      var dd = document.createElement("dd");
      var pre = document.createElement("pre");
      pre.textContent = answer.theirs[pair[1]] || "";
      dd.appendChild(pre);
      list.appendChild(dt);
      list.appendChild(dd);
    });
    box.appendChild(title);
    box.appendChild(said);
    box.appendChild(list);
    form.parentNode.parentNode.insertBefore(box, form.parentNode);
  }

  function answered(response) {
    return response.json().then(
      function (data) { return { status: response.status, data: data }; },
      function () { return { status: response.status, data: null }; }
    );
  }

  function autosave() {
    var sent = JSON.stringify(fields());
    dirty = false;
    inFlight = fetch(base + "/autosave.json", {
      method: "POST",
      body: encoded(),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(answered)
      .then(function (answer) {
        var data = answer.data || {};
        if ((answer.status === 200 || answer.status === 201) && data.version) {
          version.value = data.version;
          if (/\/new$/.test(base)) {
            becameDraft(data);
          }
          lastSave = Date.now();
          if (JSON.stringify(fields()) === sent) {
            forgetLocally(); // the server has all of it
          } else {
            keepLocally();
          }
          say(text("Saved at {time}", { time: data.saved_at }), false);
        } else if (answer.status === 409 && data.theirs) {
          paused = true;
          version.value = data.version; // Save now replaces theirs, knowingly
          showConflict(data);
          say(text("Not saved: {error}. Autosave is paused.", { error: data.error }), true);
        } else if (answer.status === 401) {
          dirty = true;
          retryAt = Date.now() + RETRY;
          say(text("Not saved: you are logged out. Log in again in another tab; what you typed " +
            "is kept in this browser."), true);
        } else if (data.error && answer.status < 500) {
          // Input that cannot be stored as a release: kept here until it is corrected.
          say(text("Not saved: {error} (what you typed is kept in this browser)", { error: data.error }), true);
        } else {
          dirty = true;
          retryAt = Date.now() + RETRY;
          say(text("Not saved: the server failed (HTTP {status}); what you typed is " +
            "kept in this browser, and saving is tried again.", { status: answer.status }), true);
        }
      })
      .catch(function () {
        dirty = true;
        retryAt = Date.now() + RETRY;
        say(text("Not saved: the server does not answer; what you typed is kept in this browser, " +
          "and saving is tried again."), true);
      })
      .then(function () {
        inFlight = null;
      });
  }

  function tick() {
    var now = Date.now();
    if (!dirty || inFlight || paused || now < retryAt) {
      return;
    }
    if (now - lastChange >= SAVE_DELAY || now - lastSave >= SAVE_EVERY) {
      autosave();
    }
  }

  // --- the preview ---------------------------------------------------------------------

  var previewTimer = null;

  function schedulePreview(delay) {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(preview, delay);
  }

  function showFrame() {
    // A new frame for each preview, swapped in once loaded: no flicker, and no entry in the
    // browser's history per keystroke (a new frame's first page replaces its blank one).
    var current = document.getElementById("preview-frame");
    var next = current.cloneNode(false);
    frames += 1;
    next.removeAttribute("id");
    next.name = "preview-frame-" + frames;
    next.hidden = true;
    current.parentNode.appendChild(next); // (its blank page's load event comes now: not ours)
    next.addEventListener("load", function swap() {
      next.removeEventListener("load", swap);
      if (next.name !== "preview-frame-" + frames) {
        next.remove(); // a later preview was asked for meanwhile
        return;
      }
      var shown = document.getElementById("preview-frame");
      if (shown && shown !== next) {
        shown.remove();
      }
      next.id = "preview-frame";
      next.hidden = false;
    });
    previewButton.setAttribute("formtarget", next.name);
    form.requestSubmit(previewButton);
  }

  function preview() {
    if (inFlight && /\/new$/.test(base)) {
      // The first autosave is storing the draft: a preview now would race it (above).
      inFlight.then(function () { schedulePreview(0); });
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("iframe.preview:not(#preview-frame)"),
      function (frame) { frame.remove(); });
    showFrame();
    fetch(base + "/preview.json", {
      method: "POST",
      body: encoded(),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(answered)
      .then(function (answer) {
        var data = answer.data || {};
        reachBox.textContent = "";
        if (data.reach_html) {
          reachBox.innerHTML = data.reach_html; // rendered by the server, autoescaped
        } else {
          var p = document.createElement("p");
          p.className = "error";
          p.id = "preview-problem";
          p.textContent = text("Cannot preview yet: {error}", { error: data.error || "HTTP " + answer.status });
          reachBox.appendChild(p);
        }
      })
      .catch(function () {
        reachBox.textContent = text("The preview is not available: the server does not answer.");
      });
  }

  // --- wiring --------------------------------------------------------------------------

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  pane.addEventListener("change", function (event) {
    if (event.target.name === "view") {
      schedulePreview(0);
    }
  });
  form.addEventListener("submit", function (event) {
    if (event.submitter === previewButton) {
      return;
    }
    if (inFlight) {
      // Save waits for the autosave under way: its version is the one Save must send.
      event.preventDefault();
      var submitter = event.submitter;
      inFlight.then(function () { form.requestSubmit(submitter); });
      return;
    }
    dirty = false;
    paused = true;
  });
  // A file dropped on the form (uploads.js) adds its row: a change like typing.
  if (window.MutationObserver) {
    var rows = new MutationObserver(function () { changed(); });
    ["image-rows", "document-rows"].forEach(function (id) {
      var list = document.getElementById(id);
      if (list) {
        rows.observe(list, { childList: true });
      }
    });
  }
  offerRestore();
  window.setInterval(tick, 500);
  if (!/\/new$/.test(base)) {
    schedulePreview(0); // a draft is shown at once; a new release once something is typed
  }
})();
