// Account page: fetch the key's credit figures in the background so a slow OpenRouter never
// holds up the page; the default model's field gets the chat's model picker.
import { addChooseButton, setupPicker } from "./chat/picker.js";

const box = document.getElementById("credits");
const status = document.getElementById("credits-status");

// US dollars as the server's money filter writes them (accounts/templatetags/money.py): $4.20,
// $1,234.50; below a cent two significant digits ($0.0031), so a small spend does not read as nothing.
const DOLLARS = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
function money(value) {
  if (value === null || value === undefined || value === "") return null;
  const amount = Number(value);
  const sign = amount < 0 ? "-" : "";
  const size = Math.abs(amount);
  if (size === 0 || size >= 0.01) return `${sign}$${DOLLARS.format(size)}`;
  if (size < 0.000001) return `${sign}<$0.000001`;
  return `${sign}$${size.toPrecision(2).replace(/0+$/, "")}`;
}
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
