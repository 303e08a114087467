import { test } from "node:test";
import assert from "node:assert/strict";
import { visible } from "../dom.js";

test("bidi controls are shown, not applied", () => {
  for (const cp of [0x200e, 0x200f, 0x061c, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]) {
    const shown = visible(`run${String.fromCodePoint(cp)}exe.txt`);
    const hex = cp.toString(16).toUpperCase().padStart(4, "0");
    assert.equal(shown, `run⟨U+${hex}⟩exe.txt`);
  }
});

test("controls and invisible characters are shown; ordinary text of any script is left alone", () => {
  assert.equal(visible("a\u0000b\u001bc\u007fd\u0085"), "a⟨U+0000⟩b⟨U+001B⟩c⟨U+007F⟩d⟨U+0085⟩");
  assert.equal(visible("a\u200bb\u200dc\ufeffd\u00ade\u2060"), "a⟨U+200B⟩b⟨U+200D⟩c⟨U+FEFF⟩d⟨U+00AD⟩e⟨U+2060⟩");
  assert.equal(visible("x\u2028y\u2029z\u3164"), "x⟨U+2028⟩y⟨U+2029⟩z⟨U+3164⟩");
  assert.equal(visible("tag\u{E0041}"), "tag⟨U+E0041⟩");
  assert.equal(visible("line\nbreak\ttab"), "line⟨U+000A⟩break⟨U+0009⟩tab");
  for (const ok of ["train/loss", "lr=3e-4", "שלום/עולם", "مرحبا", "损失", "naïve café", "<img src=x>", "a b"]) {
    assert.equal(visible(ok), ok);
  }
  assert.equal(visible(null), "");
  assert.equal(visible(3.5), "3.5");
});

test("multiline text keeps its newlines and tabs but not the rest", () => {
  assert.equal(visible("a\nb\tc\u202ed\re", { multiline: true }), "a\nb\tc⟨U+202E⟩d⟨U+000D⟩e");
});
