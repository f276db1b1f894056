// Model output as Markdown, built as DOM nodes by markdown-it (vendored: markdown-it.min.js,
// MIT, LICENSE.markdown-it) with HTML disabled: HTML in a reply (<script>, <img onerror=...>)
// stays text, and text only ever reaches the page through text nodes, never an HTML string.
// Links go only to http(s) or mailto; images are never loaded (shown as a link to them).
import "./markdown-it.min.js";  // its UMD build defines globalThis.markdownit

const md = globalThis.markdownit({ html: false, linkify: true, typographer: false });
// Bare URLs with their scheme only: "file.py" stays a file name, not a link to a domain.
md.linkify.set({ fuzzyLink: false, fuzzyEmail: false });
md.validateLink = (url) => safeUrl(url) !== null;

const TAGS = { s: "del" };  // markdown-it's tag -> the one shown

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, document.baseURI);
    return ["http:", "https:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

function anchor(url) {
  const a = el("a");
  a.href = safeUrl(url);
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

/** An image is never loaded: it shows as a link to it. */
function imageLink(token) {
  const a = anchor(token.attrGet("src"));
  a.textContent = `[image: ${token.content}]`;
  return a;
}

function codeBlock(text, language) {
  const lang = (language || "").replace(/[^\w+#.-]/g, "").slice(0, 32);
  const wrap = el("div", "code-block");
  const head = el("div", "code-head");
  head.appendChild(el("span", "code-lang", lang || "text"));
  const copy = el("button", "copy-code", "Copy");
  copy.type = "button";
  copy.setAttribute("aria-label", "Copy code" + (lang ? " (" + lang + ")" : ""));
  head.appendChild(copy);
  const pre = el("pre");
  pre.appendChild(el("code", lang ? "language-" + lang : null, text));
  wrap.append(head, pre);
  return wrap;
}

/** Append markdown-it's inline tokens to `parent`. */
function inline(tokens, parent) {
  const stack = [parent];
  for (const token of tokens) {
    const top = stack[stack.length - 1];
    if (token.type === "text") top.appendChild(document.createTextNode(token.content));
    else if (token.type === "softbreak") top.appendChild(document.createTextNode("\n"));
    else if (token.type === "hardbreak") top.appendChild(el("br"));
    else if (token.type === "code_inline") top.appendChild(el("code", null, token.content));
    else if (token.type === "image") top.appendChild(imageLink(token));
    else if (token.type === "link_open") stack.push(top.appendChild(anchor(token.attrGet("href"))));
    else if (token.nesting === 1) stack.push(top.appendChild(el(TAGS[token.tag] || token.tag)));
    else if (token.nesting === -1) stack.pop();
  }
}

/** Markdown source -> a DocumentFragment. */
export function render(source) {
  const fragment = document.createDocumentFragment();
  const stack = [fragment];
  for (const token of md.parse(String(source), {})) {
    const parent = stack[stack.length - 1];
    if (token.type === "fence" || token.type === "code_block") {
      parent.appendChild(codeBlock(token.content.replace(/\n$/, ""), token.info.trim().split(/\s/)[0]));
    } else if (token.type === "inline") {
      inline(token.children, parent);
    } else if (token.hidden) {
      continue;  // the paragraphs of a tight list's items
    } else if (token.type === "hr") {
      parent.appendChild(el("hr"));
    } else if (token.nesting === 1) {
      const node = parent.appendChild(el(token.tag));
      if (token.tag === "ol" && token.attrGet("start")) node.start = parseInt(token.attrGet("start"), 10);
      stack.push(node);
    } else if (token.nesting === -1) {
      stack.pop();
    }
  }
  fragment.normalize();  // one text node per run of text
  return fragment;
}

// Also reachable from outside the modules, as before (the page's tests render with it).
window.EmberMarkdown = { render };
