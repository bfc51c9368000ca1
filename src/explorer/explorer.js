// graphsec explorer: asks before the forms marked data-confirm are sent (delete, reset).
// Everything works without this script.
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
