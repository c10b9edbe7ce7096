// The model picker: the /models catalogue (cached on the server), searched and filtered here.

const DEFAULT_CHOICE = { id: "", name: "My OpenRouter default", description: "" };

/** A price per million tokens as people write prices: "$3", "$2.50", "$0.15", "$0.075". */
function perMillion(value) {
  if (value === null || value === undefined) return "?";
  const amount = Number(value);
  if (amount === 0) return "$0";
  const digits = amount >= 0.1
    ? { minimumFractionDigits: Number.isInteger(amount) ? 0 : 2, maximumFractionDigits: 2 }
    : { maximumSignificantDigits: 2 }; // below ten cents, cents alone would round to $0
  return `$${amount.toLocaleString("en-US", digits)}`;
}

function contextLabel(tokens) {
  if (!tokens) return "";
  if (tokens >= 1_000_000) return `${+(tokens / 1_000_000).toFixed(1)}M context`;
  return `${Math.round(tokens / 1000)}K context`;
}

/** "Free" or "$0.15/M in · $0.60/M out", then the context length. */
export function priceLine(model) {
  const price = model.free
    ? "Free"
    : `${perMillion(model.prompt_per_m)}/M in · ${perMillion(model.completion_per_m)}/M out`;
  return [price, contextLabel(model.context_length)].filter(Boolean).join(" · ");
}

/**
 * The picker opens from `button` (if any), for `current` and `onChoose`; the function returned
 * opens it for other ones (a model field elsewhere on the page). The list comes from the
 * dialog's data-models-url.
 * @param {{dialog: HTMLDialogElement, button?: HTMLElement, current?: () => string,
 *          onChoose?: (model: {id: string, name: string}) => void}} options
 * @returns {(chooser: {current: () => string, onChoose: (model: object) => void}) => void}
 */
export function setupPicker({ dialog, button, current, onChoose }) {
  const url = dialog.dataset.modelsUrl;
  let chooser = { current, onChoose };
  const search = dialog.querySelector("#picker-search");
  const free = dialog.querySelector("#picker-free");
  const price = dialog.querySelector("#picker-price");
  const context = dialog.querySelector("#picker-context");
  const list = dialog.querySelector("#picker-list");
  const status = dialog.querySelector("#picker-status");
  const clear = dialog.querySelector("#picker-clear");
  let models = null;
  let loading = null;

  async function load() {
    if (models || loading) return loading;
    status.textContent = "Loading models…";
    loading = fetch(url, { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((data) => {
        if (data.refreshing && !data.models.length) {
          // The server is fetching the list for the first time: ask again shortly.
          loading = null;
          status.textContent = "Fetching the model list from OpenRouter…";
          setTimeout(load, 2000);
          return;
        }
        models = data.models;
        loading = null;
        draw();
      })
      .catch(() => {
        loading = null;
        status.textContent = "Could not load the model list. Close and reopen to try again.";
      });
    return loading;
  }

  function matches(model) {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const haystack = `${model.name} ${model.id}`.toLowerCase();
    if (!words.every((word) => haystack.includes(word))) return false;
    if (free.checked && !model.free) return false;
    if (price.value) {
      const out = model.completion_per_m === null ? Infinity : Number(model.completion_per_m);
      if (out > Number(price.value)) return false;
    }
    if (context.value && (model.context_length || 0) < Number(context.value)) return false;
    return true;
  }

  function option(model, detail) {
    const item = document.createElement("li");
    const choice = document.createElement("button");
    choice.type = "button";
    choice.className = "picker-option";
    choice.setAttribute("role", "option");
    choice.dataset.modelId = model.id;
    const selected = model.id === chooser.current();
    choice.setAttribute("aria-selected", String(selected));
    const name = document.createElement("span");
    name.className = "picker-name";
    name.textContent = model.name;
    const line = document.createElement("span");
    line.className = "picker-detail muted small";
    line.textContent = detail;
    choice.append(name, line);
    choice.addEventListener("click", () => {
      dialog.close(); // first: closing gives focus back to the opener, onChoose may move it on
      chooser.onChoose({ id: model.id, name: model.id ? model.id : model.name });
    });
    item.append(choice);
    return item;
  }

  function draw() {
    if (!models) return;
    const shown = models.filter(matches);
    const items = [];
    if (!search.value.trim() && !free.checked && !price.value && !context.value) {
      items.push(option(DEFAULT_CHOICE, "OpenRouter picks your account's default; the answer shows which model served it"));
    }
    for (const model of shown.slice(0, 300)) items.push(option(model, `${model.id} · ${priceLine(model)}`));
    list.replaceChildren(...items);
    // Models are counted; "My OpenRouter default" is a choice, not one of them.
    clear.hidden = shown.length > 0;
    if (!shown.length) {
      const words = search.value.trim();
      status.textContent = words ? `No model matches “${words}”.` : "No model matches these filters.";
      return;
    }
    status.textContent = `${shown.length} of ${models.length} models${shown.length > 300 ? " (first 300 shown: refine the search)" : ""}`;
  }

  function reset() {
    search.value = "";
    free.checked = false;
    price.value = "";
    context.value = "";
  }
  clear.addEventListener("click", () => {
    reset();
    draw();
    search.focus();
  });

  for (const control of [search, free, price, context]) {
    control.addEventListener(control === search ? "input" : "change", draw);
  }
  list.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const options = [...list.querySelectorAll(".picker-option")];
    const index = options.indexOf(document.activeElement);
    const next = options[index + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) {
      // A search box's Escape would only empty it; here, as anywhere in the dialog, it closes.
      // Stopped here: the Settings pop-over the picker may be open over stays open.
      event.preventDefault();
      event.stopPropagation();
      dialog.close();
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      list.querySelector(".picker-option")?.focus();
    } else if (event.key === "Enter" && !event.isComposing) {
      // Enter takes the first match (the dialog's form would otherwise close it, choosing none).
      event.preventDefault();
      list.querySelector(".picker-option")?.click();
    }
  });
  function open(forChooser) {
    chooser = forChooser;
    // Each opening starts afresh: no search or filter left from the last, every model listed,
    // the current one marked and in view.
    reset();
    dialog.showModal();
    search.focus();
    load().then(() => {
      draw();
      list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: "center" });
    });
  }
  button?.addEventListener("click", () => open({ current, onChoose }));
  // A click on the backdrop closes the dialog.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  return open;
}

/**
 * A "Choose…" button beside a model id `field` (on its row), opening the picker (`open`, from
 * setupPicker) for it: the choice fills the field.
 */
export function addChooseButton(field, open) {
  if (field.closest(".model-field")) return;
  const row = document.createElement("div");
  row.className = "model-field";
  const choose = document.createElement("button");
  choose.type = "button";
  choose.className = "secondary choose-model";
  choose.textContent = "Choose…";
  choose.setAttribute("aria-label", "Choose the model from OpenRouter's list");
  field.replaceWith(row);
  row.append(field, choose);
  choose.addEventListener("click", () =>
    open({
      current: () => field.value,
      onChoose(model) {
        field.value = model.id;
        field.focus();
      },
    }),
  );
}
