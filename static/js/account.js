// Account page: fetch the key's credit figures in the background so a slow OpenRouter never
// holds up the page.
import { addChooseButton, setupPicker } from "./chat/picker.js";

const box = document.getElementById("credits");
const status = document.getElementById("credits-status");

const money = (value, digits) => (value === null || value === undefined ? null : `$${Number(value).toFixed(digits)}`);
const formats = {
  limit_remaining: (v) => money(v, 2) ?? "Unlimited",
  limit: (v) => money(v, 2) ?? "None",
  usage_daily: (v) => money(v, 4) ?? "–",
  usage_weekly: (v) => money(v, 4) ?? "–",
  usage_monthly: (v) => money(v, 4) ?? "–",
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
    status.textContent = `${error.message} The figures will show when OpenRouter answers.`;
  }
}

if (box && !box.dataset.loaded) load();

// The default model's field gets the chat's model picker, as a conversation's Settings do.
const picker = document.getElementById("model-picker");
const defaultModel = document.getElementById("id_default_model");
if (picker && defaultModel) addChooseButton(defaultModel, setupPicker({ dialog: picker }));
