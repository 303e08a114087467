import { test } from "node:test";
import assert from "node:assert/strict";
import { stopPath, stopView } from "../stop.js";

test("the path of a stop request escapes each part of the run id and keeps the slashes", () => {
  assert.equal(stopPath("exp/a"), "/api/runs/exp/a/stop");
  assert.equal(stopPath("lr 0.1/x?y#z%"), "/api/runs/lr%200.1/x%3Fy%23z%25/stop");
  assert.equal(stopPath("a/../b"), "/api/runs/a/../b/stop"); // the server refuses it (404), never a path
});

test("a running or stalled run gets a Stop button, then a confirmation; an ended one nothing", () => {
  assert.deepEqual(stopView({ status: "running" }), { state: null, text: "", button: "stop", error: null });
  assert.equal(stopView({ status: "stalled" }).button, "stop");
  assert.equal(stopView({ status: "running" }, { confirming: true }).button, "confirm");
  assert.equal(stopView({ status: "running" }, { busy: true }).button, null);
  for (const status of ["finished", "failed", "gone", undefined]) assert.equal(stopView({ status }), null);
  assert.equal(stopView(undefined), null);
});

test("the request's state comes from the run object, else from the answer to the request", () => {
  const running = { status: "running" };
  assert.equal(stopView(running, { stop: { state: "requested" } }).state, "requested");
  assert.equal(stopView({ ...running, stop: { state: "acknowledged" } }, { stop: { state: "requested" } }).state, "acknowledged");
  const done = stopView({ status: "finished", stop: { state: "finished" } });
  assert.deepEqual([done.state, done.button, done.text], ["finished", null, "Stopped: the run finished"]);
  assert.equal(stopView({ status: "failed", stop: { state: "finished" } }).text, "Stopped: the run ended as failed");
  assert.equal(stopView({ ...running, stop: { state: "bogus" } }).button, "stop"); // an unknown state is no state
});

test("an error is one line beside the button (it can be tried again)", () => {
  const v = stopView({ status: "running" }, { error: "Could not stop: the log tree is read-only here" });
  assert.equal(v.button, "stop");
  assert.equal(v.error, "Could not stop: the log tree is read-only here");
  assert.equal(stopView({ status: "finished" }, { error: "x" }).error, "x"); // it stays said after the run ended
});
