// Ember's chat page. It talks to the server only through the public API: GET v1/models for the
// model picker and POST v1/chat/completions with stream: true for replies (server-sent events).
// Conversations, settings and the API key live in this browser's localStorage. Model output is
// only ever shown through text nodes (markdown.js builds DOM nodes, never HTML strings).
(function () {
  "use strict";

  const KEYS = {
    conversations: "ember.conversations",
    current: "ember.currentConversation",
    settings: "ember.settings",
    apiKey: "ember.apiKey",
  };
  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $("app"), sidebar: $("sidebar"), toggleSidebar: $("toggle-sidebar"), newChat: $("new-chat"),
    list: $("conversation-list"), noConversations: $("no-conversations"),
    system: $("system"), temperature: $("temperature"), topP: $("top-p"), maxTokens: $("max-tokens"),
    apiKey: $("api-key"), showKey: $("show-key"),
    title: $("chat-title"), model: $("model"), status: $("status"),
    messages: $("messages"), empty: $("empty"), emptyModel: $("empty-model"),
    composer: $("composer"), prompt: $("prompt"), regenerate: $("regenerate"), stop: $("stop"), send: $("send"),
    keyDialog: $("key-dialog"), keyForm: $("key-form"), keyMessage: $("key-message"), keyInput: $("key-input"),
  };

  // ---- storage ------------------------------------------------------------------------------

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

  function loadConversations() {
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

  let conversations = loadConversations();
  const settings = Object.assign({ model: "", system: "", temperature: "", topP: "", maxTokens: "" },
    load(KEYS.settings, {}));
  let apiKey = String(load(KEYS.apiKey, "") || "");
  let current = conversations.find((c) => c.id === load(KEYS.current, null)) || null;
  let active = null;  // the reply streaming now: {controller, conversation, message}
  let retryAfterKey = false;
  const views = new WeakMap();  // assistant message -> its DOM parts

  function persist() {
    store(KEYS.conversations, conversations);
    store(KEYS.current, current ? current.id : null);
  }

  function saveSettings() {
    store(KEYS.settings, settings);
  }

  // ---- small helpers ------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const ICONS = {
    trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  };

  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  function newId() {
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
  }

  function titleOf(text) {
    const line = text.trim().replace(/\s+/g, " ");
    return line.length > 60 ? line.slice(0, 59) + "…" : line;
  }

  function setStatus(text, kind) {
    ui.status.textContent = text;
    ui.status.dataset.kind = kind || "";
  }

  function authHeaders(json) {
    const headers = {};
    if (json) headers["Content-Type"] = "application/json";
    if (apiKey) headers.Authorization = "Bearer " + apiKey;
    return headers;
  }

  function errorText(error) {
    if (typeof error === "string") return error;
    if (error && typeof error.message === "string") return error.message;
    return JSON.stringify(error);
  }

  /** The message of an error response: OpenAI's {"error": {"message": ...}} when it is one. */
  async function errorMessage(response) {
    const text = await response.text().catch(() => "");
    try {
      const body = JSON.parse(text);
      if (body && body.error) return errorText(body.error);
      if (body && body.detail) return errorText(body.detail);
    } catch (e) { /* not JSON */ }
    const status = `The server answered ${response.status}${response.statusText ? " " + response.statusText : ""}`;
    return text.trim() ? `${status}: ${text.trim().slice(0, 500)}` : status + ".";
  }

  function numberSetting(value, integer) {
    if (value === "" || value === null || value === undefined) return undefined;
    const number = integer ? parseInt(value, 10) : parseFloat(value);
    return Number.isFinite(number) ? number : undefined;
  }

  // ---- the API ------------------------------------------------------------------------------

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
      askForKey(apiKey ? "The server refused the saved API key. Enter the right one."
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
    if (ids.includes(settings.model)) ui.model.value = settings.model;
    setStatus(models.length ? "" : "The server lists no models.", models.length ? "" : "error");
    modelChanged();
  }

  /** The text of the `data:` fields of each server-sent event in `body`, in order. */
  async function* sseData(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dataOf = (block) => {
      const data = block.split(/\r\n|\r|\n/).filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5));
      return data.length ? data.join("\n") : null;
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let boundary;
        while ((boundary = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
          const data = dataOf(buffer.slice(0, boundary.index));
          buffer = buffer.slice(boundary.index + boundary[0].length);
          if (data !== null) yield data;
        }
      }
      const data = dataOf(buffer + decoder.decode());
      if (data !== null) yield data;
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function requestBody(conversation, reply) {
    const messages = [];
    if (conversation.system.trim()) messages.push({ role: "system", content: conversation.system });
    for (const m of conversation.messages) {
      if (m === reply) break;
      if (m.role === "user") {
        messages.push({ role: "user", content: m.content });
        continue;
      }
      const calls = (m.toolCalls || []).filter(Boolean);
      if (!m.content && !calls.length) continue;  // a failed or empty reply is not history
      const message = { role: "assistant", content: m.content };
      if (calls.length) {
        message.tool_calls = calls.map((c) => ({
          id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
      }
      messages.push(message);
    }
    const body = { messages, stream: true, stream_options: { include_usage: true } };
    if (ui.model.value) body.model = ui.model.value;
    const temperature = numberSetting(settings.temperature, false);
    const topP = numberSetting(settings.topP, false);
    const maxTokens = numberSetting(settings.maxTokens, true);
    if (temperature !== undefined) body.temperature = temperature;
    if (topP !== undefined) body.top_p = topP;
    if (maxTokens !== undefined) body.max_tokens = maxTokens;
    return body;
  }

  function mergeToolCalls(calls, deltas) {
    for (const delta of deltas) {
      if (!delta) continue;
      const index = Number.isInteger(delta.index) ? delta.index : calls.length;
      const call = calls[index] || (calls[index] = { id: "", name: "", arguments: "" });
      if (delta.id) call.id = delta.id;
      const fn = delta.function || {};
      if (fn.name && !call.name) call.name = fn.name;
      if (typeof fn.arguments === "string") call.arguments += fn.arguments;
      else if (fn.arguments) call.arguments += JSON.stringify(fn.arguments);
    }
  }

  function replyStats(timing, tokens, exact) {
    if (timing.first === null) return null;
    const stats = { ttft: (timing.first - timing.started) / 1000, tokens, exact };
    // Decode speed after the first token; not shown when the reply came too fast to time.
    const decoding = timing.last - timing.first;
    if (tokens > 1 && decoding >= 10) stats.tps = (tokens - 1) / (decoding / 1000);
    return stats;
  }

  async function streamReply(conversation, message) {
    const controller = new AbortController();
    active = { controller, conversation, message };
    updateBusy();
    const timing = { started: performance.now(), first: null, last: null };
    let deltas = 0;
    let usage = null;
    let done = false;
    try {
      const response = await fetch("v1/chat/completions", {
        method: "POST", headers: authHeaders(true), signal: controller.signal, cache: "no-store",
        body: JSON.stringify(requestBody(conversation, message)),
      });
      if (!response.ok) {
        message.error = await errorMessage(response);
        if (response.status === 401) {
          retryAfterKey = true;
          askForKey(apiKey ? "The server refused the API key. Enter the right one; the reply is retried."
            : "This server asks for an API key. Enter it; the reply is retried.");
        }
        return;
      }
      for await (const data of sseData(response.body)) {
        if (data.trim() === "[DONE]") {
          done = true;
          break;
        }
        let chunk;
        try {
          chunk = JSON.parse(data);
        } catch (e) {
          continue;
        }
        if (!chunk || typeof chunk !== "object") continue;
        if (chunk.error) {
          message.error = errorText(chunk.error);
          continue;
        }
        if (chunk.usage) usage = chunk.usage;
        const choice = Array.isArray(chunk.choices) ? chunk.choices.find((c) => c && (c.index || 0) === 0) : null;
        if (!choice) continue;
        const delta = choice.delta || {};
        const reasoning = delta.reasoning_content || delta.reasoning;
        let got = false;
        if (typeof reasoning === "string" && reasoning) {
          message.reasoning = (message.reasoning || "") + reasoning;
          got = true;
        }
        if (typeof delta.content === "string" && delta.content) {
          message.content += delta.content;
          got = true;
        }
        if (Array.isArray(delta.tool_calls) && delta.tool_calls.length) {
          mergeToolCalls(message.toolCalls || (message.toolCalls = []), delta.tool_calls);
          got = true;
        }
        if (choice.finish_reason) message.finishReason = choice.finish_reason;
        if (got) {
          const now = performance.now();
          if (timing.first === null) timing.first = now;
          timing.last = now;
          deltas++;
          message.stats = replyStats(timing, deltas, false);
          scheduleUpdate(message);
        }
      }
      if (!done && !message.error) message.error = "The reply ended before the server finished it.";
    } catch (e) {
      if (e.name === "AbortError") message.stopped = true;
      else message.error = "Could not reach the server: " + e.message;
    } finally {
      const tokens = usage && Number.isFinite(usage.completion_tokens) ? usage.completion_tokens : deltas;
      message.stats = replyStats(timing, tokens, Boolean(usage));
      message.pending = false;
      if (active && active.message === message) active = null;
      conversation.updated = Date.now();
      persist();
      updateView(message);
      updateBusy();
    }
  }

  // ---- actions ------------------------------------------------------------------------------

  function startReply(conversation) {
    const message = { role: "assistant", content: "", model: ui.model.value || "", pending: true };
    conversation.messages.push(message);
    conversation.updated = Date.now();
    conversations = [conversation, ...conversations.filter((c) => c !== conversation)];
    persist();
    renderList();
    if (conversation === current) renderConversation();
    streamReply(conversation, message);
  }

  function sendMessage() {
    const text = ui.prompt.value;
    if (!text.trim() || active) return;
    if (!current) {
      current = { id: newId(), title: "", system: settings.system, messages: [], updated: Date.now() };
      conversations.unshift(current);
    }
    if (!current.title) {
      current.title = titleOf(text);
      ui.title.textContent = current.title;
    }
    current.messages.push({ role: "user", content: text });
    ui.prompt.value = "";
    autosize();
    startReply(current);
  }

  function regenerate() {
    if (active || !current) return;
    const messages = current.messages;
    while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
    if (!messages.length) return;
    startReply(current);
  }

  function stop() {
    if (active) active.controller.abort();
  }

  function newChat() {
    current = null;
    persist();
    renderConversation();
    renderList();
    closeSidebar();
    ui.prompt.focus();
  }

  function selectConversation(conversation) {
    current = conversation;
    persist();
    renderConversation();
    renderList();
    closeSidebar();
  }

  function deleteConversation(conversation) {
    if (active && active.conversation === conversation) stop();
    conversations = conversations.filter((c) => c !== conversation);
    if (current === conversation) current = null;
    persist();
    renderConversation();
    renderList();
  }

  function setApiKey(key) {
    apiKey = key;
    ui.apiKey.value = key;
    store(KEYS.apiKey, key);
  }

  function askForKey(message) {
    ui.keyMessage.textContent = message;
    ui.keyInput.value = "";
    ui.keyDialog.returnValue = "";
    if (!ui.keyDialog.open) ui.keyDialog.showModal();
    ui.keyInput.focus();
  }

  function modelChanged() {
    settings.model = ui.model.value;
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

  // ---- rendering ----------------------------------------------------------------------------

  function closeSidebar() {
    ui.app.classList.remove("sidebar-open");
    ui.toggleSidebar.setAttribute("aria-expanded", "false");
  }

  function renderList() {
    ui.list.replaceChildren(...conversations.map((conversation) => {
      const title = conversation.title || "New chat";
      const item = el("li", conversation === current ? "current" : "");
      const open = el("button", "conversation", title);
      open.type = "button";
      open.title = title;
      if (conversation === current) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => selectConversation(conversation));
      const remove = el("button", "icon-button delete");
      remove.type = "button";
      remove.setAttribute("aria-label", `Delete conversation: ${title}`);
      remove.title = "Delete";
      remove.appendChild(icon("trash"));
      remove.addEventListener("click", () => deleteConversation(conversation));
      item.append(open, remove);
      return item;
    }));
    ui.noConversations.hidden = conversations.length > 0;
  }

  function renderConversation() {
    ui.title.textContent = current && current.title ? current.title : "New chat";
    ui.system.value = current ? current.system : settings.system;
    const messages = current ? current.messages : [];
    ui.messages.replaceChildren(...(messages.length ? messages.map(messageView) : [ui.empty]));
    scrollToBottom();
    updateBusy();
  }

  function messageView(message) {
    const article = el("article", "message " + message.role);
    const head = el("div", "message-head");
    head.appendChild(el("span", "role", message.role === "user" ? "You" : "Assistant"));
    if (message.role === "assistant" && message.model) head.appendChild(el("span", "model-name", message.model));
    article.appendChild(head);
    if (message.role === "user") {
      article.setAttribute("aria-label", "You said");
      article.appendChild(el("div", "user-text", message.content));
      return article;
    }
    article.setAttribute("aria-label", "Assistant replied");
    const view = {
      article, thinking: null, thinkingBody: null, thinkingTouched: false,
      body: el("div", "markdown"), tools: el("div", "tool-calls"), error: el("p", "error"),
      foot: el("p", "message-foot"),
    };
    view.tools.hidden = true;
    view.error.hidden = true;
    article.append(view.body, view.tools, view.error, view.foot);
    views.set(message, view);
    fillView(message, view);
    return article;
  }

  /** Reasoning and answer: reasoning_content deltas, or a <think> block leading the content
   * (a reasoning model served without a reasoning parser). */
  function splitThinking(message) {
    const content = message.content || "";
    if (message.reasoning) return { reasoning: message.reasoning, answer: content, thinking: false };
    const m = /^\s*<think>/.exec(content);
    if (!m) return { reasoning: "", answer: content, thinking: false };
    const end = content.indexOf("</think>", m[0].length);
    if (end < 0) return { reasoning: content.slice(m[0].length), answer: "", thinking: true };
    return { reasoning: content.slice(m[0].length, end), answer: content.slice(end + 8).replace(/^\s+/, ""),
      thinking: false };
  }

  function toolCallView(call) {
    const box = el("div", "tool-call");
    const head = el("div", "tool-call-head");
    head.appendChild(el("span", "tool-call-label", "Tool call"));
    head.appendChild(el("code", "tool-call-name", call.name || "(unnamed)"));
    if (call.id) head.appendChild(el("span", "tool-call-id", call.id));
    box.appendChild(head);
    let args = call.arguments;
    try {
      args = JSON.stringify(JSON.parse(call.arguments), null, 2);
    } catch (e) { /* still streaming, or not JSON: shown as sent */ }
    const pre = el("pre");
    pre.appendChild(el("code", null, args));
    box.appendChild(pre);
    return box;
  }

  function statsText(message) {
    const parts = [];
    const s = message.stats;
    if (s) {
      parts.push(`${s.ttft.toFixed(2)} s to first token`);
      if (s.tps !== undefined) parts.push(`${s.tps.toFixed(1)} tokens/s`);
      parts.push(`${s.exact ? "" : "≈"}${s.tokens} token${s.tokens === 1 ? "" : "s"}`);
    }
    if (message.stopped) parts.push("stopped");
    else if (message.finishReason === "length") parts.push("cut at max_tokens");
    return parts.join(" · ");
  }

  /** Re-render a message whose view is on the page (the conversation shown). */
  function updateView(message) {
    const view = views.get(message);
    if (!view || !view.article.isConnected) return;
    const stick = nearBottom();
    fillView(message, view);
    if (stick) scrollToBottom();
  }

  function fillView(message, view) {
    const { reasoning, answer, thinking } = splitThinking(message);
    const pending = Boolean(message.pending);
    const stillThinking = pending && (thinking || (!answer && !(message.toolCalls || []).length));
    if (reasoning) {
      if (!view.thinking) {
        view.thinking = el("details", "thinking");
        const summary = el("summary");
        summary.addEventListener("click", () => { view.thinkingTouched = true; });
        view.thinking.appendChild(summary);
        view.thinkingBody = el("div", "thinking-body");
        view.thinking.appendChild(view.thinkingBody);
        view.article.insertBefore(view.thinking, view.body);
      }
      view.thinking.firstChild.textContent = stillThinking ? "Thinking…" : "Thinking";
      view.thinkingBody.textContent = reasoning;
      if (!view.thinkingTouched) view.thinking.open = stillThinking;
    }
    view.body.replaceChildren(window.EmberMarkdown.render(answer));
    if (pending && !answer && !reasoning && !(message.toolCalls || []).length) {
      const dots = el("span", "typing");
      dots.setAttribute("aria-label", "Waiting for the reply");
      dots.append(el("span"), el("span"), el("span"));
      view.body.appendChild(dots);
    }
    const calls = (message.toolCalls || []).filter(Boolean);
    view.tools.hidden = !calls.length;
    view.tools.replaceChildren(...calls.map(toolCallView));
    view.error.hidden = !message.error;
    view.error.textContent = message.error ? "Error: " + message.error : "";
    if (message.error) view.error.setAttribute("role", "alert");
    view.foot.textContent = statsText(message);
    view.article.setAttribute("aria-busy", pending ? "true" : "false");
    view.article.classList.toggle("pending", pending);
  }

  const queued = new Set();
  let frame = 0;

  /** Re-render a streaming message at most once per frame. */
  function scheduleUpdate(message) {
    queued.add(message);
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const m of queued) updateView(m);
      queued.clear();
    });
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function updateBusy() {
    const busy = Boolean(active);
    const stopHadFocus = document.activeElement === ui.stop;
    ui.send.hidden = busy;
    ui.stop.hidden = !busy;
    ui.regenerate.disabled = busy || !current || !current.messages.some((m) => m.role === "user");
    if (stopHadFocus && !busy) ui.prompt.focus();
  }

  function autosize() {
    ui.prompt.style.height = "auto";
    ui.prompt.style.height = ui.prompt.scrollHeight + "px";
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
    else if (active) stop();
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
    settings.system = ui.system.value;
    saveSettings();
    if (current) {
      current.system = ui.system.value;
      persist();
    }
  });
  for (const [input, name] of [[ui.temperature, "temperature"], [ui.topP, "topP"], [ui.maxTokens, "maxTokens"]]) {
    input.value = settings[name];
    input.addEventListener("input", () => {
      settings[name] = input.value;
      saveSettings();
    });
  }

  ui.apiKey.value = apiKey;
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
      if (retryAfterKey) regenerate();
    }
    retryAfterKey = false;
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
  window.addEventListener("pagehide", () => { if (active) persist(); });
  // Another tab of this page changed the conversations: show its version (unless a reply streams here).
  window.addEventListener("storage", (event) => {
    if (active || (event.key !== KEYS.conversations && event.key !== null)) return;
    const id = current && current.id;
    conversations = loadConversations();
    current = conversations.find((c) => c.id === id) || null;
    renderList();
    renderConversation();
  });

  renderList();
  renderConversation();
  loadModels();
  ui.prompt.focus();
})();
