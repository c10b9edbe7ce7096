// Text with its web addresses made links, built as DOM nodes: nothing in the text is ever
// parsed as HTML. As the server's connect_link filter does (accounts/templatetags/connect_links.py),
// the words asking the user to (re)connect OpenRouter link to the Account page and a 402's "Add
// credits on OpenRouter" to the credits page, from addresses the page holds, never from the text.
const ADDRESS = /https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)]/g;
const ASKS_TO_CONNECT = /\b(?:Reconnect|Connect) your OpenRouter account\b/g;
const ASKS_FOR_CREDITS = /\bAdd credits on OpenRouter\b/g;
const LINKED = new RegExp(`${ADDRESS.source}|${ASKS_TO_CONNECT.source}|${ASKS_FOR_CREDITS.source}`, "g");

export function setTextWithLinks(element, text) {
  element.replaceChildren();
  const { accountUrl, creditsUrl } = document.body.dataset;
  let from = 0;
  for (const match of (text || "").matchAll(LINKED)) {
    const address = match[0].startsWith("http");
    const credits = match[0].startsWith("Add credits");
    const href = address ? match[0] : credits ? creditsUrl : accountUrl && `${accountUrl}#openrouter`;
    if (!href) continue;
    element.append(text.slice(from, match.index));
    const link = document.createElement("a");
    link.textContent = match[0];
    link.href = href;
    if (address || credits) {
      link.target = "_blank";
      link.rel = "noopener";
    }
    element.append(link);
    from = match.index + match[0].length;
  }
  element.append((text || "").slice(from));
}
