// Zastava console: progressive enhancement only — every page works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // filters: a changed <select> submits its form at once
  for (const select of document.querySelectorAll("select.autosubmit")) {
    select.addEventListener("change", () => select.form && select.form.submit());
  }
  // the simulation runs server-side and can take a while: say so, and prevent double submits
  const sim = document.getElementById("simulate-form");
  if (sim) {
    sim.addEventListener("submit", () => {
      const button = sim.querySelector("button[type=submit]");
      if (button) { button.disabled = true; button.textContent = "Simulating…"; }
    });
  }
});
