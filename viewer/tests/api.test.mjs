import { test } from "node:test";
import assert from "node:assert/strict";
import { splitToken, b64url, wsProtocols, wsURL } from "../api.js";

test("the token is taken from the fragment, every other part of the URL kept", () => {
  assert.deepEqual(splitToken("http://127.0.0.1:6006/#token=abc"), { token: "abc", cleaned: "/" });
  assert.deepEqual(splitToken("http://h:1/?runs=a%2Fb&x=wall#token=abc"), { token: "abc", cleaned: "/?runs=a%2Fb&x=wall" });
  assert.deepEqual(splitToken("http://h:1/index.html?x=wall#token=abc&other=1"), { token: "abc", cleaned: "/index.html?x=wall#other=1" });
});

test("?token= is accepted too, and taken out of the query", () => {
  assert.deepEqual(splitToken("http://h:1/?token=abc"), { token: "abc", cleaned: "/" });
  assert.deepEqual(splitToken("http://h:1/?x=relative&token=abc&logy=1#keep"), { token: "abc", cleaned: "/?x=relative&logy=1#keep" });
  // the fragment wins: it is the form the sidecar prints
  assert.equal(splitToken("http://h:1/?token=old#token=new").token, "new");
  assert.equal(splitToken("http://h:1/?token=old#token=new").cleaned, "/");
});

test("a URL without a token is left alone", () => {
  assert.deepEqual(splitToken("http://h:1/?runs=a/b,c#section"), { token: null, cleaned: null });
});

test("base64url of the UTF-8 bytes, without padding", () => {
  assert.equal(b64url("tok"), "dG9r");
  assert.equal(b64url("to"), "dG8");
  assert.equal(b64url("\u00ff\u00fe?>"), Buffer.from("\u00ff\u00fe?>", "utf8").toString("base64url"));
  assert.equal(b64url("ü€𝄞"), Buffer.from("ü€𝄞", "utf8").toString("base64url"));
  assert.match(b64url("a-b_c~?>>>"), /^[A-Za-z0-9_-]+$/);
});

test("the WebSocket offers the tailboard subprotocol and the token as a second one", () => {
  assert.deepEqual(wsProtocols("tok"), ["tailboard", "tailboard.token.dG9r"]);
  assert.deepEqual(wsProtocols(null), ["tailboard"]);
  assert.equal(wsURL("/ws", { protocol: "https:", host: "h:8" }), "wss://h:8/ws");
  assert.equal(wsURL("/ws", { protocol: "http:", host: "[::1]:8" }), "ws://[::1]:8/ws");
});
