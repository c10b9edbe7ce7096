// Site-wide behaviour: the phone-width menu toggle, dismissable flash messages, pop-over menus.
const toggle = document.querySelector(".nav-toggle");
const nav = document.getElementById("nav");
if (toggle && nav) {
  toggle.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
}
for (const message of document.querySelectorAll(".messages .message")) {
  message.addEventListener("click", () => message.remove());
}
// Forms that ask for confirmation carry data-confirm="question".
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
// Pop-over menus (<details data-popover>) close on Escape and on a click anywhere outside them.
document.addEventListener("click", (event) => {
  for (const menu of document.querySelectorAll("details[data-popover][open]")) {
    if (!menu.contains(event.target)) menu.open = false;
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const menu of document.querySelectorAll("details[data-popover][open]")) {
    menu.open = false;
    menu.querySelector("summary")?.focus();
  }
});
