// Show each preference slider's value next to it as it moves.
for (const output of document.querySelectorAll("output[data-output-for]")) {
  const input = document.getElementById(output.dataset.outputFor);
  if (!input) continue;
  const show = () => {
    output.value = input.value;
  };
  input.addEventListener("input", show);
  show();
}
