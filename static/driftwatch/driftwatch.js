// htmx follows redirects silently: after a session expires, a poll or a button would swap the login form into
// a panel. Go to the login page instead. And say so when a request fails, rather than doing nothing.
(function () {
  "use strict";

  function requestError(text) {
    var box = document.getElementById("request-error");
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    var login = document.body.dataset.loginUrl;
    if (login && xhr.responseURL && new URL(xhr.responseURL).pathname === login) {
      event.detail.shouldSwap = false;
      window.location.assign(xhr.responseURL);
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    requestError(
      status === 403
        ? "Not allowed (403): your role may not do this. The attempt was recorded in the audit log."
        : "Driftwatch answered " + status + "; reload the page or try again."
    );
  });

  document.addEventListener("htmx:sendError", function () {
    requestError("Driftwatch did not answer; it will try again at the next refresh.");
  });

  // A poll marked data-poll-held-by="FORM" skips its turn while a checkbox of that form is ticked (the overview,
  // while workloads are chosen for a bulk rollout). Here rather than in a trigger filter, which htmx would have
  // to evaluate: the Content-Security-Policy forbids eval.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt.getAttribute("data-poll-held-by");
    if (form && document.querySelector('input[form="' + form + '"]:checked')) event.preventDefault();
  });

  // A rollout's end (one workload, or a whole batch) unticks the workloads chosen for it and refreshes the list
  // at once: otherwise the ticks hold the poll, and the rows would go on showing the moment before the rollout.
  document.addEventListener("rollout-finished", function () {
    document.querySelectorAll('input[form="bulk-form"]:checked').forEach(function (box) {
      box.checked = false;
    });
    var rows = document.getElementById("overview-body");
    if (rows && window.htmx) window.htmx.trigger(rows, "rows-refresh");
  });

  // htmx keeps no page in the browser's storage (historyCacheSize 0), only the path it shows; logging out
  // forgets that too, so nothing of the session is left in the tab.
  document.addEventListener("submit", function (event) {
    if (event.target.hasAttribute("data-logout")) {
      window.sessionStorage.clear();
      window.localStorage.clear();
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) requestError("");
  });
})();
