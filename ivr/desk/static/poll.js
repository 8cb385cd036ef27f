// Live parts of a page: an element with data-poll="URL" is refreshed from that URL every few
// seconds. A signed-out session (a redirect) reloads the page, which then asks to sign in.
document.querySelectorAll("[data-poll]").forEach(function (element) {
  var every = Number(element.dataset.every || 3000);
  setInterval(function () {
    fetch(element.dataset.poll, { credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (!response.ok) { window.location.reload(); return null; }
        return response.text();
      })
      .then(function (html) { if (html !== null) { element.innerHTML = html; } });
  }, every);
});
