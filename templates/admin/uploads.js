// The release form's drop zone: each file dropped on it is uploaded at once to
// /admin/uploads (with the form's CSRF value), and its row (as the server renders it) added
// to the form's images or documents; each file shows its progress, then what became of it
// or why it was refused. Without this script the zone stays hidden, and the form's file
// field does the same when the form is saved. Served from /admin/static/uploads.js
// (CSP: script-src 'self').
"use strict";

(function () {
  var MIB = 1048576;
  var say = window.distributorText; // the page's words (admin.js, loaded first)

  function shownFor(list, name) {
    var item = document.createElement("li");
    var label = document.createElement("span");
    label.textContent = name + ": ";
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", say("Uploading {name}", { name: name }));
    var text = document.createElement("span");
    text.textContent = say(" uploading…");
    item.appendChild(label);
    item.appendChild(bar);
    item.appendChild(text);
    list.appendChild(item);
    return { item: item, label: label, bar: bar, text: text };
  }

  function fail(shown, message) {
    shown.item.classList.add("failed");
    shown.bar.remove();
    shown.label.textContent = "";
    shown.text.textContent = say("Refused: {error}", { error: message });
  }

  // The row of an uploaded file, unless the form has it already (the same file twice).
  function addRow(form, answer) {
    if (form.querySelector('[data-key="' + answer.key + '"]')) {
      return false;
    }
    var rows = form.querySelector(answer.kind === "image" ? "#image-rows" : "#document-rows");
    rows.insertAdjacentHTML("beforeend", answer.html);
    var lead = rows.lastElementChild.querySelector('input[name="lead_image"]');
    if (lead && !form.querySelector('input[name="lead_image"]:checked')) {
      lead.checked = true; // the first image is the lead until another is chosen
    }
    return true;
  }

  function upload(zone, form, list, file) {
    var shown = shownFor(list, file.name);
    var most = Number(zone.getAttribute("data-max-bytes"));
    if (most && file.size > most) {
      fail(shown, say("{name}: larger than {size} MiB, the most a file may have", { name: file.name, size: Math.floor(most / MIB) }));
      return;
    }
    var data = new FormData();
    data.append("csrf", form.querySelector('input[name="csrf"]').value);
    data.append("file", file, file.name);
    var request = new XMLHttpRequest();
    request.open("POST", zone.getAttribute("data-upload-url"));
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        shown.bar.value = Math.round((100 * event.loaded) / event.total);
      }
    });
    request.addEventListener("load", function () {
      var answer = null;
      try {
        answer = JSON.parse(request.responseText);
      } catch (err) {
        answer = null;
      }
      if (request.status === 201 && answer) {
        shown.bar.value = 100;
        shown.item.classList.add("done");
        if (!addRow(form, answer)) {
          shown.text.textContent = say(" already in the form.");
        } else if (answer.kind === "image") {
          shown.text.textContent = say(" added below: give it its alt text and credit, then save.");
        } else {
          shown.text.textContent = say(" added below; save the form to keep it.");
        }
      } else if (answer && answer.error) {
        fail(shown, answer.error);
      } else {
        fail(shown, request.responseText.trim() || say("the server answered {status}", { status: request.status }));
      }
    });
    request.addEventListener("error", function () {
      fail(shown, say("{name}: the upload did not get through; check the connection and drop it again.", { name: file.name }));
    });
    request.send(data);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var zone = document.getElementById("dropzone");
    if (!zone) {
      return;
    }
    var form = zone.closest("form");
    var list = document.getElementById("upload-status");
    zone.hidden = false;
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("over");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("over");
      Array.prototype.forEach.call(event.dataTransfer.files, function (file) {
        upload(zone, form, list, file);
      });
    });
    // A file dropped beside the zone would make the browser open it, leaving the form
    // and what is typed in it.
    ["dragover", "drop"].forEach(function (name) {
      document.addEventListener(name, function (event) {
        if (!zone.contains(event.target)) {
          event.preventDefault();
        }
      });
    });
  });
})();
