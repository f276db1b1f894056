// What the page keeps: conversations, settings and the API key in this browser's localStorage,
// and which conversation is shown and which reply is streaming now.
import { setStatus, ui } from "./dom.js";

export const KEYS = {
  conversations: "ember.conversations",
  current: "ember.currentConversation",
  settings: "ember.settings",
  apiKey: "ember.apiKey",
};

function load(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch (e) {
    return fallback;
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {
    setStatus("Could not save to this browser's storage: " + e.message, "error");
  }
}

export function loadConversations() {
  const saved = load(KEYS.conversations, []);
  if (!Array.isArray(saved)) return [];
  return saved.filter((c) => c && typeof c.id === "string" && Array.isArray(c.messages)).map((c) => {
    c.messages = c.messages.filter((m) => m && (m.role === "user" || m.role === "assistant"));
    for (const m of c.messages) {
      m.content = typeof m.content === "string" ? m.content : "";
      if (m.pending) {  // the page went away mid-reply
        m.pending = false;
        m.stopped = true;
      }
    }
    c.system = typeof c.system === "string" ? c.system : "";
    return c;
  });
}

const conversations = loadConversations();

export const state = {
  conversations,
  current: conversations.find((c) => c.id === load(KEYS.current, null)) || null,
  settings: Object.assign({ model: "", system: "", temperature: "", topP: "", maxTokens: "" },
    load(KEYS.settings, {})),
  apiKey: String(load(KEYS.apiKey, "") || ""),
  active: null,  // the reply streaming now: {controller, conversation, message}
  retryAfterKey: false,  // a reply refused for its key is retried once a key is given
};

export function persist() {
  store(KEYS.conversations, state.conversations);
  store(KEYS.current, state.current ? state.current.id : null);
}

export function saveSettings() {
  store(KEYS.settings, state.settings);
}

export function setApiKey(key) {
  state.apiKey = key;
  ui.apiKey.value = key;
  store(KEYS.apiKey, key);
}
