// Folds an events JSONL file with the viewer's JavaScript fold and prints the public results JSON.
//   node fold_events.js <run_id>.events.jsonl
"use strict";
const fs = require("fs");
const path = require("path");
const F = require(path.join(__dirname, "..", "..", "bot", "viewer", "static", "fold.js"));

const events = F.parseJsonl(fs.readFileSync(process.argv[2], "utf8"));
const whole = F.foldEvents(events);
// the live page folds in pieces, continuing from a state it was handed: do that too
const half = Math.floor(events.length / 2);
const first = JSON.parse(JSON.stringify(F.foldEvents(events.slice(0, half))));
const resumed = F.ensureState(first);
events.slice(half).forEach((e) => F.fold(resumed, e));
process.stdout.write(JSON.stringify({ whole: F.publicResults(whole), resumed: F.publicResults(resumed) }));
