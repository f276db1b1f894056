// The server's public API as the page uses it: request bodies, errors, server-sent events.
import { ui } from "./dom.js";
import { state } from "./state.js";

export function authHeaders(json) {
  const headers = {};
  if (json) headers["Content-Type"] = "application/json";
  if (state.apiKey) headers.Authorization = "Bearer " + state.apiKey;
  return headers;
}

export function errorText(error) {
  if (typeof error === "string") return error;
  if (error && typeof error.message === "string") return error.message;
  return JSON.stringify(error);
}

/** The message of an error response: OpenAI's {"error": {"message": ...}} when it is one. */
export async function errorMessage(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && body.error) return errorText(body.error);
    if (body && body.detail) return errorText(body.detail);
  } catch (e) { /* not JSON */ }
  const status = `The server answered ${response.status}${response.statusText ? " " + response.statusText : ""}`;
  return text.trim() ? `${status}: ${text.trim().slice(0, 500)}` : status + ".";
}

/** The text of the `data:` fields of each server-sent event in `body`, in order. */
export async function* sseData(body) {
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

function numberSetting(value, integer) {
  if (value === "" || value === null || value === undefined) return undefined;
  const number = integer ? parseInt(value, 10) : parseFloat(value);
  return Number.isFinite(number) ? number : undefined;
}

/** The chat completion request for `reply`: the conversation before it, and the settings. */
export function requestBody(conversation, reply) {
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
  const { settings } = state;
  const temperature = numberSetting(settings.temperature, false);
  const topP = numberSetting(settings.topP, false);
  const maxTokens = numberSetting(settings.maxTokens, true);
  if (temperature !== undefined) body.temperature = temperature;
  if (topP !== undefined) body.top_p = topP;
  if (maxTokens !== undefined) body.max_tokens = maxTokens;
  return body;
}

/** Streamed tool-call deltas, merged into whole calls. */
export function mergeToolCalls(calls, deltas) {
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
