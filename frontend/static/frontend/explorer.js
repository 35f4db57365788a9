// The explorer works without scripts; this adds "select all on this page" and keeps the
// scope honest: choosing items switches the bulk action back to "the selected items".
const all = document.getElementById("select-page");
const boxes = () => Array.from(document.querySelectorAll("input.select-item"));
const selectedScope = document.querySelector("input[name=scope][value=selected]");

if (all) {
  all.addEventListener("change", () => {
    for (const box of boxes()) box.checked = all.checked;
    if (all.checked && selectedScope) selectedScope.checked = true;
  });
}
for (const box of boxes()) {
  box.addEventListener("change", () => {
    if (box.checked && selectedScope) selectedScope.checked = true;
    if (all) all.checked = boxes().every((b) => b.checked);
  });
}
