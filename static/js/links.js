// Text with its web addresses made links ("add credits at https://…" in an error sentence),
// built as DOM nodes: nothing in the text is ever parsed as HTML. The words asking the user to
// (re)connect OpenRouter link to the Account page, as the server's connect_link filter does
// (accounts/templatetags/connect_links.py): the sentences themselves stay plain text.
const ADDRESS = /https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)]/g;
const ASKS_TO_CONNECT = /\b(?:Reconnect|Connect) your OpenRouter account\b/g;
const LINKED = new RegExp(`${ADDRESS.source}|${ASKS_TO_CONNECT.source}`, "g");

export function setTextWithLinks(element, text) {
  element.replaceChildren();
  const accountUrl = document.body.dataset.accountUrl;
  let from = 0;
  for (const match of (text || "").matchAll(LINKED)) {
    const address = match[0].startsWith("http");
    if (!address && !accountUrl) continue;
    element.append(text.slice(from, match.index));
    const link = document.createElement("a");
    link.textContent = match[0];
    if (address) {
      link.href = match[0];
      link.target = "_blank";
      link.rel = "noopener";
    } else {
      link.href = `${accountUrl}#openrouter`;
    }
    element.append(link);
    from = match.index + match[0].length;
  }
  element.append((text || "").slice(from));
}
