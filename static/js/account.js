// Account page: fetch the key's credit figures in the background so a slow OpenRouter never
// holds up the page; the default model's field gets the chat's model picker.
import { addChooseButton, setupPicker } from "./chat/picker.js";
import { money } from "./money.js";

const box = document.getElementById("credits");
const status = document.getElementById("credits-status");

const formats = {
  limit_remaining: (v) => money(v) ?? "No limit",
  limit: (v) => money(v) ?? "No limit",
  usage_daily: (v) => money(v) ?? "–",
  usage_weekly: (v) => money(v) ?? "–",
  usage_monthly: (v) => money(v) ?? "–",
};

async function load() {
  try {
    const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" } });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || "Credits are unavailable right now.");
    for (const [field, format] of Object.entries(formats)) {
      const cell = box.querySelector(`[data-field="${field}"]`);
      if (cell) cell.textContent = format(data[field]);
    }
    box.dataset.loaded = "1";
    status.textContent = "";
  } catch (error) {
    status.textContent = `${error.message} Reload the page to try again.`;
  }
}

if (box && !box.dataset.loaded) load();

// The default model's field gets the chat's model picker, as a conversation's Settings do.
const picker = document.getElementById("model-picker");
const defaultModel = document.getElementById("id_default_model");
if (picker && defaultModel) addChooseButton(defaultModel, setupPicker({ dialog: picker }));
