// The webhooks page works without scripts; this copies the one-time secret and asks before deleting.
const copy = document.getElementById("copy-secret");
if (copy) {
  copy.addEventListener("click", async () => {
    const field = document.getElementById("webhook-secret-value");
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      copy.textContent = "Copied";
    } catch {
      // No clipboard access (plain http on a LAN address): the value stays selected to copy by hand.
      copy.textContent = "Selected: press Ctrl+C";
    }
  });
}
for (const form of document.querySelectorAll("form.webhook-delete-form")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
