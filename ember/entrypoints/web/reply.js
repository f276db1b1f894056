// One reply: POST v1/chat/completions with stream: true, its deltas merged into the message as
// they come (content, reasoning, tool calls), its timing, its end (finished, stopped, failed).
import { authHeaders, errorMessage, errorText, mergeToolCalls, requestBody, sseData } from "./api.js";
import { askForKey } from "./dom.js";
import { persist, state } from "./state.js";
import { scheduleUpdate, updateBusy, updateView } from "./view.js";

function replyStats(timing, tokens, exact) {
  if (timing.first === null) return null;
  const stats = { ttft: (timing.first - timing.started) / 1000, tokens, exact };
  // Decode speed after the first token; not shown when the reply came too fast to time.
  const decoding = timing.last - timing.first;
  if (tokens > 1 && decoding >= 10) stats.tps = (tokens - 1) / (decoding / 1000);
  return stats;
}

/** Merge one chunk's delta into `message`; true when it brought something to show. */
function applyDelta(message, delta) {
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
  return got;
}

export async function streamReply(conversation, message) {
  const controller = new AbortController();
  state.active = { controller, conversation, message };
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
        state.retryAfterKey = true;
        askForKey(state.apiKey ? "The server refused the API key. Enter the right one; the reply is retried."
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
      const got = applyDelta(message, choice.delta || {});
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
    if (state.active && state.active.message === message) state.active = null;
    conversation.updated = Date.now();
    persist();
    updateView(message);
    updateBusy();
  }
}
