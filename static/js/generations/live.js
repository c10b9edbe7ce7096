// Live status of the user's generations over /ws/generations/, reconnecting with backoff.
//
// The server sends {type: "snapshot", generations: [...]} on every (re)connect, so a tab that
// was offline catches up, then {type: "generation", generation: {...}} on each change.
// `applyEvent` updates every element marked data-generation-id with the same id.

import { setTextWithLinks } from "../links.js";

const MAX_DELAY_MS = 30_000;

export function connectLive({ onEvent, onStatus = () => {} }) {
  let attempt = 0;
  let socket = null;

  function open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/generations/`);
    socket.addEventListener("open", () => {
      attempt = 0;
      onStatus("live");
    });
    socket.addEventListener("message", (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "snapshot") data.generations.forEach(onEvent);
      else if (data.type === "generation") onEvent(data.generation);
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 4401) {
        onStatus("signed-out");
        return; // signed out: retrying cannot help
      }
      onStatus("reconnecting");
      // Exponential backoff with full jitter, so a restarted server is not stampeded.
      const ceiling = Math.min(MAX_DELAY_MS, 1000 * 2 ** attempt++);
      setTimeout(open, Math.random() * ceiling);
    });
  }
  open();
  return () => socket?.close();
}

export function formatDuration(seconds) {
  // Same words as generations/templatetags/generation_tags.py: took.
  if (seconds < 1) return "under a second";
  const total = Math.round(seconds);
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  const rest = total % 60;
  if (minutes < 60) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

const LABELS = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};

// Updates the elements of one generation; returns the elements whose state changed.
export function applyEvent(generation) {
  const changed = [];
  for (const root of document.querySelectorAll(`[data-generation-id="${generation.id}"]`)) {
    const before = root.dataset.state;
    root.dataset.state = generation.state;
    const badge = root.querySelector('[data-role="state"]');
    if (badge) {
      badge.className = `badge ${generation.state}`;
      badge.textContent = generation.state_label || LABELS[generation.state] || generation.state;
    }
    const inFlight = generation.state === "queued" || generation.state === "running";
    setText(root, "progress", inFlight ? generation.progress : "");
    const cancel = root.querySelector('[data-role="cancel"]');
    if (cancel) cancel.hidden = !inFlight; // nothing left to cancel
    const failed = generation.state === "failed";
    const error = root.querySelector('[data-role="error"]');
    if (error) setTextWithLinks(error, failed ? generation.error_message : "");
    const retry = root.querySelector('[data-role="retry"]');
    if (retry) retry.hidden = !(failed && generation.retry_can_help);
    const time = root.querySelector('[data-role="time"]');
    if (time) {
      if (generation.started_at) time.dataset.startedAt = generation.started_at;
      if (generation.state === "cancelled") {
        delete time.dataset.startedAt;
        time.textContent = "";
      } else if (generation.duration != null) {
        delete time.dataset.startedAt;
        time.textContent = `took ${formatDuration(generation.duration)}`;
      } else if (generation.state === "queued") {
        time.textContent = "waiting to start";
      } else if (time.dataset.startedAt) {
        showRunningTime(time);
      }
    }
    if (before !== generation.state) changed.push(root);
  }
  return changed;
}

function setText(root, role, text) {
  const element = root.querySelector(`[data-role="${role}"]`);
  if (element) element.textContent = text || "";
}

function showRunningTime(time) {
  const seconds = (Date.now() - Date.parse(time.dataset.startedAt)) / 1000;
  time.textContent = `running for ${formatDuration(Math.max(0, seconds))}`;
}

// "running for 12 s" on every running generation, once a second.
export function tickRunningTimes() {
  const selector = '[data-state="running"] [data-role="time"][data-started-at]';
  setInterval(() => document.querySelectorAll(selector).forEach(showRunningTime), 1000);
}

const STATUS_TEXT = { live: "Updates live", reconnecting: "Reconnecting…", "signed-out": "Signed out" };

export function showLiveStatus(status) {
  const element = document.querySelector('[data-role="live"]');
  if (element) {
    element.textContent = STATUS_TEXT[status] || "";
    element.dataset.status = status;
  }
}
