// The gallery: live status of every card, and thumbnails drawn lazily by one shared renderer.
import { applyEvent, connectLive, showLiveStatus, tickRunningTimes } from "./live.js";

// Files bigger than this get the placeholder icon: a thumbnail is not worth a big download.
const THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024;

const queue = [];
let drawing = false;

async function drawNext() {
  if (drawing) return;
  drawing = true;
  try {
    const { renderThumbnail } = await import("./viewer.js");
    while (queue.length) {
      const image = queue.shift();
      try {
        image.src = await renderThumbnail(image.dataset.thumbSrc, image.dataset.thumbType);
        image.hidden = false;
        image.closest(".thumb")?.classList.add("has-image");
      } catch {
        // The placeholder icon stays: a thumbnail is a nicety.
      }
    }
  } finally {
    drawing = false;
  }
}

// The box is watched, not the image: a hidden image never intersects anything.
const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      queue.push(entry.target.querySelector("img[data-thumb-src]"));
    }
    drawNext();
  },
  { rootMargin: "200px" },
);

function watchThumbnails(scope) {
  for (const image of scope.querySelectorAll("img[data-thumb-src]")) {
    if (Number(image.dataset.thumbSize || 0) <= THUMBNAIL_MAX_BYTES) {
      observer.observe(image.closest(".thumb"));
    }
  }
}

function addThumbnail(card, generation) {
  const first = generation.outputs?.[0];
  const thumb = card.querySelector(".thumb");
  if (!first?.viewable || !thumb || thumb.querySelector("img")) return;
  const image = document.createElement("img");
  image.className = "thumb-image";
  image.alt = "";
  image.hidden = true;
  image.dataset.thumbSrc = `${first.url}?inline=1`;
  image.dataset.thumbType = first.extension;
  image.dataset.thumbSize = String(first.size);
  thumb.prepend(image);
  watchThumbnails(card);
}

watchThumbnails(document);
tickRunningTimes();
connectLive({
  onStatus: showLiveStatus,
  onEvent(generation) {
    for (const card of applyEvent(generation)) {
      if (generation.state === "succeeded") addThumbnail(card, generation);
    }
  },
});
