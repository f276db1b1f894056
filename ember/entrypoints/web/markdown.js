// A careful subset of Markdown for model output, built as DOM nodes: text only ever reaches the
// page through text nodes, so HTML in a reply (<script>, <img onerror=...>) shows as text.
// Blocks: fenced code (``` or ~~~, unclosed while streaming), ATX headings, rules, block quotes,
// bullet and numbered lists (nested by indentation), GFM pipe tables, paragraphs (a single
// newline is a line break, as in chat). Inline: code spans, **strong**, *em*, ***both***,
// ~~strike~~, [links](https://...), <https://autolinks>, bare URLs, backslash escapes.
// Links go only to http(s) or mailto; images are never loaded (shown as a link to them).
(function () {
  "use strict";

  const MAX_DEPTH = 12;  // nesting of quotes, lists and emphasis; deeper input stays plain text
  const PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  const FENCE = /^( {0,3})(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
  const RULE = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
  const TABLE_DELIMITER = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
  const AUTOLINK = /<((?:https?|mailto):[^\s<>]+)>/iy;
  const BARE_URL = /https?:\/\/[^\s<>"]*[^\s<>".,:;'!?)\]]/iy;
  const LINK_TARGET = /\(\s*<?([^\s<>()]*(?:\([^\s<>()]*\)[^\s<>()]*)*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/y;
  const WORD = /[\p{L}\p{N}]/u;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Markdown source -> a DocumentFragment. */
  function render(source) {
    const fragment = document.createDocumentFragment();
    const lines = String(source).replace(/\r\n?/g, "\n").split("\n")
      .map((line) => line.replace(/^[ \t]+/, (lead) => lead.replace(/\t/g, "    ")));
    blocks(lines, fragment, 0);
    return fragment;
  }

  const indentOf = (line) => line.length - line.replace(/^ +/, "").length;
  const isBlank = (line) => !line.trim();

  function isTableStart(lines, i) {
    return i + 1 < lines.length && lines[i].includes("|") && lines[i + 1].includes("|") &&
      TABLE_DELIMITER.test(lines[i + 1]);
  }

  /** Does `line` begin a block that ends a paragraph? */
  function interrupts(lines, i) {
    const line = lines[i];
    if (FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)) return true;
    const item = ITEM.exec(line);
    if (item && item[4] && item[4].trim() && (!/\d/.test(item[2]) || parseInt(item[2], 10) === 1)) return true;
    return isTableStart(lines, i);
  }

  function blocks(lines, parent, depth) {
    if (depth > MAX_DEPTH) {
      parent.appendChild(el("p", null, lines.join("\n")));
      return;
    }
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (isBlank(line)) {
        i++;
      } else if ((m = FENCE.exec(line))) {
        i = fencedCode(lines, i, m, parent);
      } else if ((m = HEADING.exec(line))) {
        const heading = el("h" + m[1].length);
        inline(m[2] || "", heading, depth);
        parent.appendChild(heading);
        i++;
      } else if (RULE.test(line)) {
        parent.appendChild(el("hr"));
        i++;
      } else if (QUOTE.test(line)) {
        const inner = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
          inner.push(m[1]);
          i++;
        }
        const quote = el("blockquote");
        blocks(inner, quote, depth + 1);
        parent.appendChild(quote);
      } else if (ITEM.test(line)) {
        i = list(lines, i, parent, depth);
      } else if (isTableStart(lines, i)) {
        i = table(lines, i, parent, depth);
      } else {
        const text = [line.trim()];
        i++;
        while (i < lines.length && !isBlank(lines[i]) && !interrupts(lines, i)) {
          text.push(lines[i].trim());
          i++;
        }
        const paragraph = el("p");
        inline(text.join("\n"), paragraph, depth);
        parent.appendChild(paragraph);
      }
    }
  }

  function fencedCode(lines, start, match, parent) {
    const indent = match[1].length;
    const fence = match[2];
    const closing = new RegExp("^ {0,3}" + (fence[0] === "`" ? "`" : "~") + "{" + fence.length + ",}[ \\t]*$");
    const body = [];
    let i = start + 1;
    while (i < lines.length && !closing.test(lines[i])) {
      body.push(lines[i].slice(Math.min(indent, indentOf(lines[i]))));
      i++;
    }
    parent.appendChild(codeBlock(body.join("\n"), match[3]));
    return i + 1;  // past the closing fence (or the end: a fence still streaming)
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
    const code = el("code", lang ? "language-" + lang : null, text);
    pre.appendChild(code);
    wrap.appendChild(head);
    wrap.appendChild(pre);
    return wrap;
  }

  function list(lines, start, parent, depth) {
    const first = ITEM.exec(lines[start]);
    const ordered = /\d/.test(first[2]);
    const marker = (m) => (/\d/.test(m[2]) ? m[2].slice(-1) : m[2]);  // a new marker starts a new list
    const baseIndent = first[1].length;
    const node = el(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
    let loose = false;
    let i = start;
    const items = [];
    while (i < lines.length) {
      const m = ITEM.exec(lines[i]);
      if (!m || marker(m) !== marker(first) || m[1].length > baseIndent + 1) break;
      const gap = m[3] ? m[3].length : 1;
      const contentIndent = m[1].length + m[2].length + (gap <= 4 ? gap : 1);
      const body = [m[4] === undefined ? "" : (gap <= 4 ? m[4] : " ".repeat(gap - 1) + m[4])];
      i++;
      let blankBefore = false;
      while (i < lines.length) {
        const line = lines[i];
        if (isBlank(line)) {
          body.push("");
          blankBefore = true;
          i++;
          continue;
        }
        const indent = indentOf(line);
        const nestedItem = ITEM.test(line) && indent > m[1].length;
        if (indent >= contentIndent || nestedItem) {
          if (blankBefore) loose = true;
          body.push(line.slice(Math.min(indent, contentIndent)));
        } else if (!blankBefore && !interrupts(lines, i) && !ITEM.test(line)) {
          body.push(line.trim());  // a lazy continuation of the item's paragraph
        } else {
          break;
        }
        blankBefore = false;
        i++;
      }
      const sibling = i < lines.length && ITEM.exec(lines[i]);
      while (body.length > 1 && body[body.length - 1] === "") {
        body.pop();
        if (sibling && marker(sibling) === marker(first)) loose = true;  // a blank line between items
      }
      items.push(body);
    }
    for (const body of items) {
      const item = el("li");
      blocks(body, item, depth + 1);
      node.appendChild(item);
    }
    if (!loose) {
      for (const item of node.children) {
        for (const child of Array.from(item.children)) {
          if (child.tagName === "P") child.replaceWith(...child.childNodes);
        }
      }
    }
    parent.appendChild(node);
    return i;
  }

  function splitRow(line) {
    let row = line.trim();
    if (row.startsWith("|")) row = row.slice(1);
    if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
    const cells = [];
    let cell = "";
    for (let i = 0; i < row.length; i++) {
      if (row[i] === "\\" && row[i + 1] === "|") {
        cell += "|";
        i++;
      } else if (row[i] === "|") {
        cells.push(cell.trim());
        cell = "";
      } else {
        cell += row[i];
      }
    }
    cells.push(cell.trim());
    return cells;
  }

  function table(lines, start, parent, depth) {
    const header = splitRow(lines[start]);
    const aligns = splitRow(lines[start + 1]).map((spec) =>
      spec.startsWith(":") && spec.endsWith(":") ? "center" : spec.endsWith(":") ? "right" :
        spec.startsWith(":") ? "left" : "");
    const wrap = el("div", "table-wrap");
    const node = el("table");
    const row = (cells, tag) => {
      const tr = el("tr");
      header.forEach((_, k) => {
        const cell = el(tag);
        if (aligns[k]) cell.style.textAlign = aligns[k];
        inline(cells[k] || "", cell, depth);
        tr.appendChild(cell);
      });
      return tr;
    };
    const thead = el("thead");
    thead.appendChild(row(header, "th"));
    node.appendChild(thead);
    const tbody = el("tbody");
    let i = start + 2;
    while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
      tbody.appendChild(row(splitRow(lines[i]), "td"));
      i++;
    }
    node.appendChild(tbody);
    wrap.appendChild(node);
    parent.appendChild(wrap);
    return i;
  }

  /** The end of the code span whose opening run of `run` backticks ends at `from`, or -1. */
  function codeSpanEnd(text, from, run) {
    let j = from;
    while ((j = text.indexOf("`", j)) >= 0) {
      let k = j;
      while (text[k] === "`") k++;
      if (k - j === run) return j;
      j = k;
    }
    return -1;
  }

  /** Where the closing delimiter (`n` times `c`) of an emphasis opened before `from` is, or -1. */
  function emphasisEnd(text, from, c, n) {
    let j = from;
    while (j < text.length) {
      const ch = text[j];
      if (ch === "\\") {
        j += 2;
      } else if (ch === "`") {
        let k = j;
        while (text[k] === "`") k++;
        const end = codeSpanEnd(text, k, k - j);
        j = end < 0 ? k : end + (k - j);
      } else if (ch === c) {
        let k = j;
        while (text[k] === c) k++;
        const closes = k - j === n && j > from && !/\s/.test(text[j - 1]) &&
          (c !== "_" || !WORD.test(text[k] || ""));
        if (closes) return j;
        j = k;
      } else {
        j++;
      }
    }
    return -1;
  }

  function emphasis(text, i, depth) {
    const c = text[i];
    let run = 0;
    while (text[i + run] === c) run++;
    if ((c === "~" && run !== 2) || run > 3) return null;
    const next = text[i + run];
    if (!next || /\s/.test(next)) return null;
    if (c === "_" && i > 0 && WORD.test(text[i - 1])) return null;  // snake_case stays as it is
    const end = emphasisEnd(text, i + run, c, run);
    if (end < 0) return null;
    let node;
    let inner;
    if (c === "~") {
      node = inner = el("del");
    } else if (run === 1) {
      node = inner = el("em");
    } else {
      node = inner = el("strong");
      if (run === 3) node.appendChild(inner = el("em"));
    }
    inline(text.slice(i + run, end), inner, depth + 1);
    return { node, end: end + run };
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url, document.baseURI);
      return ["http:", "https:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function anchor(href, label, depth, asText) {
    const a = el("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    if (asText) a.textContent = label;
    else inline(label, a, depth + 1);
    return a;
  }

  /** A `[label](target)` starting at `i`, or null. */
  function link(text, i) {
    let level = 0;
    let j = i;
    for (; j < text.length; j++) {
      if (text[j] === "\\") j++;
      else if (text[j] === "[") level++;
      else if (text[j] === "]" && --level === 0) break;
    }
    if (j >= text.length || text[j + 1] !== "(") return null;
    LINK_TARGET.lastIndex = j + 1;
    const m = LINK_TARGET.exec(text);
    if (!m) return null;
    return { label: text.slice(i + 1, j), url: m[1], end: LINK_TARGET.lastIndex };
  }

  function inline(text, parent, depth) {
    if (depth > MAX_DEPTH) {
      parent.appendChild(document.createTextNode(text));
      return;
    }
    let buffer = "";
    const flush = () => {
      if (buffer) parent.appendChild(document.createTextNode(buffer));
      buffer = "";
    };
    const emit = (node) => {
      flush();
      parent.appendChild(node);
    };
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      let m;
      if (c === "\\" && i + 1 < text.length && PUNCT.includes(text[i + 1])) {
        buffer += text[i + 1];
        i += 2;
        continue;
      }
      if (c === "`") {
        let run = 0;
        while (text[i + run] === "`") run++;
        const end = codeSpanEnd(text, i + run, run);
        if (end < 0) {
          buffer += text.slice(i, i + run);
          i += run;
          continue;
        }
        let code = text.slice(i + run, end).replace(/\n/g, " ");
        if (code.length > 2 && code.startsWith(" ") && code.endsWith(" ") && code.trim()) code = code.slice(1, -1);
        emit(el("code", null, code));
        i = end + run;
        continue;
      }
      if (c === "*" || c === "_" || c === "~") {
        const found = emphasis(text, i, depth);
        if (found) {
          emit(found.node);
          i = found.end;
        } else {
          let run = 0;
          while (text[i + run] === c) run++;
          buffer += text.slice(i, i + run);
          i += run;
        }
        continue;
      }
      if (c === "!" && text[i + 1] === "[") {
        const found = link(text, i + 1);
        const href = found && safeUrl(found.url);
        if (href) {  // never loaded: shown as a link to the image
          emit(anchor(href, "[image: " + (found.label || found.url) + "]", depth, true));
          i = found.end;
          continue;
        }
      }
      if (c === "[") {
        const found = link(text, i);
        const href = found && safeUrl(found.url);
        if (href) {
          emit(anchor(href, found.label || found.url, depth, false));
          i = found.end;
          continue;
        }
      }
      if (c === "<") {
        AUTOLINK.lastIndex = i;
        const href = (m = AUTOLINK.exec(text)) && safeUrl(m[1]);
        if (href) {
          emit(anchor(href, m[1], depth, true));
          i = AUTOLINK.lastIndex;
          continue;
        }
      }
      if ((c === "h" || c === "H") && (i === 0 || /[\s(*_~]/.test(text[i - 1]))) {
        BARE_URL.lastIndex = i;
        if ((m = BARE_URL.exec(text))) {
          let url = m[0];
          const opened = (s) => s.split("(").length - s.split(")").length;
          while (text[i + url.length] === ")" && opened(url) > 0) url += ")";  // ...wiki/Foo_(bar)
          const href = safeUrl(url);
          if (href) {
            emit(anchor(href, url, depth, true));
            i += url.length;
            continue;
          }
        }
      }
      buffer += c;
      i++;
    }
    flush();
  }

  window.EmberMarkdown = { render };
})();
