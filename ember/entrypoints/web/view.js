// Drawing the conversation list and the messages; a streaming reply is redrawn at most once a frame.
import { el, icon, nearBottom, scrollToBottom, ui } from "./dom.js";
import { render as renderMarkdown } from "./markdown.js";
import { state } from "./state.js";

const views = new WeakMap();  // assistant message -> its DOM parts

/** `actions`: {select(conversation), remove(conversation)}, what the list's buttons do. */
export function renderList(actions) {
  ui.list.replaceChildren(...state.conversations.map((conversation) => {
    const title = conversation.title || "New chat";
    const item = el("li", conversation === state.current ? "current" : "");
    const open = el("button", "conversation", title);
    open.type = "button";
    open.title = title;
    if (conversation === state.current) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => actions.select(conversation));
    const remove = el("button", "icon-button delete");
    remove.type = "button";
    remove.setAttribute("aria-label", `Delete conversation: ${title}`);
    remove.title = "Delete";
    remove.appendChild(icon("trash"));
    remove.addEventListener("click", () => actions.remove(conversation));
    item.append(open, remove);
    return item;
  }));
  ui.noConversations.hidden = state.conversations.length > 0;
}

export function renderConversation() {
  const { current } = state;
  ui.title.textContent = current && current.title ? current.title : "New chat";
  ui.system.value = current ? current.system : state.settings.system;
  const messages = current ? current.messages : [];
  ui.messages.replaceChildren(...(messages.length ? messages.map(messageView) : [ui.empty]));
  scrollToBottom();
  updateBusy();
}

export function updateBusy() {
  const busy = Boolean(state.active);
  const stopHadFocus = document.activeElement === ui.stop;
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.regenerate.disabled = busy || !state.current || !state.current.messages.some((m) => m.role === "user");
  if (stopHadFocus && !busy) ui.prompt.focus();
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
export function updateView(message) {
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
  view.body.replaceChildren(renderMarkdown(answer));
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
export function scheduleUpdate(message) {
  queued.add(message);
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    for (const m of queued) updateView(m);
    queued.clear();
  });
}
