// Site-wide behaviour: the phone-width menu toggle, dismissable flash messages, pop-over menus.
const toggle = document.querySelector(".nav-toggle");
const nav = document.getElementById("nav");
if (toggle && nav) {
  toggle.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
}
// Flash messages close with their ×; good news also by itself after a while (errors stay).
for (const message of document.querySelectorAll(".messages .message")) {
  const close = document.createElement("button");
  close.type = "button";
  close.className = "message-close";
  close.setAttribute("aria-label", "Close"); // its × is drawn by the stylesheet: not the message's text
  close.addEventListener("click", () => message.remove());
  message.append(close);
  if (message.matches(".success, .info")) setTimeout(() => message.remove(), 8000);
}
// Forms, or the one of a form's buttons, that ask for confirmation carry data-confirm="question"
// (the email page's Remove is one of three buttons of its form).
document.addEventListener("submit", (event) => {
  const question = event.submitter?.dataset.confirm ?? event.target.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
// Pop-over menus (<details data-popover>) close on Escape and on a click anywhere outside them;
// not for what happens in a modal dialog opened from one (the model picker from Settings).
document.addEventListener("click", (event) => {
  if (event.target.closest?.("dialog")) return; // (closed by now, if the click chose)
  for (const menu of document.querySelectorAll("details[data-popover][open]")) {
    if (!menu.contains(event.target)) menu.open = false;
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.isComposing) return;
  if (document.querySelector("dialog[open]")) return; // the dialog closes itself first
  const open = document.querySelectorAll("details[data-popover][open]");
  if (!open.length) return;
  for (const menu of open) menu.open = false;
  open[open.length - 1].querySelector("summary")?.focus();
  event.preventDefault(); // one Escape, one layer: the drawer behind stays open
});
