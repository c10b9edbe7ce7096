// The prompt box: Enter sends, Shift+Enter adds a line, the box grows with its text, and near
// its limit (the textarea's maxlength) it counts, and says so when a paste did not fit.

const MAX_HEIGHT_PX = 240;

/**
 * @param {HTMLFormElement} form
 * @param {HTMLTextAreaElement} textarea
 * @param {(text: string) => boolean} onSend returns false when the text could not be sent yet
 */
export function setupComposer(form, textarea, onSend) {
  const grow = () => {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, MAX_HEIGHT_PX)}px`;
  };
  const count = form.querySelector("#composer-count");
  const limit = textarea.maxLength;
  const meter = () => {
    if (!count || limit <= 0) return;
    const used = textarea.value.length;
    count.hidden = used < limit * 0.9;
    count.textContent = `${used.toLocaleString("en")} / ${limit.toLocaleString("en")} characters`;
  };
  textarea.addEventListener("paste", (event) => {
    const pasted = event.clipboardData?.getData("text") ?? "";
    const kept = textarea.value.length - (textarea.selectionEnd - textarea.selectionStart);
    const room = Math.max(0, limit - kept);
    if (!count || limit <= 0 || pasted.length <= room) return;
    // The browser keeps what fits; say so instead of cutting silently (after its input event).
    setTimeout(() => {
      count.hidden = false;
      count.textContent =
        `Only ${room.toLocaleString("en")} of the ${pasted.length.toLocaleString("en")} ` +
        `characters pasted fit: a message holds ${limit.toLocaleString("en")}.`;
    });
  });
  const submit = () => {
    const text = textarea.value;
    if (!text.trim()) return;
    if (onSend(text)) {
      textarea.value = "";
      grow();
      meter();
    }
  };
  textarea.addEventListener("input", () => {
    grow();
    meter();
  });
  textarea.addEventListener("keydown", (event) => {
    // isComposing: Enter also confirms an IME composition (Japanese, Chinese…); not a send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  grow();
  return {
    grow,
    restore(text) {
      if (!textarea.value) {
        textarea.value = text;
        textarea.setSelectionRange(text.length, text.length); // typing goes on at its end
        grow();
        meter();
      }
    },
  };
}

const DRAFT_DAYS = 7;
const DRAFTS_KEPT = 20;

/**
 * Unsent text, kept per conversation ("new" for a new chat) in this tab's sessionStorage, so
 * that a reload, a saved Settings form or a look at another conversation loses none of it.
 * Each tab keeps its own (README, "Decisions"); old ones are dropped as the page opens.
 * @param {string} prefix the signed-in user's, so one person's draft never shows for another
 */
export function draftStore(prefix) {
  const key = (slot) => `${prefix}${slot}`;
  const read = (slot) => {
    try {
      return JSON.parse(sessionStorage.getItem(key(slot)) ?? "null")?.text ?? "";
    } catch {
      return "";
    }
  };
  const write = (slot, text) => {
    try {
      if (text.trim()) sessionStorage.setItem(key(slot), JSON.stringify({ text, at: Date.now() }));
      else sessionStorage.removeItem(key(slot));
    } catch {
      // storage full or turned off: the box still holds the text
    }
  };
  try {
    const drafts = [];
    for (let index = 0; index < sessionStorage.length; index += 1) {
      const name = sessionStorage.key(index);
      if (!name.startsWith(prefix)) continue;
      let at = 0;
      try {
        at = Number(JSON.parse(sessionStorage.getItem(name)).at) || 0;
      } catch {
        // unreadable: dropped below
      }
      drafts.push({ name, at });
    }
    drafts.sort((a, b) => b.at - a.at);
    const oldest = Date.now() - DRAFT_DAYS * 86_400_000;
    for (const [rank, draft] of drafts.entries()) {
      if (rank >= DRAFTS_KEPT || draft.at < oldest) sessionStorage.removeItem(draft.name);
    }
  } catch {
    // no storage: nothing kept, nothing to drop
  }
  return { read, write };
}
