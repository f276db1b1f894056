// Ember's chat page. It talks to the server only through the public API: GET v1/models for the
// model picker and POST v1/chat/completions with stream: true for replies (server-sent events).
// The modules, one concern each: dom.js (elements, helpers), state.js (what is kept, in
// localStorage), api.js (requests, errors, events), reply.js (one streamed reply), view.js
// (drawing), markdown.js (replies as DOM nodes). This one: what the user does, and the wiring.
import { authHeaders, errorMessage } from "./api.js";
import { $, askForKey, autosize, closeSidebar, el, setStatus, ui } from "./dom.js";
import { KEYS, loadConversations, persist, saveSettings, setApiKey, state } from "./state.js";
import { streamReply } from "./reply.js";
import { renderConversation, renderList as renderListWith } from "./view.js";

const renderList = () => renderListWith({ select: selectConversation, remove: deleteConversation });

function newId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
}

function titleOf(text) {
  const line = text.trim().replace(/\s+/g, " ");
  return line.length > 60 ? line.slice(0, 59) + "…" : line;
}

async function loadModels() {
  setStatus("Connecting…");
  let response;
  try {
    response = await fetch("v1/models", { headers: authHeaders(false), cache: "no-store" });
  } catch (e) {
    setStatus("Cannot reach the server.", "error");
    return;
  }
  if (response.status === 401) {
    setStatus("API key needed.", "error");
    askForKey(state.apiKey ? "The server refused the saved API key. Enter the right one."
      : "This server was started with an API key. Enter it to chat.");
    return;
  }
  if (!response.ok) {
    setStatus(await errorMessage(response), "error");
    return;
  }
  const body = await response.json().catch(() => ({}));
  const models = Array.isArray(body.data) ? body.data.filter((m) => m && typeof m.id === "string") : [];
  ui.model.replaceChildren(...models.map((m) => {
    const option = el("option", null, m.id);
    option.value = m.id;
    if (m.max_model_len) option.title = `context: ${m.max_model_len} tokens`;
    return option;
  }));
  const ids = models.map((m) => m.id);
  if (ids.includes(state.settings.model)) ui.model.value = state.settings.model;
  setStatus(models.length ? "" : "The server lists no models.", models.length ? "" : "error");
  modelChanged();
}

// ---- what the user does -------------------------------------------------------------------

function startReply(conversation) {
  const message = { role: "assistant", content: "", model: ui.model.value || "", pending: true };
  conversation.messages.push(message);
  conversation.updated = Date.now();
  state.conversations = [conversation, ...state.conversations.filter((c) => c !== conversation)];
  persist();
  renderList();
  if (conversation === state.current) renderConversation();
  streamReply(conversation, message);
}

function sendMessage() {
  const text = ui.prompt.value;
  if (!text.trim() || state.active) return;
  if (!state.current) {
    state.current = { id: newId(), title: "", system: state.settings.system, messages: [], updated: Date.now() };
    state.conversations.unshift(state.current);
  }
  if (!state.current.title) {
    state.current.title = titleOf(text);
    ui.title.textContent = state.current.title;
  }
  state.current.messages.push({ role: "user", content: text });
  ui.prompt.value = "";
  autosize();
  startReply(state.current);
}

function regenerate() {
  if (state.active || !state.current) return;
  const messages = state.current.messages;
  while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
  if (!messages.length) return;
  startReply(state.current);
}

function stop() {
  if (state.active) state.active.controller.abort();
}

function newChat() {
  state.current = null;
  persist();
  renderConversation();
  renderList();
  closeSidebar();
  ui.prompt.focus();
}

function selectConversation(conversation) {
  state.current = conversation;
  persist();
  renderConversation();
  renderList();
  closeSidebar();
}

function deleteConversation(conversation) {
  if (state.active && state.active.conversation === conversation) stop();
  state.conversations = state.conversations.filter((c) => c !== conversation);
  if (state.current === conversation) state.current = null;
  persist();
  renderConversation();
  renderList();
}

function modelChanged() {
  state.settings.model = ui.model.value;
  saveSettings();
  const name = ui.model.value || "the model";
  ui.emptyModel.textContent = name;
  ui.prompt.placeholder = ui.model.value ? `Message ${ui.model.value}` : "Send a message";
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = el("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

// ---- wiring -------------------------------------------------------------------------------

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    sendMessage();
  }
});
ui.prompt.addEventListener("input", autosize);
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || ui.keyDialog.open) return;
  if (ui.app.classList.contains("sidebar-open")) closeSidebar();
  else if (state.active) stop();
});
// On a narrow screen the sidebar lies over the chat: a click beside it closes it.
document.querySelector(".main").addEventListener("click", (event) => {
  if (ui.app.classList.contains("sidebar-open") && !ui.toggleSidebar.contains(event.target)) closeSidebar();
});
ui.stop.addEventListener("click", stop);
ui.regenerate.addEventListener("click", regenerate);
ui.newChat.addEventListener("click", newChat);
ui.toggleSidebar.addEventListener("click", () => {
  const open = ui.app.classList.toggle("sidebar-open");
  ui.toggleSidebar.setAttribute("aria-expanded", String(open));
});
ui.model.addEventListener("change", modelChanged);

$("settings-form").addEventListener("submit", (event) => event.preventDefault());
ui.system.addEventListener("input", () => {
  state.settings.system = ui.system.value;
  saveSettings();
  if (state.current) {
    state.current.system = ui.system.value;
    persist();
  }
});
for (const [input, name] of [[ui.temperature, "temperature"], [ui.topP, "topP"], [ui.maxTokens, "maxTokens"]]) {
  input.value = state.settings[name];
  input.addEventListener("input", () => {
    state.settings[name] = input.value;
    saveSettings();
  });
}

ui.apiKey.value = state.apiKey;
ui.apiKey.addEventListener("change", () => {
  setApiKey(ui.apiKey.value.trim());
  loadModels();
});
ui.showKey.addEventListener("click", () => {
  const show = ui.apiKey.type === "password";
  ui.apiKey.type = show ? "text" : "password";
  ui.showKey.textContent = show ? "Hide" : "Show";
  ui.showKey.setAttribute("aria-pressed", String(show));
});

ui.keyDialog.querySelector("button[value=cancel]").addEventListener("click", (event) => {
  event.preventDefault();
  ui.keyDialog.close("cancel");
});
ui.keyDialog.addEventListener("close", () => {
  const key = ui.keyInput.value.trim();
  if (ui.keyDialog.returnValue === "save" && key) {
    setApiKey(key);
    loadModels();
    if (state.retryAfterKey) regenerate();
  }
  state.retryAfterKey = false;
});

ui.messages.addEventListener("click", (event) => {
  const button = event.target.closest(".copy-code");
  if (!button) return;
  const code = button.closest(".code-block").querySelector("code");
  copyText(code.textContent).then(() => { button.textContent = "Copied"; },
    () => { button.textContent = "Copy failed"; });
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
});

// A reply streaming when the page goes away keeps what came so far; all else is saved as it changes.
window.addEventListener("pagehide", () => { if (state.active) persist(); });
// Another tab of this page changed the conversations: show its version (unless a reply streams here).
window.addEventListener("storage", (event) => {
  if (state.active || (event.key !== KEYS.conversations && event.key !== null)) return;
  const id = state.current && state.current.id;
  state.conversations = loadConversations();
  state.current = state.conversations.find((c) => c.id === id) || null;
  renderList();
  renderConversation();
});

renderList();
renderConversation();
loadModels();
ui.prompt.focus();
