// The chat page: messages live over the websocket, rendered as they stream.
//
// Every message element carries data-message-id, data-role, data-state and data-seq (the length
// of its text, as the server counts it). A delta whose seq is not beyond what a message already
// has is ignored, so a snapshot and live deltas merge without duplicated text after a reconnect.
import { ChatSocket } from "./socket.js";
import { addCopyButtons, copyText, renderMarkdown, renderMeta } from "./render.js";
import { draftStore, setupComposer } from "./composer.js";
import { addChooseButton, setupPicker } from "./picker.js";

const FOLLOW_SLACK_PX = 48; // "at the bottom" allows for a little rounding and padding

const app = document.getElementById("chat-app");
if (app) start(app);

/** The HTML at `url` as elements (a fragment), or null when it could not be had. */
async function fetchFragment(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    if (!response.ok) return null;
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    return template.content;
  } catch {
    return null; // offline for a moment
  }
}

/** A "Show older/earlier" button's next rows (from its data-url), or null, said on the button. */
async function fetchMore(button) {
  if (button.disabled) return null;
  button.disabled = true;
  const rows = await fetchFragment(button.dataset.url);
  if (!rows) {
    button.textContent = "Could not load them. Try again";
    button.disabled = false;
  }
  return rows;
}

function start(app) {
  const log = document.getElementById("chat-log");
  const composerForm = document.getElementById("composer");
  const textarea = document.getElementById("composer-text");
  const sendButton = document.getElementById("send-button");
  const stopButton = document.getElementById("stop-button");
  const status = document.getElementById("connection-status");
  const errorBox = document.getElementById("composer-error");
  const jump = document.getElementById("jump-latest");
  const connected = app.dataset.connected === "1";

  const state = {
    conversation: Number(app.dataset.conversation) || null,
    model: app.dataset.model,
    modelChosen: false, // a pick on this page is sent with the next prompt
    entries: new Map(), // message id → entry
    pending: null, // {ref, text, slot, dropped} of a prompt sent and not yet started
    following: true,
    deleted: false, // the conversation was deleted elsewhere (a ``deleted`` frame)
  };

  // --- messages -----------------------------------------------------------------------------

  function adopt(article) {
    const entry = {
      id: Number(article.dataset.messageId),
      role: article.dataset.role,
      state: article.dataset.state,
      seq: Number(article.dataset.seq) || 0,
      el: article,
      body: article.querySelector(".message-body"),
      source: article.querySelector(".message-body").textContent,
      queued: false,
    };
    state.entries.set(entry.id, entry);
    paint(entry);
    return entry;
  }

  function create(view) {
    const article = document.createElement("article");
    article.className = `msg msg-${view.role}`;
    article.dataset.messageId = view.id;
    article.dataset.role = view.role;
    article.dataset.state = view.state;
    article.dataset.seq = "0";
    const body = document.createElement("div");
    body.className = "message-body";
    article.append(body);
    // Keep the log in id order, whatever order frames arrive in.
    const later = [...state.entries.values()].filter((e) => e.id > view.id).sort((a, b) => a.id - b.id)[0];
    if (later) later.el.before(article);
    else log.append(article);
    document.getElementById("chat-empty")?.remove();
    return adopt(article);
  }

  /** A full message view (snapshot, started): the server's word replaces ours. */
  function upsert(view) {
    const entry = state.entries.get(view.id) || create(view);
    entry.source = view.text;
    entry.seq = view.seq;
    setState(entry, view);
    paint(entry);
    return entry;
  }

  function setState(entry, view) {
    entry.state = view.state;
    entry.el.dataset.state = view.state;
    entry.el.dataset.seq = String(entry.seq);
    if (entry.role === "assistant") renderMeta(entry.el, view);
  }

  function remove(id) {
    const entry = state.entries.get(id);
    if (entry) {
      entry.el.remove();
      state.entries.delete(id);
    }
  }

  function paint(entry) {
    if (entry.role === "assistant") {
      entry.body.innerHTML = renderMarkdown(entry.source);
      addCopyButtons(entry.body);
    } else {
      entry.body.textContent = entry.source; // a prompt is shown as typed
    }
    followIfFollowing();
  }

  // Streaming text is painted once per animation frame at most, however fast deltas come.
  function schedulePaint(entry) {
    if (entry.queued) return;
    entry.queued = true;
    requestAnimationFrame(() => {
      entry.queued = false;
      paint(entry);
    });
  }

  function streamingEntry() {
    for (const entry of state.entries.values()) if (entry.state === "streaming") return entry;
    return null;
  }

  function refreshControls() {
    const streaming = streamingEntry();
    stopButton.hidden = !streaming;
    sendButton.hidden = Boolean(streaming);
    log.setAttribute("aria-busy", String(Boolean(streaming)));
    const entries = [...state.entries.values()].sort((a, b) => a.id - b.id);
    const last = entries[entries.length - 1];
    for (const entry of entries) {
      entry.el.querySelector(":scope > .msg-actions")?.remove();
      if (state.deleted) continue; // deleted elsewhere: nothing to act on
      if (entry.role === "user") {
        // The last prompt, answered, can be edited (and so answered again).
        const editable = entry === entries[entries.length - 2] && !streaming && connected;
        if (editable && !entry.el.querySelector(".msg-editor")) {
          const actions = document.createElement("div");
          actions.className = "msg-actions";
          actions.append(actionButton("edit", "Edit"));
          entry.el.append(actions);
        }
        continue;
      }
      if (entry.state === "streaming") continue;
      const actions = document.createElement("div");
      actions.className = "msg-actions";
      if (entry.source) actions.append(actionButton("copy", "Copy")); // not for an empty error
      if (entry === last && !streaming && connected) {
        const failed = entry.state === "error" || entry.state === "interrupted";
        actions.append(actionButton(failed ? "retry" : "regenerate", failed ? "Retry" : "Regenerate"));
      }
      if (actions.childElementCount) entry.el.append(actions);
    }
    if (state.following) log.scrollTop = log.scrollHeight; // the actions added stay in view
  }

  /** The last prompt, edited in place: sent as an ``edit``, answered again. */
  function startEditing(entry) {
    if (entry.el.querySelector(".msg-editor")) return;
    const editor = document.createElement("form");
    editor.className = "msg-editor";
    const area = document.createElement("textarea");
    area.value = entry.source;
    area.maxLength = textarea.maxLength;
    area.rows = Math.min(10, entry.source.split("\n").length + 1);
    area.setAttribute("aria-label", "Your message, edited");
    const buttons = document.createElement("div");
    buttons.className = "msg-actions";
    const save = actionButton("edit-send", "Send");
    save.type = "submit";
    save.className = "small";
    buttons.append(save, actionButton("edit-cancel", "Cancel"));
    editor.append(area, buttons);
    entry.body.hidden = true;
    entry.el.querySelector(":scope > .msg-actions")?.remove();
    entry.el.append(editor);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
    editor.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!area.value.trim()) {
        // Kept open: Cancel (or Escape) brings the prompt back as it was sent.
        showError("A message cannot be empty.");
        area.focus();
        return;
      }
      if (streamingEntry()) {
        showError("An answer is still coming: wait for it or stop it.");
        return;
      }
      send({ type: "edit", message: entry.id, text: area.value }); // kept open until started
    });
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        editor.requestSubmit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        stopEditing(entry);
      }
    });
  }

  function stopEditing(entry) {
    if (!entry?.el.querySelector(".msg-editor")) return;
    entry.el.querySelector(".msg-editor").remove();
    entry.body.hidden = false;
    refreshControls();
  }

  function actionButton(action, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary small";
    button.dataset.action = action;
    button.textContent = label;
    return button;
  }

  // --- following the stream -----------------------------------------------------------------

  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < FOLLOW_SLACK_PX;

  function followIfFollowing() {
    if (state.following) log.scrollTop = log.scrollHeight;
    else jump.hidden = false;
  }

  log.addEventListener("scroll", () => {
    state.following = atBottom();
    if (state.following) jump.hidden = true;
  });
  jump.addEventListener("click", () => {
    state.following = true;
    jump.hidden = true;
    log.scrollTop = log.scrollHeight;
  });

  // --- frames from the server ---------------------------------------------------------------

  const handlers = {
    snapshot(frame) {
      upsert(frame.message);
      const { role, text } = frame.message;
      if (state.pending?.dropped && role === "user" && text.trim() === state.pending.text.trim()) {
        pendingSent(); // it reached the server before the connection dropped
      }
    },
    subscribed() {
      if (state.pending?.dropped) pendingBack(NOT_SENT);
    },
    started(frame) {
      if (frame.replaces) remove(frame.replaces);
      if (!state.conversation) becomeConversation(frame.conversation);
      // The model it was asked of (another tab may have picked it): shown, unless a pick made
      // here is still to be sent.
      if (frame.conversation.id === state.conversation && !state.modelChosen) {
        showModel(frame.conversation.model);
      }
      stopEditing(state.entries.get(frame.user.id)); // an edit went through (here or elsewhere)
      upsert(frame.user);
      upsert(frame.message);
      state.following = true;
      followIfFollowing();
      if (state.pending) pendingSent();
    },
    delta(frame) {
      const entry = state.entries.get(frame.message);
      if (!entry || frame.seq <= entry.seq) return;
      entry.source += frame.text;
      entry.seq = frame.seq;
      entry.el.dataset.seq = String(frame.seq);
      schedulePaint(entry);
    },
    done(frame) {
      const entry = state.entries.get(frame.message.id);
      if (!entry) return;
      setState(entry, frame.message);
      paint(entry);
    },
    error(frame) {
      if (state.pending && frame.ref === state.pending.ref) pendingBack(frame.message);
      else showError(frame.message);
    },
    deleted(frame) {
      if (frame.conversation !== state.conversation) return;
      // Deleted elsewhere: nothing here can be sent or answered any more; say so, with the way out.
      const notice = document.getElementById("conversation-deleted");
      notice.hidden = false;
      // What was being typed here goes to the new chat the notice links to.
      const unsent = textarea.value;
      if (unsent.trim()) {
        const waiting = drafts.read("new");
        drafts.write("new", waiting && waiting !== unsent ? `${waiting}\n\n${unsent}` : unsent);
        notice.querySelector("[data-draft-carried]").hidden = false;
      }
      drafts.write(frame.conversation, "");
      notice.querySelector("a").focus();
      for (const control of composerForm.elements) control.disabled = true;
      state.deleted = true;
      document.querySelector(".chat-header .chat-settings")?.remove(); // nothing left to set
      const list = document.getElementById("conversation-list");
      list.querySelector(`[data-conversation-id="${frame.conversation}"]`)?.remove();
      const searched = document.getElementById("search-summary"); // its own words for none
      if (!searched && !list.querySelector(".conversation-item, .conversation-more, .conversation-none:not([hidden])")) {
        const none = document.createElement("li");
        none.className = "muted small conversation-none";
        none.textContent = "No conversations yet.";
        list.append(none);
      }
    },
    pong() {},
  };

  function onFrame(frame) {
    const handler = handlers[frame.type];
    if (!handler) return;
    if (frame.type !== "pong") lastNews = Date.now();
    if (frame.type === "delta" || frame.type === "pong") {
      handler(frame);
      return;
    }
    const focused = document.activeElement;
    const article = focused?.closest(".msg");
    handler(frame);
    refreshControls();
    keepFocus(focused, article);
  }

  /** A control that had the keyboard's focus and is now gone or hidden (Stop once the answer
   * ended, Regenerate or an edit's Send once the new answer started): the same action on the
   * same message takes it, or else the prompt box, not the top of the page. */
  function keepFocus(focused, article) {
    if (!focused || focused === document.body) return;
    if (focused.isConnected && focused.checkVisibility()) return; // still there
    if (document.activeElement !== focused && document.activeElement !== document.body) return;
    const action = focused.dataset?.action;
    const same = action && article?.isConnected ? article.querySelector(`.msg-actions [data-action="${action}"]`) : null;
    (same ?? textarea).focus({ preventScroll: true });
  }

  function becomeConversation(conversation) {
    state.conversation = conversation.id;
    app.dataset.conversation = String(conversation.id);
    const url = app.dataset.conversationUrl.replace("/0/", `/${conversation.id}/`);
    history.replaceState(null, "", url);
    document.getElementById("chat-title").textContent = conversation.title;
    document.title = document.title.replace(/^[^·]*/, `${conversation.title} `);
    document.querySelector(".composer-options")?.remove();
    addToSidebar(conversation, url);
    adoptServerParts(conversation.id, url);
  }

  // The row added above has no menu yet, and the header no Settings: take both from the
  // conversation's page, as the server renders them on a reload (its forms, its token).
  async function adoptServerParts(id, url) {
    const page = await fetchFragment(url);
    if (!page) return; // a reload brings them
    const selector = `#conversation-list [data-conversation-id="${id}"]`;
    const row = page.querySelector(selector);
    if (row) document.querySelector(selector)?.replaceWith(document.adoptNode(row));
    const settings = page.querySelector(".chat-settings");
    const header = document.querySelector(".chat-header");
    if (settings && header && state.conversation === id && !header.querySelector(".chat-settings")) {
      header.append(document.adoptNode(settings));
      addModelChooser(header);
    }
  }

  function addToSidebar(conversation, url) {
    const list = document.getElementById("conversation-list");
    list.querySelector(".conversation-none")?.remove();
    for (const item of list.querySelectorAll(".active")) item.classList.remove("active");
    const item = document.createElement("li");
    item.className = "conversation-item active";
    item.dataset.conversationId = conversation.id;
    item.dataset.title = conversation.title.toLowerCase();
    const link = document.createElement("a");
    link.href = url;
    link.setAttribute("aria-current", "page");
    const title = document.createElement("span");
    title.className = "conversation-title";
    title.textContent = conversation.title;
    link.append(title);
    item.append(link);
    list.prepend(item);
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => (errorBox.hidden = true), 12_000);
  }

  // --- talking to the server ----------------------------------------------------------------

  function subscribe() {
    if (!state.conversation) {
      if (state.pending?.dropped) findDroppedConversation();
      return;
    }
    // Ask again for everything that may have changed while away: each streaming message, and
    // anything newer than the newest message shown.
    const ids = [...state.entries.keys()];
    const streaming = [...state.entries.values()].filter((e) => e.state === "streaming").map((e) => e.id);
    const since = streaming.length ? Math.min(...streaming) : ids.length ? Math.max(...ids) + 1 : 0;
    socket.send({ type: "subscribe", conversation: state.conversation, since });
  }

  const STATUS_TEXT = {
    connecting: "Connecting…",
    reconnecting: "Reconnecting…",
    open: "",
    "signed-out": "Signed out: reload the page to sign in again.",
  };

  const socket = new ChatSocket(app.dataset.socketPath, {
    onOpen: subscribe,
    onFrame,
    onStatus(value) {
      // A prompt sent and not yet started may or may not have reached the server: the
      // conversation's messages say which once reconnected (``subscribed``).
      if (value === "reconnecting" && state.pending) state.pending.dropped = true;
      status.textContent = STATUS_TEXT[value] ?? "";
      sendButton.disabled = !connected || value !== "open" || state.deleted;
    },
  });

  function newConversationOptions() {
    const options = {};
    for (const name of ["system_prompt", "temperature", "max_tokens"]) {
      const field = composerForm.querySelector(`[name="${name}"]`);
      if (field && field.value.trim() !== "") options[name] = name === "system_prompt" ? field.value : Number(field.value);
    }
    return options;
  }

  function send(frame) {
    const ref = `r${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    if (!socket.send({ ...frame, ref })) {
      showError("Not connected right now. Reconnecting — try again in a moment.");
      return null;
    }
    errorBox.hidden = true;
    return ref;
  }

  const composer = setupComposer(composerForm, textarea, (text) => {
    if (!connected) return false;
    if (streamingEntry()) {
      showError("An answer is still coming: wait for it or stop it.");
      return false;
    }
    const frame = { type: "send", conversation: state.conversation, text };
    if (state.modelChosen || !state.conversation) frame.model = state.model;
    if (!state.conversation) frame.options = newConversationOptions();
    const ref = send(frame);
    if (ref === null) return false;
    state.pending = { ref, text, slot: draftSlot() };
    return true;
  });

  const NOT_SENT = "The connection dropped before your message was sent: it is back in the box to send again.";

  /** The prompt sent went through: its draft goes; what was typed since, if anything, is the next one. */
  function pendingSent() {
    if (state.pending.slot !== draftSlot()) drafts.write(state.pending.slot, "");
    keepDraft();
    state.pending = null;
  }

  /** The prompt sent was refused or lost: its text goes back in the box, nothing typed is lost. */
  function pendingBack(message) {
    composer.restore(state.pending.text);
    keepDraft();
    state.pending = null;
    showError(message);
  }

  /** A new chat's first prompt, its connection dropped before it started: if the list now has
   * a conversation titled by it (chat.services.conversation_title_from: its first line, cut
   * short), it went through, and that conversation opens; otherwise the text is back. */
  async function findDroppedConversation() {
    const pending = state.pending;
    const rows = (await fetchFragment(app.dataset.listUrl)) ?? new DocumentFragment();
    if (state.pending !== pending) return;
    const line = pending.text.trim().split("\n", 1)[0].replace(/\s+/g, " ").toLowerCase();
    const known = (id) => document.querySelector(`#conversation-list [data-conversation-id="${id}"]`);
    const ours = [...rows.querySelectorAll("[data-conversation-id]")].find(
      (row) => !known(row.dataset.conversationId) && line.startsWith(row.dataset.title.replace(/…$/, "")),
    );
    if (!ours) {
      pendingBack(NOT_SENT);
      return;
    }
    pendingSent();
    location.assign(ours.querySelector("a").href);
  }

  const drafts = draftStore(`switchboard:draft:${app.dataset.user}:`);
  const draftSlot = () => state.conversation ?? "new";
  const keepDraft = () => drafts.write(draftSlot(), textarea.value);
  textarea.addEventListener("input", keepDraft);
  composer.restore(drafts.read(draftSlot()));
  // Text typed (or put back by the browser) before this script ran is this page's draft too.
  if (textarea.value) keepDraft();

  stopButton.addEventListener("click", () => {
    const entry = streamingEntry();
    if (entry) send({ type: "stop", message: entry.id });
  });

  log.addEventListener("click", async (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.hasAttribute("data-earlier")) {
      showEarlier(target);
      return;
    }
    const article = target.closest(".msg");
    const entry = article && state.entries.get(Number(article.dataset.messageId));
    if (target.classList.contains("copy-code")) {
      await copyText(target.closest("pre").querySelector("code")?.textContent ?? "");
      flash(target, "Copied");
    } else if (entry && target.dataset.action === "copy") {
      await copyText(entry.source);
      flash(target, "Copied");
    } else if (entry && (target.dataset.action === "regenerate" || target.dataset.action === "retry")) {
      send({ type: target.dataset.action, message: entry.id });
    } else if (entry && target.dataset.action === "edit") {
      startEditing(entry);
    } else if (entry && target.dataset.action === "edit-cancel") {
      stopEditing(entry);
    }
  });

  function flash(button, text) {
    const before = button.textContent;
    button.textContent = text;
    setTimeout(() => (button.textContent = before), 1500);
  }

  // --- model picker -------------------------------------------------------------------------

  const label = document.getElementById("model-label");
  const openPicker = setupPicker({
    dialog: document.getElementById("model-picker"),
    button: document.getElementById("model-button"),
    current: () => state.model,
    onChoose(model) {
      showModel(model.id);
      state.modelChosen = true;
      if (state.conversation) rememberModel(model.id);
      textarea.focus(); // chosen: what comes next is the prompt
    },
  });

  function showModel(id) {
    state.model = id;
    label.textContent = id || "My OpenRouter default";
  }

  // A conversation's Settings (on the page, or added after its first send): its model field
  // gets a button that opens the same picker.
  function addModelChooser(root) {
    const field = root.querySelector(".settings-panel input[name=model]");
    if (field) addChooseButton(field, openPicker);
  }
  addModelChooser(document);

  async function rememberModel(model) {
    const token = document.querySelector("#model-picker input[name=csrfmiddlewaretoken]").value;
    const body = new URLSearchParams({ model });
    const url = app.dataset.modelUrl.replace("/0/", `/${state.conversation}/`);
    const response = await fetch(url, { method: "POST", body, headers: { "X-CSRFToken": token } });
    if (response.ok) state.modelChosen = false; // stored: the next prompt need not carry it
    else showError("Could not save the model choice; it will be sent with your next message.");
  }

  /** "Show earlier messages": the ones before those shown, as the server renders them
   * (chat:messages), put above with what was in view kept where it was. */
  async function showEarlier(button) {
    const earlier = await fetchMore(button);
    if (!earlier) return;
    const anchor = log.querySelector(".msg");
    const top = anchor?.getBoundingClientRect().top ?? 0;
    const added = [...earlier.children].filter(
      (el) => !el.dataset.messageId || !state.entries.has(Number(el.dataset.messageId)),
    );
    button.closest(".earlier-messages").replaceWith(...added);
    for (const article of added.filter((el) => el.matches(".msg"))) adopt(article);
    state.following = false; // reading back: new text must not pull the view down
    if (anchor) log.scrollTop += anchor.getBoundingClientRect().top - top;
    // The button is gone: focus goes to the next one, or to the first message brought.
    const next = log.querySelector("[data-earlier]") ?? added.find((el) => el.matches(".msg"));
    if (next && !next.matches("button")) next.tabIndex = -1;
    next?.focus({ preventScroll: true });
  }

  // --- sidebar ------------------------------------------------------------------------------

  /** Opened from a message search (?q=): the first message that matches, in view and lit up,
   * and the searched words marked in it (until the search box changes). */
  function showSearchHit(query) {
    const words = query?.trim().toLowerCase();
    if (!words) return;
    const entries = [...state.entries.values()].sort((a, b) => a.id - b.id);
    const hit = entries.find((entry) => entry.source.toLowerCase().includes(words));
    if (!hit) return; // found by its title
    state.following = false;
    const marked = markWords(hit.el.querySelector(".message-body"), words);
    (marked?.startContainer.parentElement ?? hit.el).scrollIntoView({ block: "center" });
    hit.el.classList.add("search-hit");
    hit.el.addEventListener("animationend", () => hit.el.classList.remove("search-hit"), { once: true });
  }

  /** Marks each place `words` stand in `body`'s text (CSS highlights: the rendered message is
   * left as it is); returns the first, or null (none, or a browser without highlights). */
  function markWords(body, words) {
    if (!body || !globalThis.CSS?.highlights) return null;
    const ranges = [];
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.data.toLowerCase();
      for (let at = text.indexOf(words); at !== -1; at = text.indexOf(words, at + words.length)) {
        const range = new Range();
        range.setStart(node, at);
        range.setEnd(node, at + words.length);
        ranges.push(range);
      }
    }
    if (ranges.length) CSS.highlights.set("search", new Highlight(...ranges));
    return ranges[0] ?? null;
  }

  const search = document.getElementById("conversation-search");
  const searchSummary = document.getElementById("search-summary");
  search?.addEventListener("input", () => {
    globalThis.CSS?.highlights?.delete("search"); // the words marked were of the search sent
    const words = search.value.trim().toLowerCase();
    // "N results for …" is of the search sent; a different text is not searched yet.
    if (searchSummary) searchSummary.hidden = search.value.trim() !== searchSummary.dataset.query.trim();
    const shown = filterByTitle();
    // Said, not an empty list; Enter asks the server, which reads the messages too.
    let none = document.getElementById("conversation-none-live");
    if (!none) {
      none = document.createElement("li");
      none.id = "conversation-none-live";
      none.className = "muted small conversation-none";
      document.getElementById("conversation-list").append(none);
    }
    for (const other of document.querySelectorAll(".conversation-none:not(#conversation-none-live)")) {
      other.hidden = Boolean(words);
    }
    none.hidden = shown > 0 || !words;
    none.textContent = `No conversation titled like “${search.value.trim()}”. Press Enter to search the messages too.`;
  });
  /** Shows only the rows whose title holds what the search box says; returns how many. */
  function filterByTitle() {
    const words = search?.value.trim().toLowerCase();
    let shown = 0;
    for (const item of document.querySelectorAll("#conversation-list [data-title]")) {
      item.hidden = Boolean(words) && !item.dataset.title.includes(words);
      if (!item.hidden) shown += 1;
    }
    return shown;
  }

  // "Show older": the next rows as the server renders them (chat:list), after the last one.
  document.getElementById("conversation-list").addEventListener("click", async (event) => {
    const button = event.target.closest("[data-older]");
    const rows = button && (await fetchMore(button));
    if (!rows) return;
    const more = button.closest("li");
    const list = more.parentElement;
    const added = [...rows.children].filter(
      (row) => !row.dataset.conversationId || !list.querySelector(`[data-conversation-id="${row.dataset.conversationId}"]`),
    );
    more.replaceWith(...added);
    filterByTitle();
    // The button is gone: keyboard focus goes on to the first row it brought.
    added.find((row) => !row.hidden)?.querySelector("a, button")?.focus();
  });
  // A row's Rename and Delete come back to this page (their "next"), which may have become a
  // conversation since its rows were rendered: a new chat's first prompt.
  document.getElementById("conversation-list").addEventListener("submit", (event) => {
    const back = event.target.elements.next;
    if (back) back.value = location.pathname + location.search;
  });

  // At phone width the list is a drawer: ☰ opens it; ✕, Escape or a tap beside it closes it.
  const toggle = document.querySelector(".sidebar-toggle");
  const sidebar = document.getElementById("chat-sidebar");
  function showSidebar(open) {
    app.classList.toggle("sidebar-open", open);
    toggle?.setAttribute("aria-expanded", String(open));
    if (open) sidebar.querySelector(".sidebar-close")?.focus();
    else if (sidebar.contains(document.activeElement)) toggle?.focus();
  }
  toggle?.addEventListener("click", () => showSidebar(!app.classList.contains("sidebar-open")));
  sidebar.querySelector(".sidebar-close")?.addEventListener("click", () => showSidebar(false));
  app.addEventListener("click", (event) => {
    // The dimmed backdrop is the app's own ::after: a click on it targets the app itself.
    if (event.target === app && app.classList.contains("sidebar-open")) showSidebar(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented || event.isComposing) return;
    if (document.querySelector("details[data-popover][open]")) return; // that closes first
    if (app.classList.contains("sidebar-open")) showSidebar(false);
  });

  // A page shown without a connected key (composer off) checks again whenever the tab comes
  // back into view: connected meanwhile (in another tab, say), it reloads, ready to chat. The
  // key's figures answer 404 while there is no key, 200 once there is (accounts.views.credits).
  if (!connected) {
    document.addEventListener("visibilitychange", async () => {
      if (document.visibilityState !== "visible") return;
      try {
        const response = await fetch(app.dataset.creditsUrl);
        if (response.ok) location.reload(); // 404: still no key; anything else: ask next time
      } catch {
        // offline: the next look at the tab asks again
      }
    });
  }

  // A streaming answer that goes quiet says so: the model may be thinking, or stuck (the server
  // gives up after its idle limit); Stop gives up sooner.
  const silenceMs = Number(app.dataset.silenceHintMs) || 10_000;
  let lastNews = Date.now();
  setInterval(() => {
    const entry = streamingEntry();
    const quiet = entry ? Date.now() - lastNews : 0;
    for (const hint of log.querySelectorAll(".silence-hint")) {
      if (!entry || quiet < silenceMs || !entry.el.contains(hint)) hint.remove();
    }
    if (!entry || quiet < silenceMs) return;
    let hint = entry.el.querySelector(".silence-hint");
    if (!hint) {
      hint = document.createElement("p");
      hint.className = "silence-hint muted small";
      entry.el.querySelector(".message-body").after(hint);
    }
    const seconds = Math.round(quiet / 1000);
    hint.textContent = `No text from the model for ${seconds} s. It may still answer; Stop gives up.`;
  }, 1000);

  // --- go -----------------------------------------------------------------------------------

  for (const article of log.querySelectorAll(".msg")) adopt(article);
  refreshControls();
  log.scrollTop = log.scrollHeight;
  showSearchHit(new URLSearchParams(location.search).get("q"));
  socket.connect();
  // Into the prompt box, unless the page is already being used (a search typed while loading).
  if (connected && (document.activeElement ?? document.body) === document.body) textarea.focus();
}
