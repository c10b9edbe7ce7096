// The detail page: the viewer, tabs between objects, and live status until the job is done.
import { applyEvent, connectLive, showLiveStatus, tickRunningTimes } from "./live.js";

const root = document.querySelector(".generation-detail");
const container = root?.querySelector("[data-viewer]");
let unmount = null;

async function show(src, type) {
  unmount?.();
  unmount = null;
  if (!container || !src) return;
  const { mountViewer } = await import("./viewer.js");
  unmount = await mountViewer(container, src, type);
}

if (container?.dataset.src) show(container.dataset.src, container.dataset.type);

for (const tab of root?.querySelectorAll('.output-tabs [role="tab"]') ?? []) {
  tab.addEventListener("click", () => {
    for (const other of root.querySelectorAll('.output-tabs [role="tab"]')) {
      other.setAttribute("aria-selected", String(other === tab));
    }
    show(tab.dataset.src, tab.dataset.type);
  });
}

const inFlight = (state) => state === "queued" || state === "running";

if (root && inFlight(root.dataset.state)) {
  tickRunningTimes();
  connectLive({
    onStatus: showLiveStatus,
    onEvent(generation) {
      if (String(generation.id) !== root.dataset.generationId) return;
      applyEvent(generation);
      // Finished: the server renders the viewer, the downloads or the error with its retry button.
      if (!inFlight(generation.state)) location.reload();
    },
  });
}
