// Text with its web addresses made links ("add credits at https://…" in an error sentence),
// built as DOM nodes: nothing in the text is ever parsed as HTML.
const ADDRESS = /https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)]/g;

export function setTextWithLinks(element, text) {
  element.replaceChildren();
  let from = 0;
  for (const match of (text || "").matchAll(ADDRESS)) {
    element.append(text.slice(from, match.index));
    const link = document.createElement("a");
    link.href = match[0];
    link.textContent = match[0];
    link.target = "_blank";
    link.rel = "noopener";
    element.append(link);
    from = match.index + match[0].length;
  }
  element.append((text || "").slice(from));
}
