// The prompt box: Enter sends, Shift+Enter adds a line, and the box grows with its text.

const MAX_HEIGHT_PX = 240;

/**
 * @param {HTMLFormElement} form
 * @param {HTMLTextAreaElement} textarea
 * @param {(text: string) => boolean} onSend returns false when the text could not be sent yet
 */
export function setupComposer(form, textarea, onSend) {
  const grow = () => {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, MAX_HEIGHT_PX)}px`;
  };
  const submit = () => {
    const text = textarea.value;
    if (!text.trim()) return;
    if (onSend(text)) {
      textarea.value = "";
      grow();
    }
  };
  textarea.addEventListener("input", grow);
  textarea.addEventListener("keydown", (event) => {
    // isComposing: Enter also confirms an IME composition (Japanese, Chinese…); not a send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  grow();
  return {
    grow,
    restore(text) {
      if (!textarea.value) {
        textarea.value = text;
        grow();
      }
    },
  };
}
