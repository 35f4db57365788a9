// The members page works without scripts; this only asks before removing someone.
for (const form of document.querySelectorAll("form.member-remove-form")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
