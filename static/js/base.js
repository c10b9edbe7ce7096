// Site-wide behaviour: the phone-width menu toggle and dismissable flash messages.
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
