// The dashboard's one script: while a release is being sent, poll its progress.json and
// update its <progress> bar and counts; ask before a button marked data-confirm acts. The page works without it (it shows the figures
// at the time it was rendered). Served from /admin/static/admin.js (CSP: script-src 'self').
// It also gives every script of the workspace its words: distributorText (below).
"use strict";

// A script's message in the page's language: the English text (a msgid of the catalogue,
// listed in web/workspace_i18n.py SCRIPT_MESSAGES) looked up in the words the page gives
// (<body data-strings>, rendered by the server: CSP allows no inline script), then its
// {name} places filled from values. English, or a message the page lacks, stays as written.
window.distributorText = function (message, values) {
  var words = window.distributorText.words;
  if (!words) {
    try {
      words = JSON.parse(document.body.getAttribute("data-strings") || "{}");
    } catch (e) {
      words = {};
    }
    window.distributorText.words = words;
  }
  var said = Object.prototype.hasOwnProperty.call(words, message) ? words[message] : message;
  return said.replace(/\{(\w+)\}/g, function (all, name) {
    return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all;
  });
};

(function () {
  var text = window.distributorText;
  var FAST = 1000; // ms between polls while the figures move
  var SLOW = 5000; // ... once they have not moved for a while (deferred retries)
  var STILL_POLLS = 10;

  function update(box, data) {
    var scope = box.closest("[data-progress-scope]") || box;
    var bar = box.querySelector("progress");
    bar.max = Math.max(data.planned, 1);
    if (data.planned > 0 || !data.sending) {
      bar.value = data.done;
    }
    bar.textContent = data.percent + "%";
    scope.querySelectorAll("[data-field]").forEach(function (el) {
      var name = el.getAttribute("data-field");
      if (name === "percent") {
        el.textContent = data.percent + "%";
      } else if (name === "status") {
        el.textContent = data.sending ? text("Sending…") : (data.planned ? text("Finished.") : "");
      } else if (Object.prototype.hasOwnProperty.call(data, name)) {
        el.textContent = String(data[name]);
      }
    });
  }

  function watch(box) {
    var url = box.getAttribute("data-progress-url");
    var last = "";
    var still = 0;

    function poll() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) {
            box.removeAttribute("data-live");
            box.querySelector("[data-field=status]").textContent = text("Logged out: reload the page.");
            return null;
          }
          if (!response.ok) {
            throw new Error("progress: HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (data) {
          if (data === null) {
            return;
          }
          update(box, data);
          if (!data.sending) {
            box.removeAttribute("data-live");
            return;
          }
          var now = [data.done, data.planned, data.deferred].join("/");
          still = now === last ? still + 1 : 0;
          last = now;
          window.setTimeout(poll, still >= STILL_POLLS ? SLOW : FAST);
        })
        .catch(function () {
          // Logged out, or the server is restarting: try again slowly; a reload shows why.
          window.setTimeout(poll, SLOW);
        });
    }

    window.setTimeout(poll, FAST);
  }

  // A button with data-confirm asks first (deleting a draft); without script it acts at
  // once, as the release page's own Delete does.
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-progress-url][data-live]").forEach(watch);
  });
})();
