// Reprise UI: confirmations and live refresh. Everything works without it, but by hand.
"use strict";
(function () {
  // Ask before an action: forms carry data-confirm.
  document.addEventListener("submit", function (e) {
    var message = e.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) e.preventDefault();
  });

  // Someone typing in a form should not lose it to a refresh.
  var editing = false;
  document.addEventListener("input", function () { editing = true; });

  // The runs page: the counts and table refresh while "live" is ticked.
  var live = document.querySelector("[data-live]");
  if (live) {
    setInterval(function () {
      var toggle = document.getElementById("live-toggle");
      if (document.hidden || (toggle && !toggle.checked)) return;
      fetch(live.getAttribute("data-live"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) live.innerHTML = html; })
        .catch(function () {});
    }, 3000);
  }

  // A run's page: reload when the run moves on.
  var run = document.querySelector("[data-watch]");
  if (run) {
    var head = run.getAttribute("data-head"), status = run.getAttribute("data-status");
    setInterval(function () {
      if (document.hidden || editing) return;
      fetch(run.getAttribute("data-watch"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (now) {
          if (now && (String(now.head_seq) !== head || now.status !== status)) {
            var url = new URL(window.location.href);
            url.searchParams.delete("done");
            window.location.replace(url.toString());
          }
        })
        .catch(function () {});
    }, 1500);
  }

  // A batch's page: refresh until it finishes.
  if (document.querySelector("[data-refresh='1']")) {
    setTimeout(function () { if (!editing) window.location.reload(); }, 1000);
  }
})();
