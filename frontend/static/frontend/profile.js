// Preference sliders: a range input always holds a number, so each slider has a
// hidden "unanswered" marker that stays set until the annotator moves it. "Clear"
// returns a slider to no answer.
for (const output of document.querySelectorAll("output[data-output-for]")) {
  const input = document.getElementById(output.dataset.outputFor);
  const unanswered = document.getElementById(output.dataset.unansweredInput);
  if (!input || !unanswered) continue;
  const row = input.closest(".pref-row");
  const clear = row?.querySelector(".pref-clear");
  const show = () => {
    const isUnanswered = unanswered.value !== "";
    output.value = isUnanswered ? "No answer" : input.value;
    row?.classList.toggle("is-unanswered", isUnanswered);
    if (clear) clear.hidden = isUnanswered;
  };
  const answer = () => {
    unanswered.value = "";
    show();
  };
  // Arrow keys and drags fire "input". A click that leaves the value where it was
  // (on the thumb at the midpoint) fires nothing, yet it answers with that value.
  input.addEventListener("input", answer);
  input.addEventListener("pointerup", answer);
  clear?.addEventListener("click", () => {
    unanswered.value = "1";
    show();
    input.focus();
  });
  show();
}
