import { test } from "node:test";
import assert from "node:assert/strict";
import { AlertFeed, AlertLog, badgeOf, normalize, notificationOf } from "../alerts.js";

/** An alert object as /api/alerts and `alert` messages carry it (docs/protocol.md). */
function alert(seq, over = {}) {
  return { id: `nonfinite:exp/a`, seq, rule: "nonfinite", level: "error", title: "Non-finite value in exp/a",
    text: "train/loss is NaN at step 5", run: "exp/a", gpu: null, step: 5, started: 1000 + seq, ended: null,
    active: true, count: 1, backlog: false, details: {}, ...over };
}
const cleared = (a, ended) => ({ ...a, ended, active: false });

test("newest first: by the time an alert started, then by its seq", () => {
  const log = new AlertLog();
  log.put(alert(1, { id: "a" }));
  log.put(alert(3, { id: "c", started: 1001 }));
  log.put(alert(2, { id: "b" }));
  assert.deepEqual(log.list().map((a) => a.seq), [2, 3, 1]);
  assert.deepEqual(log.list("exp/a").map((a) => a.seq), [2, 3, 1]);
  assert.deepEqual(log.list("other"), []);
});

test("a fired and a cleared message of one alert are one entry, and a clearing is final", () => {
  const log = new AlertLog();
  const a = alert(7);
  assert.deepEqual(log.applyMessage({ type: "alert", event: "fired", alert: a }).map((x) => x.seq), [7]);
  assert.deepEqual(log.counts(), { info: 0, warning: 0, error: 1 });
  assert.deepEqual(log.applyMessage({ type: "alert", event: "cleared", alert: cleared(a, 1010) }), []);
  assert.equal(log.list().length, 1);
  assert.equal(log.list()[0].active, false);
  assert.equal(log.list()[0].ended, 1010);
  assert.deepEqual(log.counts(), { info: 0, warning: 0, error: 0 });
  // an answer asked for before the clearing, arriving after it, does not bring it back
  const v = log.version;
  log.applyReport({ active: [a], recent: [] });
  assert.equal(log.list()[0].active, false);
  assert.equal(log.version, v);
});

test("a trainer's alert raised again updates its count and text, not a new entry", () => {
  const log = new AlertLog();
  const a = alert(1, { rule: "trainer", id: "trainer:exp/a:plateau", level: "info" });
  log.put(a);
  log.put({ ...a, count: 3, text: "still" });
  assert.equal(log.list().length, 1);
  assert.equal(log.list()[0].count, 3);
  assert.equal(log.list()[0].text, "still");
  assert.deepEqual(log.counts("exp/a"), { info: 1, warning: 0, error: 0 });
});

test("a newer firing of the same id ends the older one whose clearing was missed", () => {
  const log = new AlertLog();
  log.put(alert(1));
  log.put(alert(4));
  assert.deepEqual(log.list().map((a) => [a.seq, a.active]), [[4, true], [1, false]]);
  // and an older one arriving late does not take its place
  log.put(alert(0));
  assert.deepEqual(log.list().map((a) => [a.seq, a.active]), [[4, true], [1, false], [0, false]]);
  assert.equal(log.counts().error, 1);
});

test("an answer ends the alerts active when it was asked that it no longer lists; later ones stay", () => {
  const log = new AlertLog();
  log.applyReport({ active: [alert(1, { id: "x" }), alert(2, { id: "y" })], recent: [] });
  const before = log.activeKeys();
  log.applyMessage({ event: "fired", alert: alert(3, { id: "z" }) }); // while the request was in flight
  log.applyReport({ active: [alert(2, { id: "y" })], recent: [] }, before);
  assert.deepEqual(log.list().map((a) => [a.id, a.active]), [["z", true], ["y", true], ["x", false]]);
});

test("notified: live firings newly seen, never the first answer's, the backlog's, or a clearing", () => {
  const log = new AlertLog();
  assert.deepEqual(log.applyReport({ active: [alert(1, { id: "old" })], recent: [cleared(alert(2, { id: "older" }), 1005)] }), []);
  const got = log.applyReport({ active: [alert(1, { id: "old" }), alert(5, { id: "new" }), alert(6, { id: "bl", backlog: true })],
    recent: [cleared(alert(4, { id: "flap" }), 1004.5)] });
  assert.deepEqual(got.map((a) => a.id).sort(), ["flap", "new"]); // one that fired and cleared between two answers fired too
  assert.deepEqual(log.applyMessage({ event: "fired", alert: alert(5, { id: "new" }) }), []); // known already
  assert.deepEqual(log.applyMessage({ event: "cleared", alert: cleared(alert(9, { id: "q" }), 1020) }), []);
  assert.deepEqual(log.applyMessage({ event: "fired", alert: alert(10, { id: "b2", backlog: true }) }), []);
});

