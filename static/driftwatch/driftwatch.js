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

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) requestError("");
  });
})();
