// The console's only script of its own: asks before destructive form submissions. Every page
// works without it; the live parts use htmx and its SSE extension.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