test("a sidecar that restarted counts seq from 1 again: its alerts are others", () => {
  const log = new AlertLog();
  log.put(cleared(alert(1, { started: 1000 }), 1001));
  log.put(alert(1, { started: 5000 }));
  assert.equal(log.list().length, 2);
  assert.deepEqual(log.list().map((a) => a.active), [true, false]);
});

test("what is not an alert is ignored, never thrown", () => {
  const log = new AlertLog();
  for (const bad of [null, 5, "x", {}, { seq: "1", id: "a" }, { seq: 1 }, { seq: NaN, id: "a" }]) assert.equal(log.put(bad), false);
  log.applyMessage({ type: "alert" });
  log.applyReport(null);
  log.applyReport({ active: "nope", recent: [null] });
  assert.equal(log.list().length, 0);
  assert.equal(log.ignored, 9); // counted: the list says so
  const a = normalize({ seq: 1, id: "a", level: "<b>", title: 5, text: null, run: 3, count: "x" });
  assert.equal(a.level, "warning");
  assert.equal(a.title, "");
  assert.equal(a.run, null);
  assert.equal(a.count, 1);
});

test("ended alerts kept are bounded, the newest kept; active ones all stay", () => {
  const log = new AlertLog();
  for (let i = 0; i < 1100; i++) log.put(cleared(alert(i, { id: `r${i}` }), 2000 + i));
  log.put(alert(5000, { id: "live" }));
  const all = log.list();
  assert.equal(all.length, 1001);
  assert.equal(all[0].id, "live");
  assert.equal(all.at(-1).seq, 100);
});

test("a run's badge: the count of its active alerts in the colour of the most urgent", () => {
  assert.equal(badgeOf(undefined), null);
  assert.equal(badgeOf({}), null);
  assert.equal(badgeOf({ error: 0 }), null);
  assert.deepEqual(badgeOf({ warning: 2, error: 1 }), { n: 3, level: "error", title: "active alerts: 1 error, 2 warnings" });
  assert.deepEqual(badgeOf({ info: 1 }), { n: 1, level: "info", title: "active alerts: 1 info" });
  assert.deepEqual(badgeOf({ warning: 1, bogus: 9, error: "2" }), { n: 1, level: "warning", title: "active alerts: 1 warning" });
});

test("a notification is plain text with the hidden characters shown, and short", () => {
  const n = notificationOf(normalize(alert(1, { title: "<img src=x onerror=alert(1)> \u202eevil", text: "a\nb".repeat(400), run: "exp/\u200ba" })));
  assert.equal(n.title, "tailboard error: <img src=x onerror=alert(1)> ⟨U+202E⟩evil");
  assert.ok(n.body.startsWith("run exp/⟨U+200B⟩a\na\nb"));
  assert.ok(n.body.length <= 300);
  assert.equal(n.tag, "tailboard:nonfinite:exp/a");
});

test("the feed asks once for a burst of count changes, and again after an answer that came meanwhile", async () => {
  const asked = [];
  let answer;
  const get = (path, params) => { asked.push([path, params.recent]); return new Promise((r) => { answer = r; }); };
  const log = new AlertLog();
  const fired = [];
  const feed = new AlertFeed(log, { get, gap: 0, onFired: (a) => fired.push(...a) });
  feed.runs([{ id: "exp/a", alerts: { error: 1 } }]); // not started: nothing asked
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(asked.length, 0);
  feed.start();
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(asked, [["/api/alerts", 500]]);
  feed.runs([{ id: "exp/a", alerts: { error: 1 } }]); // no change
  feed.runs([{ id: "exp/a" }]); // a change while asking: once more after the answer
  feed.runs([{ id: "exp/a", alerts: { warning: 1 } }]);
  answer({ active: [alert(1)], recent: [] });
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(asked, [["/api/alerts", 500], ["/api/alerts", 100]]);
  answer({ active: [alert(1), alert(2, { id: "n" })], recent: [] });
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(fired.map((a) => a.id), ["n"]);
  feed.runs([], ["exp/a"]); // a run removed with alerts: ask again
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(asked.length, 3);
});
