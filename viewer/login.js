// The form that asks for the access token when the page has none or the server refused it.

import { h } from "./dom.js";

export class LoginForm {
  /** onToken(token) is called with what was entered (trimmed, never empty). */
  constructor(host, { onToken }) {
    this.input = h("input", { type: "password", name: "token", autocomplete: "off", spellcheck: "false",
      placeholder: "access token", "aria-label": "access token", required: true });
    this.message = h("p", { class: "login-message" });
    this.form = h("form", { id: "login", class: "login", onsubmit: (e) => {
      e.preventDefault();
      const token = this.input.value.trim();
      if (token) onToken(token);
    } },
    h("p", null, "Paste the access token the sidecar printed (the part after #token= in its URL)."),
    this.message,
    h("div", { class: "login-row" }, this.input, h("button", { type: "submit" }, "Open")));
    this.veil = h("div", { class: "login-veil", hidden: true }, this.form);
    host.appendChild(this.veil);
  }

  get shown() {
    return !this.veil.hidden;
  }

  show(message = "") {
    this.message.textContent = message;
    this.message.hidden = !message;
    this.input.value = "";
    this.veil.hidden = false;
    this.input.focus();
  }

  hide() {
    this.veil.hidden = true;
  }
}
