"""The chat page that `ember serve` serves at `/`: static index.html, style.css, markdown.js and
app.js, no build step. See docs/web-ui.md."""
