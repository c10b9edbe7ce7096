// Turning model output into safe HTML, and the line of facts under each answer.
//
// Model output is untrusted. markdown-it runs with `html: false`, so raw HTML in a reply is shown
// as text; its output then goes through DOMPurify, which also drops images, styles and any link
// that is not http(s) or mailto. Only then does it reach innerHTML.
import markdownit from "../../vendor/markdown-it/markdown-it.esm.min.js";
import DOMPurify from "../../vendor/dompurify/purify.es.js";
import hljs from "../../vendor/highlight.js/highlight.min.js";
import { setTextWithLinks } from "../links.js";
import { money } from "../money.js";

const md = markdownit({
  html: false,
  linkify: true,
  typographer: false,
  highlight(code, language) {
    if (language && hljs.getLanguage(language)) {
      try {
        return hljs.highlight(code, { language, ignoreIllegals: true }).value;
      } catch {
        // fall through: markdown-it escapes the code itself
      }
    }
    return "";
  },
});

const SAFE_LINK = /^(https?:|mailto:)/i;

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") || "";
    if (SAFE_LINK.test(href)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    } else {
      node.removeAttribute("href");
    }
  }
});

const PURIFY = {
  USE_PROFILES: { html: true },
  // Images would let a reply load remote URLs (tracking, data leaks); inline styles break the
  // Content-Security-Policy; forms and frames have no place in an answer.
  FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe", "svg", "math"],
  FORBID_ATTR: ["style"],
};

/** Markdown source → sanitized HTML string. */
export function renderMarkdown(source) {
  return DOMPurify.sanitize(md.render(source), PURIFY);
}

/** Adds a copy button to every code block in `body` (fresh after each render). */
export function addCopyButtons(body) {
  for (const pre of body.querySelectorAll("pre")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code secondary small";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    pre.append(button);
  }
}

/** Copies text, with a fallback for pages that are not a secure context. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

// Same rules as chat/templatetags/chat_format.py.
const thousands = (n) => Number(n).toLocaleString("en-US");

const STATE_LABELS = {
  streaming: "Streaming",
  stopped: "Stopped",
  error: "Error",
  interrupted: "Interrupted",
};

function span(text, title) {
  const element = document.createElement("span");
  element.textContent = text;
  if (title) element.title = title;
  return element;
}

/**
 * The facts under an answer (state, model served, tokens, cost, time to first token) and its
 * error sentence, from a message view (see chat/protocol.py). Built with textContent only.
 */
export function renderMeta(article, view) {
  let meta = article.querySelector(".msg-meta");
  if (!meta) {
    meta = document.createElement("footer");
    meta.className = "msg-meta";
    article.querySelector(".message-body").after(meta);
  }
  meta.replaceChildren();
  if (view.state !== "complete") {
    const badge = span(STATE_LABELS[view.state] || view.state);
    badge.className = `badge ${view.state}`;
    meta.append(badge);
  }
  if (view.model) {
    const model = span(view.model, "The model of this answer");
    model.className = "meta-model";
    meta.append(model);
  }
  const usage = view.usage;
  if (usage && (usage.prompt_tokens !== null || usage.completion_tokens !== null)) {
    meta.append(
      span(
        `${thousands(usage.prompt_tokens || 0)} → ${thousands(usage.completion_tokens || 0)} tokens`,
        "Prompt → completion tokens",
      ),
    );
  }
  if (usage && usage.cost !== null && usage.cost !== undefined) {
    meta.append(span(money(usage.cost) ?? "", "Cost of this answer (USD)"));
  }
  if (view.ttft_ms !== null && view.ttft_ms !== undefined) {
    meta.append(span(`first token ${thousands(view.ttft_ms)} ms`, "Time to first token"));
  }
  if (view.finish_reason === "length") {
    meta.append(span("hit max tokens", "The answer reached the max tokens setting"));
  }

  let error = article.querySelector(".msg-error");
  if (view.error && view.error.message) {
    if (!error) {
      error = document.createElement("p");
      error.className = "msg-error";
      error.setAttribute("role", "alert");
      meta.after(error);
    }
    setTextWithLinks(error, view.error.message);
  } else if (error) {
    error.remove();
  }
}
