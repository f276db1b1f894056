// The page's elements and small DOM helpers. Model output only ever reaches the page through
// text nodes (textContent), never an HTML string.
export const $ = (id) => document.getElementById(id);

export const ui = {
  app: $("app"), sidebar: $("sidebar"), toggleSidebar: $("toggle-sidebar"), newChat: $("new-chat"),
  list: $("conversation-list"), noConversations: $("no-conversations"),
  system: $("system"), temperature: $("temperature"), topP: $("top-p"), maxTokens: $("max-tokens"),
  apiKey: $("api-key"), showKey: $("show-key"),
  title: $("chat-title"), model: $("model"), status: $("status"),
  messages: $("messages"), empty: $("empty"), emptyModel: $("empty-model"),
  composer: $("composer"), prompt: $("prompt"), regenerate: $("regenerate"), stop: $("stop"), send: $("send"),
  keyDialog: $("key-dialog"), keyForm: $("key-form"), keyMessage: $("key-message"), keyInput: $("key-input"),
};

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const ICONS = {
  trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
};

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  svg.appendChild(path);
  return svg;
}

export function setStatus(text, kind) {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind || "";
}

export function nearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

export function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

export function autosize() {
  ui.prompt.style.height = "auto";
  ui.prompt.style.height = ui.prompt.scrollHeight + "px";
}

export function closeSidebar() {
  ui.app.classList.remove("sidebar-open");
  ui.toggleSidebar.setAttribute("aria-expanded", "false");
}

export function askForKey(message) {
  ui.keyMessage.textContent = message;
  ui.keyInput.value = "";
  ui.keyDialog.returnValue = "";
  if (!ui.keyDialog.open) ui.keyDialog.showModal();
  ui.keyInput.focus();
}
